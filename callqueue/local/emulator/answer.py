"""How the emulator answers one request, on the server's threads: route, auth, test credentials,
the concurrency limit, an injected fault, latency, then the operation; the request log, the
response headers, an edge proxy's page for ``5xx-after`` and the status callbacks a created
message asked for."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import parse_qs, unquote, urlsplit

from callqueue.local.emulator.account import _Account
from callqueue.local.emulator.callbacks import _CallbackSender
from callqueue.local.emulator.core import (
    _ACCOUNT_SID,
    Form,
    Json,
    _ApiError,
    _first,
    _new_sid,
    _not_found,
    _Reply,
    error_body,
)
from callqueue.local.emulator.routes import _Faulted, _match
from callqueue.local.faults import FAULT_HEADER, FaultKind, FaultSpec

_ERROR_MESSAGES: Mapping[int, str] = {
    20003: "Authenticate",
    20008: "Resource not accessible with Test Account Credentials",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
}


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def _loggable(params: Mapping[str, Sequence[str]]) -> dict[str, str | list[str]]:
    return {k: v[0] if len(v) == 1 else list(v) for k, v in params.items()}


@dataclass
class _Exchange:
    """One request as the emulator decided to answer it."""

    arrival: float
    concurrent: int
    reply: _Reply
    fault: FaultKind | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def dropped(self) -> bool:
        return self.fault in (FaultKind.RESET, FaultKind.LOST_RESPONSE)


EDGE_STATUSES = (502, 503, 504)
_EDGE_REASONS: Mapping[int, str] = {
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}


def _edge_page(status: int) -> str:
    """What a load balancer in front of Twilio answers: its own HTML, not Twilio's JSON error."""
    title = f"{status} {_EDGE_REASONS[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )


