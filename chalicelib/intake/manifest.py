"""A job manifest: the settings of a file dropped into S3 that object metadata cannot carry (it
holds ASCII only, and a template's text is anyone's language), as a small JSON object beside it.

The manifest of `calls.csv` is `calls.csv.job.json` in the same bucket, or the key the file's
`x-amz-meta-manifest` names. It is read when the file is split, so it must be written first:
the API and the command write it before the file. A manifest is never a job of its own.

    {"params": {"From": "+15005550006", "Body": "Hi {{name}}, your code is {{code}}"},
     "start_at": "2026-12-07T09:00:00-05:00", "send_window": "08:00-21:00"}

It also takes the job's timing settings (chalicelib.intake.timing: start_at, send_window,
send_days, max_per_day).
"""

from __future__ import annotations

import json
from typing import Final

from chalicelib.config import ConfigError
from chalicelib.intake.timing import NAMES, JobTiming
from chalicelib.intake.validation.templates import BadParams, JobParams, job_params

MANIFEST_SUFFIX: Final = ".job.json"
# A template of a few messages' text; a larger object is not a manifest.
MAX_MANIFEST_BYTES: Final = 64 * 1024
_KEYS: Final = frozenset({"params", *NAMES})


def is_manifest(key: str) -> bool:
    return key.casefold().endswith(MANIFEST_SUFFIX)


def manifest_key(key: str, metadata: dict[str, str]) -> tuple[str, bool]:
    """The key of a file's manifest, and whether the file named it (then it must exist)."""
    named = metadata.get("manifest", "").strip()
    return (named, True) if named else (key + MANIFEST_SUFFIX, False)


def read_manifest(data: bytes, key: str, now: float = 0.0) -> tuple[JobParams, JobTiming]:
    """The job-wide parameters and timing settings a manifest holds (a relative start counts
    from `now`); ConfigError says what is wrong with it, for a job that fails with that
    reason."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ConfigError(f"manifest {key} is over {MAX_MANIFEST_BYTES:,} bytes")
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"manifest {key} is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise ConfigError(f'manifest {key} must be a JSON object such as {{"params": {{...}}}}')
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise ConfigError(
            f"manifest {key} has unknown keys: {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(_KEYS))}"
        )
    try:
        params = job_params(body.get("params"), f"manifest {key}: params")
    except BadParams as error:
        raise ConfigError(str(error)) from None
    try:
        timing = JobTiming.of(body, now)
    except ConfigError as error:
        raise ConfigError(f"manifest {key}: {error}") from None
    return params, timing


def manifest_bytes(params: JobParams, timing: JobTiming | None = None) -> bytes:
    """A manifest of these parameters (and timing settings), as the API and the command write
    it."""
    body: dict[str, object] = {"params": dict(params.values)}
    if timing is not None:
        body.update(timing.fields())
    return json.dumps(body, ensure_ascii=False).encode()
