"""The HTTP side: a threading server that keeps track of its connections, a handler that hands
each request to the emulator and sends its answer (or resets the connection), and the kernel's
receive times that stamp a request's arrival."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from callqueue.local.emulator.answer import _Answering


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of new connections from a parallel sender must not overflow the listen backlog.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: _Answering) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)
        if _SO_TIMESTAMPNS is not None:
            # Set on the listening socket, a connection has it from the start: its first bytes
            # may come before its handler thread runs.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections so they end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away; nothing to answer
        super().handle_error(request, client_address)


# Linux's socket option for the kernel's receive time of each read's data (not named in the
# socket module of every Python); elsewhere requests are stamped when they are read.
_SO_TIMESTAMPNS: int | None = getattr(
    socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None
)


class _StampedReader(io.RawIOBase):
    """A connection's reads, noting the kernel's receive time of the first data read since
    `received_at` was last cleared: a request is stamped when it reached the machine, not when a
    thread of this process got round to reading it. On a 2-core machine shared with moto and the
    sender, the emulator's threads wait their turn for a core: stamped as they read, a 15 ms wait
    put five requests within 3 ms of each other, where their data had come 5 ms apart."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self.received_at: float | None = None
        self._first = True

    def clear(self) -> None:
        """The next read is a new request's first."""
        self.received_at, self._first = None, True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        read, ancillary, _, _ = self._connection.recvmsg_into([buffer], socket.CMSG_SPACE(16))
        if read and self._first:
            # Only the first read's time is the request's (later reads are later bytes).
            self._first = False
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", data[:16])
                    self.received_at = seconds + nanoseconds / 1e9
        return read


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    _stamps: _StampedReader | None = None

    def setup(self) -> None:
        super().setup()
        if _SO_TIMESTAMPNS is None:
            return
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            return  # not supported here: stamped when read
        self._stamps = _StampedReader(self.connection)
        unstamped, self.rfile = self.rfile, io.BufferedReader(self._stamps)
        unstamped.close()  # the socket is closed for real only once its files are

    def handle_one_request(self) -> None:
        if self._stamps is not None:
            self._stamps.clear()
        super().handle_one_request()

    def version_string(self) -> str:
        return "callqueue-twilio-emulator"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        emulator = cast(_Server, self.server).emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        result = emulator._exchange(
            self.command,
            self.path,
            self.headers.get("Authorization"),
            body,
            self._stamps.received_at if self._stamps is not None else None,
        )
        if result.dropped:
            # RST instead of a response: the client sees a connection error and cannot tell
            # whether the request took effect.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if result.reply.edge_page is not None:
            payload = result.reply.edge_page.encode("utf-8")
            headers = {"Content-Type": "text/html", "Server": "awselb/2.0"}
        else:
            payload = json.dumps(result.reply.body).encode("utf-8")
            headers = emulator._response_headers(result)
        self.send_response(result.reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request line on stderr; the requests log records every request."""
