"""POST /jobs/plan: what a file would become as a job, sending nothing.

The body is POST /jobs's (`filename` and the job's settings: cps, window, params, timing,
reference_column, keep_columns) with the file's text as `content`. The answer is the plan the
CLI's `callqueue plan --json` prints (chalicelib.intake.plan, chalicelib.intake.timed_plan),
under the stage's own defaults (rate, window, region, sender limits, account day), with the
first REJECTS_SHOWN rejects: a page shows it before the job starts.

The content travels in the request, so a plan is of a file up to MAX_BODY_BYTES (Lambda's
request limit); a larger file is planned by `callqueue plan` where it is.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any, Final

from chalice.app import BadRequestError, Request

from chalicelib.api.request_bodies import job_request, params_of
from chalicelib.config import ConfigError, Settings
from chalicelib.core.costs import PriceTable
from chalicelib.core.metering import SenderLimits
from chalicelib.core.schedule import Schedule
from chalicelib.intake.carry import Carry
from chalicelib.intake.manifest import is_manifest
from chalicelib.intake.parsing import FileFormatError, detect_format
from chalicelib.intake.plan import plan
from chalicelib.intake.timed_plan import timed_plan
from chalicelib.intake.timing import JobTiming

REJECTS_SHOWN: Final = 20


class PlanApi:
    def __init__(
        self,
        settings: Settings,
        *,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._prices = prices
        self._clock = clock

    def plan(self, request: Request | None) -> dict[str, Any]:
        """400 names what is wrong: a setting, the file's kind, or the file itself."""
        now = self._clock()
        body, metadata = job_request(request, now)
        filename, content = body.get("filename"), body.get("content")
        if not isinstance(filename, str) or not filename or "/" in filename:
            raise BadRequestError("`filename` must be a file name such as calls.csv")
        if is_manifest(filename):
            raise BadRequestError(f"{filename} is a job manifest's name; rename the file")
        if not isinstance(content, str):
            raise BadRequestError("`content` must be the file's text")
        try:
            fmt = detect_format(filename)
            schedule = Schedule(
                int(metadata.get("cps", self._settings.cps)),
                int(metadata.get("window", self._settings.window_seconds)),
            )
            timing = JobTiming.of(metadata, now)
            result = plan(
                io.BytesIO(content.encode()),
                fmt,
                schedule,
                SenderLimits.parse(self._settings.sender_limits or "auto"),
                self._settings.default_region,
                params=params_of(body),
                prices=self._prices,
                carry=Carry.of_metadata(metadata),
                timing=timing,
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
        return {**planned, "filename": filename, "timeline": timeline.to_json()}
