"""Files staged before their job starts, so a file too large to travel in a request is planned
before anything is sent: POST /jobs/uploads answers a presigned PUT for a key under `staged/`
in HOLDING; POST /jobs/plan with `staged_key` plans the start of it (chalicelib.api.plan);
POST /jobs with `staged_key` copies it into SOURCE, where it becomes a job as an upload does,
and deletes it (chalicelib.api.jobs). Whatever is never started expires after a day (HOLDING's
lifecycle rule).

A staged key is `staged/TOKEN/FILENAME` with a random TOKEN of 32 hex digits: a user cannot
guess another's, and a key of any other shape (another prefix, `..`, a nested path) is a 400
before S3 is asked.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any, Final

from chalice.app import BadRequestError, Request

from chalicelib.api.request_bodies import current, json_of, raw_body_of
from chalicelib.aws.staging import STAGED_PREFIX, StagedFiles
from chalicelib.intake.manifest import is_manifest
from chalicelib.intake.parsing import FileFormatError, detect_format

URL_EXPIRES_SECONDS: Final = 900
# CopyObject copies at most 5 GB in one request: a larger staged file cannot become a job.
COPY_MAX_BYTES: Final = 5 * 1024**3
_KEY = re.compile(rf"^{re.escape(STAGED_PREFIX)}(?P<token>[0-9a-f]{{32}})/(?P<filename>[^/]+)$")


def checked_filename(value: Any) -> str:
    """A file name the intake can read: no path, a known extension, not a manifest's name."""
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise BadRequestError("`filename` must be a file name such as calls.csv")
    try:
        detect_format(value)
    except FileFormatError as error:
        raise BadRequestError(str(error)) from None
    if is_manifest(value):
        raise BadRequestError(f"{value} is a job manifest's name; rename the file")
    return value


def staged_key_of(value: Any) -> tuple[str, str, str]:
    """`staged_key` checked: the key, its token and its file name."""
    match = _KEY.match(value) if isinstance(value, str) else None
    if match is None:
        raise BadRequestError(
            "`staged_key` must be the key POST /jobs/uploads answered (staged/TOKEN/FILENAME)"
        )
    filename = checked_filename(match["filename"])
    return value, match["token"], filename


class StagedApi:
    def __init__(
        self, staged: StagedFiles, *, new_token: Callable[[], str] = lambda: uuid.uuid4().hex
    ) -> None:
        self._staged = staged
        self._new_token = new_token

    def upload(self, request: Request | None) -> dict[str, Any]:
        """POST /jobs/uploads: `{"filename": "calls.csv"}` -> the staged key and its URL."""
        body = json_of(raw_body_of(current(request)), "the body is not JSON")
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object with `filename`")
        filename = checked_filename(body.get("filename"))
        key = f"{STAGED_PREFIX}{self._new_token()}/{filename}"
        return {
            "staged_key": key,
            "upload": {
                "url": self._staged.url_to_put(key, URL_EXPIRES_SECONDS),
                "method": "PUT",
                "headers": {},
                "expires_in": URL_EXPIRES_SECONDS,
            },
        }
