"""POST /jobs/plan: what a file would become as a job, sending nothing.

The body is POST /jobs's (`filename` and the job's settings: cps, window, params, timing,
reference_column, keep_columns) with the file's text as `content`. The answer is the plan the
CLI's `callqueue plan --json` prints (chalicelib.intake.plan, chalicelib.intake.timed_plan),
under the stage's own defaults (rate, window, region, sender limits, account day), with the
first REJECTS_SHOWN rejects: a page shows it before the job starts.

The content travels in the request, so a plan is of a file up to MAX_BODY_BYTES (Lambda's
request limit). A larger file is staged first (chalicelib.api.staged) and the body names it as
`staged_key` instead of `filename` and `content`: the plan is then of a sample, the first
SAMPLE_ROWS rows or those read in SAMPLE_SECONDS (API Gateway answers within 29 s), streamed
from S3, with how much was read and an estimate of the whole file's rows.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any, Final

from chalice.app import BadRequestError, NotFoundError, Request

from chalicelib.api.request_bodies import job_request, params_of
from chalicelib.api.staged import staged_key_of
from chalicelib.aws.staging import StagedFiles
from chalicelib.config import ConfigError, Settings
from chalicelib.core.costs import PriceTable
from chalicelib.core.metering import SenderLimits
from chalicelib.core.schedule import Schedule
from chalicelib.intake.carry import Carry
from chalicelib.intake.manifest import is_manifest
from chalicelib.intake.parsing import ByteStream, FileFormatError, detect_format
from chalicelib.intake.plan import plan
from chalicelib.intake.timed_plan import timed_plan
from chalicelib.intake.timing import JobTiming

REJECTS_SHOWN: Final = 20
SAMPLE_ROWS: Final = 20_000
SAMPLE_SECONDS: Final = 15.0


class _Counted:
    """A stream that counts the bytes read through it."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self.bytes_read = 0

    def read(self, size: int, /) -> bytes:
        data = self._stream.read(size)
        self.bytes_read += len(data)
        return data


class _Sample:
    """When a staged file's plan stops: after `rows` rows or `seconds` on `clock`."""

    def __init__(self, clock: Callable[[], float], rows: int, seconds: float) -> None:
        self._clock = clock
        self._rows = rows
        self._until = clock() + seconds
        self.stopped = False

    def __call__(self, planned: int) -> bool:
        self.stopped = planned >= self._rows or self._clock() >= self._until
        return self.stopped


class PlanApi:
    def __init__(
        self,
        settings: Settings,
        *,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.time,
        staged: StagedFiles | None = None,
        sample_rows: int = SAMPLE_ROWS,
        sample_seconds: float = SAMPLE_SECONDS,
    ) -> None:
        """`staged`: where staged files are read (None: a plan is of `content` only)."""
        self._settings = settings
        self._prices = prices
        self._clock = clock
        self._staged = staged
        self._sample_rows = sample_rows
        self._sample_seconds = sample_seconds

    def plan(self, request: Request | None) -> dict[str, Any]:
        """400 names what is wrong: a setting, the file's kind, or the file itself; 404: no
        such staged file."""
        now = self._clock()
        body, metadata = job_request(request, now)
        if "staged_key" in body:
            return self._plan_staged(body, metadata, now)
        filename, content = body.get("filename"), body.get("content")
        if not isinstance(filename, str) or not filename or "/" in filename:
            raise BadRequestError("`filename` must be a file name such as calls.csv")
        if is_manifest(filename):
            raise BadRequestError(f"{filename} is a job manifest's name; rename the file")
        if not isinstance(content, str):
            raise BadRequestError("`content` must be the file's text")
        planned = self._plan(io.BytesIO(content.encode()), filename, body, metadata, now)
        return {**planned, "filename": filename}

    def _plan_staged(
        self, body: dict[str, Any], metadata: dict[str, str], now: float
    ) -> dict[str, Any]:
        key, _, filename = staged_key_of(body["staged_key"])
        staged = None if self._staged is None else self._staged.open(key)
        if staged is None:
            raise NotFoundError(f"no staged file {key}: upload it first, or it expired")
        counted = _Counted(staged.body)
        sample = _Sample(self._clock, self._sample_rows, self._sample_seconds)
        try:
            planned = self._plan(counted, filename, body, metadata, now, stop=sample)
        finally:
            staged.body.close()
        rows = planned["rows"]
        estimate = rows
        if sample.stopped and counted.bytes_read:
            estimate = max(rows, round(rows * staged.size / counted.bytes_read))
        return {
            **planned,
            "filename": filename,
            "staged_key": key,
            "sampled": sample.stopped,
            "rows_read": rows,
            "bytes_read": counted.bytes_read,
            "size": staged.size,
            "estimated_rows": estimate,
        }

    def _plan(
        self,
        stream: ByteStream,
        filename: str,
        body: dict[str, Any],
        metadata: dict[str, str],
        now: float,
        stop: Callable[[int], bool] | None = None,
    ) -> dict[str, Any]:
        try:
            fmt = detect_format(filename)
            schedule = Schedule(
                int(metadata.get("cps", self._settings.cps)),
                int(metadata.get("window", self._settings.window_seconds)),
            )
            timing = JobTiming.of(metadata, now)
            result = plan(
                stream,
                fmt,
                schedule,
                SenderLimits.parse(self._settings.sender_limits or "auto"),
                self._settings.default_region,
                params=params_of(body),
                prices=self._prices,
                carry=Carry.of_metadata(metadata),
                timing=timing,
                stop=stop,
            )
        except (FileFormatError, ConfigError) as error:
            raise BadRequestError(f"{filename}: {error}") from None
        timeline = timed_plan(
            result.groups,
            start=max(now, timing.start_at or now),
            cps=schedule.cps,
            window_seconds=schedule.window_seconds,
            window=timing.window,
            max_per_day=timing.max_per_day,
            daily_limit=self._settings.account_daily_limit or None,
            account_zone=self._settings.account_time_zone,
        )
        planned = result.to_json()
        planned["rejects"] = result.rejects[:REJECTS_SHOWN]
        return {**planned, "timeline": timeline.to_json()}