class _Answering:
    """The request handling of `TwilioEmulator` (called on the server's threads), which sets the
    state below: `_exchange` decides a request's answer and logs it, the handler sends it."""

    _account: _Account
    _callbacks: _CallbackSender
    _clock: Callable[[], float]
    _sleep: Callable[[float], None]
    _rng: random.Random
    _lock: threading.Lock
    _in_flight: int
    _secrets: dict[str, str]
    _test_credentials: bool
    _concurrency_limit: int | None
    _latency: float | Callable[[], float]
    _faults: FaultSpec | None
    _lookup_faults: FaultSpec | None
    _slow_seconds: float
    _requests: list[Json]
    _log_file: IO[str] | None

    @property
    def account_sid(self) -> str:
        return self._account.account_sid

    def _exchange(
        self,
        method: str,
        target: str,
        authorization: str | None,
        body: bytes,
        received_at: float | None = None,
    ) -> _Exchange:
        """Decide the answer to one request and log it; the caller sends it (or drops it).
        `received_at`: when the request's first bytes reached this machine (wall clock), its
        arrival unless the emulator runs on another clock."""
        arrival = (
            received_at if received_at is not None and self._clock is time.time else self._clock()
        )
        with self._lock:
            self._in_flight += 1
            concurrent = self._in_flight
        try:
            parts = urlsplit(target)
            path = unquote(parts.path)
            if method == "POST":
                params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            else:
                params = parse_qs(parts.query, keep_blank_values=True)
            reply, fault = self._decide(
                method,
                raw_path=parts.path,
                path=path,
                params=params,
                authorization=authorization,
                concurrent=concurrent,
            )
            result = _Exchange(arrival, concurrent, reply, fault)
            if result.fault is FaultKind.CRASH:
                result.extra_headers[FAULT_HEADER] = FaultKind.CRASH.value
            self._log(result, method, path, params)
            if method == "POST":
                self._schedule_callbacks(path, params, reply, authorization)
            return result
        finally:
            # Out of flight before the response goes out, so that a client's next request never
            # overlaps this one.
            with self._lock:
                self._in_flight -= 1

    def _schedule_callbacks(
        self, path: str, params: Form, reply: _Reply, authorization: str | None
    ) -> None:
        """The status callbacks of a message or call just created with a StatusCallback."""
        callback = _first(params, "StatusCallback")
        credentials = _basic_credentials(authorization)
        if not callback or not reply.processed or reply.sid is None:
            return
        # Twilio sends no status callbacks for test credentials' messages and calls.
        if credentials is not None and self._is_test(credentials[0]):
            return
        if path.endswith("/Messages.json"):
            self._callbacks.message_created(callback, self._account.message_record(reply.sid))
        elif path.endswith("/Calls.json"):
            call = self._account.call_record(reply.sid)
            self._callbacks.call_created(callback, call, params.get("StatusCallbackEvent"))

    def _decide(
        self,
        method: str,
        *,
        raw_path: str,
        path: str,
        params: Form,
        authorization: str | None,
        concurrent: int,
    ) -> tuple[_Reply, FaultKind | None]:
        route, args = _match(method, raw_path)
        if route is None:
            return _Reply.of(_not_found(path)), None
        credentials = _basic_credentials(authorization)
        if credentials is None or not self._authenticated(*credentials):
            return self._error(401, 20003), None
        if route.account_scoped:
            if not _ACCOUNT_SID.fullmatch(args[0]):
                return _Reply.of(_not_found(path)), None
            if args[0] != self.account_sid:
                return self._error(401, 20003), None
        if self._is_test(credentials[0]) and not route.test_credentials:
            return self._error(403, 20008), None
        over_limit = self._concurrency_limit is not None and concurrent > self._concurrency_limit
        spec = {_Faulted.OPERATION: self._faults, _Faulted.LOOKUP: self._lookup_faults}.get(
            route.faulted
        )
        fault = None
        if not over_limit and spec is not None:
            with self._lock:
                fault = spec.pick(self._rng.random())
        if over_limit or fault is FaultKind.TOO_MANY_REQUESTS:
            return self._error(429, 20429), fault
        if fault is FaultKind.SERVER_ERROR:
            return self._error(500, 20500), fault
        if fault is FaultKind.RESET:
            return _Reply(0, {}), fault
        delay = self._latency() if callable(self._latency) else self._latency
        if delay > 0:
            self._sleep(delay)
        try:
            reply = route.operation(self._account, args, path, params)
        except _ApiError as error:
            reply = _Reply.of(error)
        if fault is FaultKind.SERVER_ERROR_AFTER:
            # A second draw, only for this kind, so the kinds' draws stay as they were.
            with self._lock:
                draw = self._rng.random()
            status = EDGE_STATUSES[min(int(draw * len(EDGE_STATUSES)), len(EDGE_STATUSES) - 1)]
            reply = _Reply(
                status,
                {},
                processed=reply.processed,
                sid=reply.sid,
                edge_page=_edge_page(status),
            )
        if fault is FaultKind.SLOW:
            self._sleep(self._slow_seconds)
        return reply, fault

    def _is_test(self, username: str) -> bool:
        """Whether a request authenticated as `username` used the account's test credentials
        (an API key never is one)."""
        return self._test_credentials and username == self.account_sid

    def _authenticated(self, username: str, password: str) -> bool:
        secret = self._secrets.get(username)
        return secret is not None and hmac.compare_digest(secret.encode(), password.encode())

    @staticmethod
    def _error(status: int, code: int) -> _Reply:
        return _Reply(status, error_body(status, code, _ERROR_MESSAGES[code]), code)

    def _log(self, result: _Exchange, method: str, path: str, params: Form) -> None:
        reply = result.reply
        entry: Json = {
            "t": result.arrival,
            "method": method,
            "path": path,
            "params": _loggable(params),
            "status": None if result.dropped else reply.status,
            "code": reply.code,
            "fault": result.fault.value if result.fault is not None else None,
            "processed": reply.processed,
            "sid": reply.sid,
            # What Twilio-Request-Duration and -Concurrent-Requests said (the duration up to
            # the answer's logging, a few lines before it goes out).
            "concurrent": result.concurrent,
            "duration": round(max(self._clock() - result.arrival, 0.0), 4),
        }
        with self._lock:
            self._requests.append(entry)
            if self._log_file is not None:
                self._log_file.write(json.dumps(entry) + "\n")
                self._log_file.flush()

    def _response_headers(self, result: _Exchange) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Twilio-Request-Id": _new_sid("RQ"),
            "Twilio-Concurrent-Requests": str(result.concurrent),
            "Twilio-Request-Duration": f"{max(self._clock() - result.arrival, 0.0):.3f}",
            **(
                {"WWW-Authenticate": 'Basic realm="Twilio API"'}
                if result.reply.status == 401
                else {}
            ),
            **result.extra_headers,
        }
