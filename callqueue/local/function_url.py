"""A Lambda function URL served locally: each HTTP request on loopback becomes the event Lambda
gives a function behind its URL (API Gateway's payload format 2.0), the function is invoked as
the local runtime invokes every function (callqueue.local.lambdas.invoke_handler, which the cost
log counts), and its response becomes the HTTP answer.

The local runtime serves the callback function this way (`STATUS_CALLBACK_URL` points here), so
the emulator's signed status callbacks take the path they take on AWS. What differs from AWS
(docs/local-runtime.md): plain http on loopback, so `x-forwarded-proto` is `http`; no TLS, no
6 MB payload limit, no throttling.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from callqueue.local.lambdas import Handler, invoke_handler

Invoke = Callable[[dict[str, Any]], Any]

log = logging.getLogger(__name__)

# Bodies Lambda passes as text; any other (a form post included) comes base64-encoded.
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
FAILED = b'{"Message":"Internal Server Error"}'


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated names' values joined with commas, as Lambda joins headers and query values."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def event_of(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    now: float | None = None,
) -> dict[str, Any]:
    """The event of one request (`target`: the request line's path and query)."""
    now = time.time() if now is None else now
    path, _, raw_query = target.partition("?")
    lowered = _joined((k.lower(), v) for k, v in headers)
    lowered.setdefault("x-forwarded-proto", "http")
    domain = lowered.get("host", "localhost")
    media = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    text = media.startswith(TEXT_TYPES)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": domain.split(".", 1)[0],
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": bool(body) and not text,
    }
    if raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(raw_query, keep_blank_values=True))
    if body:
        event["body"] = body.decode("utf-8", "replace") if text else base64.b64encode(body).decode()
    return event


def response_of(result: Any) -> tuple[int, dict[str, str], bytes]:
    """The HTTP answer to a function's result, as Lambda reads it: a dict with statusCode is a
    response; anything else is a 200 JSON body."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), dict(result.get("headers") or {}), data


class FunctionUrlServer:
    """One function's URL on loopback: `http://127.0.0.1:PORT/`."""

    def __init__(self, invoke: Invoke, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._invoke = invoke

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or "0"))
                event = event_of(
                    self.command,
                    self.path,
                    self.headers.items(),
                    body,
                    source_ip=self.client_address[0],
                )
                try:
                    status, headers, data = response_of(invoke(event))
                except Exception:
                    # As Lambda: the function failed, the caller gets a 502 (the log has why).
                    log.exception("the function behind %s failed", self.path)
                    status, headers, data = 502, {"Content-Type": "application/json"}, FAILED
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    # The caller stopped waiting (the emulator's callback timeout, on a busy
                    # machine); the function ran all the same, as behind a real URL. Not a
                    # traceback on the user's terminal.
                    log.debug("the caller of %s left before its answer", self.path)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(functions: Mapping[str, Handler], name: str) -> FunctionUrlServer:
    """The URL of the function `name`, started; looked up in `functions` when called, so it may
    be loaded after."""
    server = FunctionUrlServer(lambda event: invoke_handler(name, functions[name], event))
    server.start()
    return server
