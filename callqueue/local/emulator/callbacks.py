"""Status callbacks: one signed POST per status of a message's timeline, and per progress event
a call asked for, each when the emulator's clock reaches it, sent on a background thread and
logged with the HTTP status it got; `post_signed`, how every webhook the emulator sends is signed
and posted."""

from __future__ import annotations

import heapq
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from callqueue.local.emulator.calls import call_callback_forms
from callqueue.local.emulator.core import API_VERSION, Json
from callqueue.local.emulator.store import _Stored

CALLBACK_POLL_SECONDS = 0.05


class _CallbackSender:
    """Posts signed status callbacks on one thread, each when its message reaches that status on
    the emulator's clock (in the order of those times). At stop, callbacks already due are posted
    and later ones dropped, as a scheduled message's could be days away."""

    def __init__(self, auth_token: str, clock: Callable[[], float]) -> None:
        self._validator = RequestValidator(auth_token)
        self._clock = clock
        self._due: list[tuple[float, int, str, dict[str, str]]] = []
        self._order = 0
        self._stopping = False
        self._wake = threading.Condition()
        self._lock = threading.Lock()
        self._sent: list[Json] = []
        # No proxy from the environment may capture a loopback callback.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread: threading.Thread | None = None

    @property
    def sent(self) -> list[Json]:
        with self._lock:
            return list(self._sent)

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="twilio-callbacks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            with self._wake:
                self._stopping = True
                self._wake.notify()
            self._thread.join()
            self._thread = None

    def message_created(self, url: str, message: _Stored) -> None:
        resource = message.resource
        base = {
            "AccountSid": str(resource["account_sid"]),
            "ApiVersion": API_VERSION,
            "From": str(resource["from"] or ""),
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "To": str(resource["to"]),
        }
        forms = []
        for stage in message.stages:
            form = {**base, "MessageStatus": stage.status, "SmsStatus": stage.status}
            if stage.status in ("undelivered", "failed") and message.error_code is not None:
                form["ErrorCode"] = str(message.error_code)
            forms.append((stage.t, form))
        self._schedule(url, forms)

    def call_created(self, url: str, call: _Stored, events: Iterable[str] | None) -> None:
        """`events`: the StatusCallbackEvent values the call asked for."""
        self._schedule(url, call_callback_forms(call, events))

    def _schedule(self, url: str, forms: Iterable[tuple[float, dict[str, str]]]) -> None:
        with self._wake:
            for t, form in forms:
                self._order += 1
                heapq.heappush(self._due, (t, self._order, url, form))
            self._wake.notify()

    def _next(self) -> tuple[str, dict[str, str]] | None:
        """The next callback once it is due; None once stopping and none is due."""
        with self._wake:
            while True:
                if self._due and self._due[0][0] <= self._clock():
                    _, _, url, form = heapq.heappop(self._due)
                    return url, form
                if self._stopping:
                    return None
                # The clock may be a test's, moved by hand: look again at least every tick.
                wait = CALLBACK_POLL_SECONDS
                if self._due:
                    wait = min(max(self._due[0][0] - self._clock(), 0.0), wait)
                self._wake.wait(wait)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            self._post(*item)

    def _post(self, url: str, form: dict[str, str]) -> None:
        status = post_signed(self._opener, self._validator, url, form)
        kind = "Call" if "CallSid" in form else "Message"
        with self._lock:
            self._sent.append(
                {
                    "url": url,
                    f"{kind}Sid": form[f"{kind}Sid"],
                    "status": form[f"{kind}Status"],
                    "http_status": status,
                }
            )


def post_signed(
    opener: urllib.request.OpenerDirector,
    validator: RequestValidator,
    url: str,
    form: dict[str, str],
) -> int | None:
    """POST `form` to `url` signed as Twilio signs its webhooks; the HTTP status, or None if the
    URL could not be reached (as Twilio's debugger would show it)."""
    request = urllib.request.Request(  # noqa: S310 - the URL the account configured
        url,
        data=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(url, form),
            "User-Agent": "TwilioProxy/1.1",
        },
        method="POST",
    )
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None
