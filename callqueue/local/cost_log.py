"""What a local run would be billed for on AWS, observed in the local runtime's own processes
(bench/cost.py reads it). Off unless CALLQUEUE_COST_LOG names a directory.

- The moto server's requests, as AWS meters them (`AwsLog`, a WSGI middleware in front of moto):
  every request by service and operation, with its 64 KB chunks (SNS and SQS bill each chunk of
  a payload as a request), an SQS receive that found no message apart (`ReceiveMessage (empty)`:
  the local pollers' short polls, which bench/cost.py replaces with AWS's long polls); DynamoDB's
  write and read units from the items' sizes in moto's tables before and after each write, as
  on-demand billing counts them (a unit per 1 KB written, per 4 KB read, per item of a
  BatchGetItem, found or not; twice for a transaction, half for an eventually consistent read;
  a write to each global index the item is in before or after).
- Each Lambda invocation's duration, in the process that ran it (`invoked`), for GB-seconds.
- The local REST API's requests (API Gateway bills each): `chalice local` logs a line a request,
  into `API_LOG` (callqueue.local.runtime).

The deployed code never imports this: only callqueue.local's moto server and function hosts.
"""

from __future__ import annotations

import io
import json
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from callqueue.local.moto_patches.locking import buffered_body

LOG_ENV = "CALLQUEUE_COST_LOG"
# The local REST API's own log in the cost log's directory: a line a request it answered.
API_LOG = "api-requests.log"
CHUNK_BYTES = 64 * 1024
EMPTY_RECEIVE = "ReceiveMessage (empty)"

_lock = threading.Lock()
_logs: list[AwsLog] = []


def log_dir() -> Path | None:
    value = os.environ.get(LOG_ENV)
    return Path(value) if value else None


def invoked(name: str, seconds: float) -> None:
    """One Lambda invocation of `name` and how long it ran, appended to this process's log."""
    directory = log_dir()
    if directory is None:
        return
    line = json.dumps({"function": name, "seconds": seconds}) + "\n"
    with _lock, (directory / f"lambda-{os.getpid()}.jsonl").open("a") as log:
        log.write(line)


def _service(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            return str(scope[3])
    return "unknown"


def _operation(service: str, environ: dict[str, Any], body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    if body[:7] == b"Action=" or b"&Action=" in body:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
    if service == "s3":
        bucket_only = path.strip("/").count("/") == 0
        if method == "GET" and bucket_only:
            return "ListObjects"
        return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}.get(
            method, f"{method}Object"
        )
    if service == "lambda" and path.endswith("/invocations"):
        return "Invoke"
    return f"{method} {path.split('/')[1] if '/' in path else path}"


def _received(response: list[bytes]) -> bool:
    """Whether an SQS ReceiveMessage answer holds a message (JSON or query protocol)."""
    body = b"".join(response)
    return b'"Messages"' in body or b"<Message>" in body


class AwsLog:
    """WSGI middleware in front of moto's application: counts what each request is billed."""

    def __init__(self, app: Callable[..., Iterable[bytes]], directory: Path) -> None:
        self._app = app
        self._path = directory / f"aws-{os.getpid()}.json"
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.chunks: Counter[str] = Counter()
        self.write_units: Counter[str] = Counter()
        self.read_units: Counter[str] = Counter()
        self.item_bytes: Counter[str] = Counter()
        self.items: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = buffered_body(environ)
        service = _service(environ)
        operation = _operation(service, environ, body)
        status: list[str] = []

        def started(code: str, headers: Any, *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        if service == "dynamodb":
            from callqueue.local.cost_units import DynamoUnits  # noqa: PLC0415 - moto's models

            units = DynamoUnits(operation, json.loads(body or b"{}"))
            result = list(self._app(environ, started))
            ok = bool(status) and status[0].startswith("200")
            units.after(ok, b"".join(result), self._query_again(environ, units))
            with self._lock:
                units.add_to(self)
        else:
            result = list(self._app(environ, started))
        out = sum(len(part) for part in result)
        if operation == "ReceiveMessage" and not _received(result):
            operation = EMPTY_RECEIVE
        with self._lock:
            key = f"{service}:{operation}"
            self.requests[key] += 1
            self.chunks[key] += max(1, math.ceil(max(len(body), out) / CHUNK_BYTES))
        return result

    def _query_again(self, environ: dict[str, Any], units: Any) -> Callable[[dict[str, Any]], Any]:
        """Runs a request again without its projection, for the sizes of the items a Query or
        a Scan read (a projection does not lower what is billed)."""

        def again(request: dict[str, Any]) -> Any:
            body = json.dumps(request).encode()
            copy = dict(environ)
            copy["wsgi.input"] = io.BytesIO(body)
            copy["CONTENT_LENGTH"] = str(len(body))
            return json.loads(b"".join(self._app(copy, lambda *_: None)))

        return again

    def dump(self) -> None:
        payload = {
            "requests": self.requests,
            "chunks": self.chunks,
            "write_units": self.write_units,
            "read_units": self.read_units,
            "item_bytes": self.item_bytes,
            "items": self.items,
        }
        with self._lock:
            self._path.write_text(json.dumps(payload, indent=1, sort_keys=True))


def install(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """`app` behind an AwsLog when the cost log is on, with its dump run every second."""
    directory = log_dir()
    if directory is None:
        return app
    logged = AwsLog(app, directory)
    _logs.append(logged)

    def dump_often() -> None:
        while True:
            threading.Event().wait(1.0)
            logged.dump()

    threading.Thread(target=dump_often, name="cost-log", daemon=True).start()
    return logged


def dump_all() -> None:
    """Write every AwsLog's counts now (the moto server's last act before it exits)."""
    for logged in _logs:
        logged.dump()
