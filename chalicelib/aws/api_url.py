"""Where Twilio reaches this stage's webhooks: the public URLs of POST /twilio/status and POST
/twilio/inbound, as Twilio calls and signs them.

Set by hand (STATUS_CALLBACK_URL, INBOUND_WEBHOOK_URL), they are used as given. Otherwise a
deployed stage derives them from its REST API's URL, which `callqueue deploy` writes to an SSM
parameter once Chalice has deployed the functions (callqueue.deploy.sequence) and names in
API_URL_PARAMETER. The parameter is read on first need and again after a few minutes, so a
container that started before it was written, or an API Chalice made anew, catches up. Without
the variable (tests, the local runtime) nothing is looked up. A parameter that cannot be read
means no URL: messages ask for no status callback, and the webhook routes refuse every request,
as when nothing is configured.

Messages ask for their status callbacks at the callback function's URL (chalicelib.api.callback_url)
when the stack has published it in the SSM parameter CALLBACK_URL_PARAMETER names, past API
Gateway; until then, or when it cannot be read, at the REST route. The REST route keeps checking
signatures over its own URL: messages sent before still call it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from chalicelib.config import INBOUND_PATH, STATUS_PATH

log = logging.getLogger(__name__)

# How long a URL read is kept: the API's URL changes only when Chalice makes the API anew.
FOUND_MAX_AGE_SECONDS = 300
# How long an unreadable parameter is taken as absent before it is asked for again: without this
# every message would ask SSM (its default throughput is 40 requests a second an account).
MISSING_MAX_AGE_SECONDS = 60.0


class ApiUrl:
    """A URL from its SSM parameter: the REST API's base URL
    (`https://ID.execute-api.REGION.amazonaws.com/api/`), or the callback function's.
    Powertools' SSM provider keeps a value read for FOUND_MAX_AGE_SECONDS; it keeps no failure,
    so a parameter that could not be read is remembered here, and warned of once."""

    def __init__(
        self,
        ssm: Any,
        parameter: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = SSMProvider(boto3_client=ssm)
        self._parameter = parameter
        self._clock = clock
        # The sender's calls ask from many threads at once: one of them reads the parameter.
        self._lock = threading.Lock()
        self._missing_until: float | None = None
        self._warned = False

    def get(self) -> str | None:
        """The URL, or None when the parameter cannot be read (absent, not allowed, SSM down)."""
        with self._lock:
            if self._missing_until is not None and self._clock() < self._missing_until:
                return None
            try:
                value = self._provider.get(self._parameter, max_age=FOUND_MAX_AGE_SECONDS)
            except GetParameterError as error:
                self._missing_until = self._clock() + MISSING_MAX_AGE_SECONDS
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "no URL in the SSM parameter %s (%s) until it is found: without the"
                        " REST API's, messages ask for no status callback and the webhook routes"
                        " refuse requests; without the callback function's, callbacks go to the"
                        " REST route",
                        self._parameter,
                        error,
                    )
                return None
            self._missing_until, self._warned = None, False
            return str(value)

    def route(self, path: str) -> str | None:
        """The public URL of the API's route `path` (`/twilio/status`): Chalice's URL ends with
        its stage's path and a "/"."""
        base = self.get()
        return None if base is None else base.rstrip("/") + path


class WebhookUrls:
    """The webhook URLs, each the setting's when it is set, or else on the deployed API; a
    message's status callbacks, else at the callback function's URL when it is known."""

    def __init__(
        self,
        status: str | None,
        inbound: str | None,
        api: ApiUrl | None,
        callback_function: ApiUrl | None = None,
    ) -> None:
        self._status = status
        self._inbound = inbound
        self._api = api
        self._function = callback_function

    def status(self) -> str | None:
        """Where messages ask for status callbacks (None: nowhere): the callback function's URL
        (chalicelib.api.callback_url) once the stack has published it, else the REST route."""
        if self._status:
            return self._status
        function = None if self._function is None else self._function.get()
        return function or self.status_route()

    def status_route(self) -> str | None:
        """The public URL of POST /twilio/status, which the route checks signatures over
        (None: it refuses every callback)."""
        return self._status or self._on_api(STATUS_PATH)

    def inbound(self) -> str | None:
        """The public URL of POST /twilio/inbound (None: incoming messages are refused)."""
        return self._inbound or self._on_api(INBOUND_PATH)

    def _on_api(self, path: str) -> str | None:
        return None if self._api is None else self._api.route(path)
