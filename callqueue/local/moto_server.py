"""Emulated AWS in a process of its own: moto in server mode on loopback.

The runtime keeps the handlers; this process is "AWS". moto's docker-less Lambda backend is
pointed back at the runtime: an Invoke (from the state machine's Task states or the Lambda API)
becomes an HTTP request to the runtime's function host, which runs the real handler and answers
with its result or its error, as Lambda does. Running moto apart keeps its work off the
handlers' interpreter (one GIL), which matters at hundreds of calls per second on two cores.
moto's internals are patched first (callqueue.local.moto_patches).

Usage: python -m callqueue.local.moto_server FUNCTION_HOST_URL
Prints "READY <port>" once serving; stops when its standard input closes.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import sys
import threading
import warnings
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from callqueue.local import cost_log
from callqueue.local.moto_patches.awslambda import forward_invocations
from callqueue.local.moto_patches.dispatch import speed_up_dispatch, speed_up_responses
from callqueue.local.moto_patches.dynamodb import (
    speed_up_conditions,
    speed_up_transactions,
    speed_up_updates,
)
from callqueue.local.moto_patches.locking import BACKENDS, Serialized, serialize_long_polls
from callqueue.local.moto_patches.sns import speed_up_sns
from callqueue.local.moto_patches.sqs import speed_up_sqs, speed_up_sqs_receive


class _Body(io.RawIOBase):
    """A request's body, read no further than its Content-Length, so the connection can serve
    the next request once what the application left unread is drained."""

    def __init__(self, raw: Any, length: int) -> None:
        super().__init__()
        self._raw = raw
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(min(len(buffer), self.left)) if self.left else b""
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.left if size is None or size < 0 else min(size, self.left)
        line: bytes = self._raw.readline(limit) if limit else b""
        self.left -= len(line)
        return line

    def drain(self) -> bool:
        while self.left:
            chunk = self._raw.read(min(self.left, 1 << 16))
            if not chunk:
                return False
            self.left -= len(chunk)
        return True


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection open after a response, as AWS does.

    werkzeug's server answers every request with `Connection: close` (http.server would not
    know how to skip a body the application left unread), so each request would pay a new TCP
    connection and a new server thread: at hundreds of requests a second that is most of the
    cost, and every client's pool of open connections goes unused. Here a body with a
    Content-Length is read no further than its length and drained before the response; a
    chunked body still closes the connection.
    """

    _body: _Body | None = None
    # TCP_NODELAY on each connection: on one kept open, an answer's body (a small write after
    # its headers) waited for the client's delayed ACK, and every request took 48 ms (measured
    # here; 3-5 ms without).
    disable_nagle_algorithm = True

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        self._body = None
        if "wsgi.input_terminated" not in environ:  # not chunked
            length = self.headers.get("Content-Length") or "0"
            self._body = _Body(self.rfile, int(length) if length.isdigit() else 0)
            environ["wsgi.input"] = self._body
        return environ

    def run_wsgi(self) -> None:
        rfile = self.rfile
        try:
            super().run_wsgi()
        finally:
            self.rfile = rfile

    def send_header(self, keyword: str, value: str) -> None:
        closing = keyword.lower() == "connection" and value.lower() == "close"
        if closing and self._body is not None and self._body.drain():
            # werkzeug reads whatever else is on the socket after a response, which on a
            # connection kept open is the next request: it is shown an empty stream instead.
            self.rfile = io.BytesIO()
            return
        super().send_header(keyword, value)


def serve() -> BaseWSGIServer:
    """moto's application, served on loopback by threads that keep their connections open."""
    app = cost_log.install(Serialized(DomainDispatcherApplication(create_backend_app), BACKENDS))
    return make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveHandler)


def main(argv: list[str]) -> int:
    # As callqueue.local.worker_process.relax_garbage_collection (not imported: it loads boto3).
    gc.set_threshold(50_000, 50, 1_000)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto enforces no IAM or resource policies; it says so about the template's queue policies.
    logging.getLogger("moto.cloudformation.parsing").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse AWS::SQS::QueuePolicy")
    forward_invocations(argv[1])
    speed_up_sqs()
    speed_up_sqs_receive()
    speed_up_dispatch()
    speed_up_sns()
    speed_up_responses()
    speed_up_transactions()
    speed_up_conditions()
    speed_up_updates()
    serialize_long_polls(BACKENDS)
    server = serve()
    port = server.server_port
    threading.Thread(target=server.serve_forever, name="aws-server", daemon=True).start()
    # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    print(f"READY {port}", flush=True)
    sys.stdin.read()
    server.shutdown()
    # Request threads still in a long poll would keep the process alive for up to 20 s more.
    sys.stdout.flush()
    cost_log.dump_all()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
