"""GET /console and its assets: the web console's files (chalicelib/console/), served as they are.

The console is static HTML, CSS and JavaScript that calls the same routes as any client, with
the stage's API key the person types in; the files hold no data and no secret, so they are
served without a key. Only the files of ASSETS are served: a name is looked up, never joined to
a path, so no request reaches another file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from chalice.app import NotFoundError, Response

CONSOLE_DIR: Final = Path(__file__).resolve().parent.parent / "console"
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "new-job.js": "text/javascript; charset=utf-8",
    "job.js": "text/javascript; charset=utf-8",
}
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# The page runs only its own script and style; it talks to its API ('self') and, for an upload
# or a report, to the presigned S3 URLs the API answers: S3's hosts in AWS, or under
# `callqueue up` moto's loopback server (AWS_ENDPOINT_URL). connect-src is filled per request.
POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def content_security_policy(env: Mapping[str, str]) -> str:
    """The page's policy: connections to itself and S3, and to the local S3's origin only when
    AWS_ENDPOINT_URL names a loopback server (a deployed stage has none)."""
    sources = ["'self'", "https://*.amazonaws.com"]
    endpoint = urlsplit(env.get("AWS_ENDPOINT_URL", "").strip())
    try:
        port = endpoint.port
    except ValueError:  # not a URL boto3 could use either
        return POLICY.format(connect=" ".join(sources))
    hostname = endpoint.hostname or ""
    if endpoint.scheme in ("http", "https") and hostname in LOOPBACK_HOSTS:
        host = f"[{hostname}]" if ":" in hostname else hostname
        sources.append(f"{endpoint.scheme}://{host}" + (f":{port}" if port else ""))
    return POLICY.format(connect=" ".join(sources))


@cache
def _read(name: str) -> str:
    return (CONSOLE_DIR / name).read_text(encoding="utf-8")


def asset(name: str, env: Mapping[str, str] | None = None) -> Response:
    """One of the console's files (with the policy for the environment `env`, by default the
    process's); 404 for any other name."""
    kind = ASSETS.get(name)
    if kind is None:
        raise NotFoundError(f"no console file {name}")
    return Response(
        _read(name),
        status_code=200,
        headers={
            "Content-Type": kind,
            "Content-Security-Policy": content_security_policy(os.environ if env is None else env),
            **SECURITY_HEADERS,
        },
    )
