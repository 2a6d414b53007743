"""GET /console and its assets: the web console's files (chalicelib/console/), served as they are.

The console is static HTML, CSS and JavaScript that calls the same routes as any client, with
the stage's API key the person types in; the files hold no data and no secret, so they are
served without a key. Only the files of ASSETS are served: a name is looked up, never joined to
a path, so no request reaches another file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from chalice.app import NotFoundError, Response

CONSOLE_DIR: Final = Path(__file__).resolve().parent.parent / "console"
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "new-job.js": "text/javascript; charset=utf-8",
    "job.js": "text/javascript; charset=utf-8",
}
# The page runs only its own script and style; it talks to its API and, for an upload, to the
# presigned S3 URL POST /jobs answers (another origin, hence connect-src beyond 'self').
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' https: http://127.0.0.1:* http://localhost:*; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> str:
    return (CONSOLE_DIR / name).read_text(encoding="utf-8")


def asset(name: str) -> Response:
    """One of the console's files; 404 for any other name."""
    kind = ASSETS.get(name)
    if kind is None:
        raise NotFoundError(f"no console file {name}")
    return Response(
        _read(name), status_code=200, headers={"Content-Type": kind, **SECURITY_HEADERS}
    )
