"""moto's docker-less Lambda backend pointed at the app's real handlers: an Invoke (from the state
machine's Task states or the Lambda API) runs the handler and answers with its result, or with its
error and Lambda's error header, as Lambda does.

Two ways: `forward_invocations`, in the moto server's process, sends each invocation over HTTP to
the runtime's function host (callqueue.local.lambdas.FunctionHost); `routed`, for in-process moto
(the tests' mock_aws), runs the handlers of the functions it is given on the caller's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import requests
from moto.awslambda_simple.models import LambdaSimpleBackend

from callqueue.local.lambdas import (
    FUNCTION_ERROR_HEADER,
    MAX_INVOCATION_SECONDS,
    UNHANDLED,
    Handler,
    run_function,
)
from callqueue.local.moto_patches.locking import BACKENDS

# An invocation's answer: its payload and Lambda's error header (None when it succeeded).
Answer = tuple[bytes, str | None]
# Runs a function by name with the invocation's body; None for a function it does not run.
Runner = Callable[[str, Any], Answer | None]

_moto_invoke = LambdaSimpleBackend.invoke


def _invoke_through(run: Runner) -> Callable[..., Any]:
    """LambdaSimpleBackend.invoke answering through `run`, or as moto would where it declines."""

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes | str | None:
        answer = run(function_name.rsplit(":", 1)[-1], body)
        if answer is None:
            return _moto_invoke(self, function_name, qualifier, body, headers, response_headers)
        payload, error = answer
        if error is not None:
            response_headers["x-amz-function-error"] = error
        return payload

    return invoke


def forward_invocations(function_host: str) -> None:
    """Every invocation made an HTTP request to the function host (the moto server's process)."""
    session = requests.Session()

    def run(name: str, body: Any) -> Answer:
        # The handler makes requests of its own: the backends are free while it runs.
        with BACKENDS.released():
            response = session.post(
                f"{function_host}/functions/{name}/invocations",
                data=body or b"{}",
                timeout=MAX_INVOCATION_SECONDS,
            )
        return response.content, response.headers.get(FUNCTION_ERROR_HEADER)

    LambdaSimpleBackend.invoke = _invoke_through(run)  # type: ignore[method-assign]


# A routed function's handler, and what its run is wrapped in.
_routes: dict[str, tuple[Handler, Callable[[], AbstractContextManager[object]]]] = {}
_routes_lock = threading.Lock()


def _run_routed(name: str, body: Any) -> Answer | None:
    with _routes_lock:
        route = _routes.get(name)
    if route is None:
        return None
    handler, while_invoking = route
    # The handler's own requests are dispatched while this one waits for it.
    with while_invoking():
        payload, failed = run_function(name, handler, body)
    return payload, UNHANDLED if failed else None


_routed_invoke = _invoke_through(_run_routed)


@contextmanager
def routed(
    functions: dict[str, Handler],
    while_invoking: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> Iterator[None]:
    """In-process moto (tests): route Lambda invocations of these functions to their handlers.
    `while_invoking` is entered around each handler's run (the tests let moto's lock go)."""
    with _routes_lock:
        _routes.update({name: (handler, while_invoking) for name, handler in functions.items()})
        LambdaSimpleBackend.invoke = _routed_invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _routes_lock:
            for name in functions:
                _routes.pop(name, None)
            if not _routes:
                LambdaSimpleBackend.invoke = _moto_invoke  # type: ignore[method-assign]
