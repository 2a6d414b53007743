"""The Python API of a deployed stack: submit a file, watch its job, steer it, fetch its reports.

    from callqueue import Client
    client = Client(stage="dev")              # or Client(api_url=..., api_key=...)
    job = client.submit("calls.csv", cps=50)
    final = job.wait(progress=lambda status: print(status.state, status.settled))
    for outcome in job.outcomes(): ...

Every call goes through the REST API (docs/rest-api.md), as curl would: the same routes, the
same checks, the same 409s. Errors are the client's own (callqueue.client.errors).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, overload

import boto3
import requests

from callqueue.client.endpoint import (
    API_KEY_VARIABLE,
    Endpoint,
    auth_of,
    aws_errors,
    cloudformation_outputs,
    resolve,
    ssm_api_url,
)
from callqueue.client.errors import (
    BadFile,
    ClientError,
    ConnectionFailed,
    JobNotFound,
    StackNotFound,
    TransferFailed,
    WaitTimeout,
)
from callqueue.client.rate import RateChanged
from callqueue.client.records import (
    SUBMITTED,
    JobStatus,
    JobSummary,
    Outcome,
    Reject,
    parse_outcomes,
    parse_rejects,
)
from callqueue.client.retry import Retried
from callqueue.client.transport import (
    ApiKeyAuth,
    SigV4Auth,
    Transport,
    region_of,
    why_unreachable,
)
from callqueue.project import PROJECT_DIR

API_URL_VARIABLE = "CALLQUEUE_API_URL"
# How long a submitted job may stay unknown to the API (its file not yet split) before waiting
# for it is given up: the splitter starts within seconds of the upload.
APPEAR_SECONDS = 120.0
DOWNLOAD_CHUNK = 1 << 16
_S3_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)

Progress = Callable[[JobStatus], None]
Report = Literal["outcomes", "rejects"]


class Client:
    """A deployed stack's REST API, found by stage (`stage=`) or given (`api_url=`; also
    CALLQUEUE_API_URL). `api_key` (or CALLQUEUE_API_KEY) for a stage with API_AUTH=api_key;
    `boto_session` supplies the region and credentials to find the stack and to sign requests
    for API_AUTH=iam. `sleep` and `clock` are what waiting uses (tests pass their own)."""

    def __init__(
        self,
        stage: str | None = None,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        auth: str | None = None,
        boto_session: Any = None,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._boto = boto_session
        self.endpoint = self._endpoint(stage, api_url, api_key, auth)
        self._api = Transport(self.endpoint.api_url, self._auth(), session=http)
        self._sleep = sleep
        self._clock = clock

    # -- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        path: str | os.PathLike[str],
        *,
        cps: int | None = None,
        window: int | None = None,
        name: str | None = None,
        resend: bool = False,
        params: Mapping[str, str | int | float | bool] | None = None,
        reference_column: str | None = None,
        keep_columns: Sequence[str] = (),
        start_at: str | datetime | None = None,
        send_window: str | None = None,
        send_days: str | None = None,
        max_per_day: int | None = None,
    ) -> Job:
        """Upload a CSV, JSON or JSON Lines file as a new job (POST /jobs, then a PUT of the
        file to the presigned URL it returns). `name` replaces the file's name, without its
        extension, in the job id; `params`: parameters for every row that does not set them,
        which may hold {{column}} placeholders (docs/campaigns.md). `reference_column` (default
        `reference`) and `keep_columns`: the file's columns kept with each row's outcome, never
        sent to Twilio. `start_at` (an aware datetime, ISO 8601 with an offset, or "in 2h"),
        `send_window` ("08:00-21:00" in each recipient's local time), `send_days` ("mon-fri")
        and `max_per_day`: when the job may send (docs/rest-api.md); the API refuses a bad one
        (ClientError). The job appears in `status()` once the stack has split it."""
        file = Path(path)
        if not file.is_file():
            raise BadFile(f"{file}: no such file")
        body: dict[str, Any] = {"filename": f"{name}{file.suffix}" if name else file.name}
        if cps is not None:
            body["cps"] = cps
        if window is not None:
            body["window"] = window
        if resend:
            body["resend"] = True
        if params:
            body["params"] = dict(params)
        if reference_column is not None:
            body["reference_column"] = reference_column
        if keep_columns:
            body["keep_columns"] = list(keep_columns)
        body.update(_timing(start_at, send_window, send_days, max_per_day))
        created = self._api.post("/jobs", body)
        upload = created["upload"]
        with file.open("rb") as data:
            try:
                response = self._api.session.put(
                    upload["url"], data=data, headers=upload.get("headers", {}), timeout=300
                )
            except requests.RequestException as error:
                raise ConnectionFailed(f"uploading {file}: {why_unreachable(error)}") from None
        if response.status_code >= 300:
            raise TransferFailed(f"uploading {file}: {_s3_error(response)}")
        return Job(self, str(created["job_id"]), submitted=True)

    def jobs(self, limit: int = 20) -> list[JobSummary]:
        """The most recent jobs, newest first (at most 100)."""
        listed = self._api.get("/jobs", {"limit": str(limit)})
        return [JobSummary.from_api(j) for j in listed.get("jobs", [])]

    def job(self, job_id: str) -> Job:
        """A handle on an existing job; nothing is asked of the API until it is used."""
        return Job(self, job_id)

    def set_rate(self, job_id: str, cps: int) -> RateChanged:
        """Change the rate of a scheduled, running or paused job; its rows already queued are
        re-timed. Conflict when every row is released or the job is finished; BadRequest for a
        `cps` below 1."""
        return RateChanged.from_api(self._api.post(f"/jobs/{job_id}/rate", {"cps": cps}))

    def retry(
        self, job_id: str, outcomes: Sequence[str] = (), errors: Sequence[int] = ()
    ) -> Retried:
        """A new job of a finished job's rows that ended in `outcomes` (default failed and
        dead_lettered) with one of `errors` (default any): docs/python-api.md."""
        body = {"outcomes": list(outcomes), **({"errors": list(errors)} if errors else {})}
        return Retried.from_api(self._api.post(f"/jobs/{job_id}/retry", body))

    # -- used by Job ------------------------------------------------------------------------

    def _get(self, path: str) -> dict[str, Any]:
        return self._api.get(path)

    def _post(self, path: str) -> dict[str, Any]:
        return self._api.post(path)

    def _download(self, url: str, what: str) -> Iterator[bytes]:
        """The body of a presigned S3 link, in pieces. No API key or signature goes with it:
        the URL carries its own authorisation."""
        try:
            response = self._api.session.get(url, stream=True, timeout=60)
        except requests.RequestException as error:
            raise ConnectionFailed(f"downloading {what}: {why_unreachable(error)}") from None
        with response:
            if response.status_code != 200:
                raise TransferFailed(f"downloading {what}: {_s3_error(response)}")
            yield from response.iter_content(DOWNLOAD_CHUNK)

    # -- construction -----------------------------------------------------------------------

    def _endpoint(
        self, stage: str | None, api_url: str | None, api_key: str | None, auth: str | None
    ) -> Endpoint:
        api_url = api_url or (None if stage else os.environ.get(API_URL_VARIABLE))
        if api_url:
            key = api_key or os.environ.get(API_KEY_VARIABLE)
            chosen = auth_of(auth or ("api_key" if key else "none"))
            return Endpoint(api_url, chosen, key, region_of(api_url))
        if not stage:
            raise StackNotFound(f"name a stage (stage=...) or an API URL ({API_URL_VARIABLE})")
        with aws_errors("finding the stack"):
            cloudformation = self._session().client("cloudformation")
            ssm = self._session().client("ssm")
        endpoint = resolve(
            stage,
            outputs=cloudformation_outputs(cloudformation),
            api_url=ssm_api_url(ssm),
            api_key=api_key,
            api_key_value=self._api_key_value,
            project_dirs=(Path.cwd(), PROJECT_DIR),
        )
        if auth:
            return Endpoint(endpoint.api_url, auth_of(auth), endpoint.api_key, endpoint.region)
        return endpoint

    def _api_key_value(self, key_id: str) -> str:
        with aws_errors(f"reading API key {key_id}"):
            gateway = self._session().client("apigateway")
            return str(gateway.get_api_key(apiKey=key_id, includeValue=True)["value"])

    def _auth(self) -> requests.auth.AuthBase | None:
        if self.endpoint.auth == "iam":
            session = self._session()
            region = self.endpoint.region or session.region_name
            credentials = session.get_credentials()
            if credentials is None or region is None:
                raise StackNotFound(
                    "signing for API_AUTH=iam needs AWS credentials and a region"
                    " (AWS_DEFAULT_REGION)"
                )
            return SigV4Auth(credentials, region)
        if self.endpoint.auth == "api_key" and self.endpoint.api_key:
            return ApiKeyAuth(self.endpoint.api_key)
        return None

    def _session(self) -> Any:
        if self._boto is None:
            self._boto = boto3.session.Session()
        return self._boto


class Job:
    """One job of a stack: its status, waiting for it, steering it and its reports."""

    def __init__(self, client: Client, job_id: str, *, submitted: bool = False) -> None:
        self._client = client
        self.job_id = job_id
        # A job just submitted is not known to the API until its file is split.
        self._submitted = submitted

    def __repr__(self) -> str:
        return f"Job({self.job_id!r})"

    def status(self) -> JobStatus:
        """The job's state and counts now. A job just submitted and not yet split has state
        `submitted`; any other job the API does not know raises JobNotFound."""
        try:
            status = JobStatus.from_api(self._client._get(f"/jobs/{self.job_id}"))
        except JobNotFound:
            if self._submitted:
                return JobStatus.submitted(self.job_id)
            raise
        self._submitted = False
        return status

    def wait(
        self,
        *,
        progress: Progress | None = None,
        poll: float = 2.0,
        timeout: float | None = None,
    ) -> JobStatus:
        """Poll until the job is finished (JobStatus.finished) and return its last status;
        `progress(status)` is called after each poll. WaitTimeout after `timeout` seconds (the
        job goes on). A paused job is waited for: someone may resume it."""
        clock, started = self._client._clock, self._client._clock()
        while True:
            status = self.status()
            if progress is not None:
                progress(status)
            if status.finished:
                return status
            waited = clock() - started
            if status.state == SUBMITTED and waited > APPEAR_SECONDS:
                raise JobNotFound(
                    f"job {self.job_id} is not known {APPEAR_SECONDS:.0f} s after its upload:"
                    " is the stack's splitter running?",
                    status=404,
                )
            if timeout is not None and waited >= timeout:
                raise WaitTimeout(
                    f"job {self.job_id} is still {status.state} after {timeout:g} s"
                    f" ({status.settled} rows settled); it goes on"
                )
            self._client._sleep(poll)

    def pause(self) -> str:
        """Stop calling the job's rows; returns its new state. Conflict when it is not sending."""
        return str(self._client._post(f"/jobs/{self.job_id}/pause")["state"])

    def resume(self) -> str:
        """Continue a paused job (or restart a release loop that died); returns its state."""
        return str(self._client._post(f"/jobs/{self.job_id}/resume")["state"])

    def cancel(self) -> str:
        """End every row not yet called as `failed` (`cancelled`); returns `cancelled`."""
        return str(self._client._post(f"/jobs/{self.job_id}/cancel")["state"])

    @overload
    def outcomes(self, path: None = None) -> list[Outcome]: ...
    @overload
    def outcomes(self, path: str | os.PathLike[str]) -> Path: ...
    def outcomes(self, path: str | os.PathLike[str] | None = None) -> list[Outcome] | Path:
        """Every row's outcome (outcomes.csv), once the job has them all: the rows, or with
        `path` the file written there as the stack holds it."""
        if path is not None:
            return self._save("outcomes", path)
        return list(self.iter_outcomes())

    def iter_outcomes(self) -> Iterator[Outcome]:
        """outcomes() one row at a time, the file spooled to disk: memory stays flat."""
        with tempfile.TemporaryFile() as spool:
            self.download("outcomes", spool)
            spool.seek(0)
            yield from parse_outcomes(io.TextIOWrapper(spool, encoding="utf-8", newline=""))

    @overload
    def rejects(self, path: None = None) -> list[Reject]: ...
    @overload
    def rejects(self, path: str | os.PathLike[str]) -> Path: ...
    def rejects(self, path: str | os.PathLike[str] | None = None) -> list[Reject] | Path:
        """The rows the stack refused and why (rejects.csv): the rows, or with `path` the file.
        A job with no rejected rows has none (and a file of the header only)."""
        if path is not None:
            return self._save("rejects", path)
        with tempfile.TemporaryFile() as spool:
            self.download("rejects", spool)
            spool.seek(0)
            return list(parse_rejects(io.TextIOWrapper(spool, encoding="utf-8", newline="")))

    def download(self, report: Report, out: BinaryIO) -> None:
        """Copy the job's outcomes.csv or rejects.csv, as the stack holds it, to `out`.
        JobNotFound when the job does not have it yet (outcomes: until every row has its
        outcome; rejects: until the file is split)."""
        status = self.status()
        if report == "outcomes":
            url = status.outcomes_url
            if url is None:
                raise JobNotFound(
                    f"job {self.job_id} has no outcomes.csv yet: it is {status.state}, and the"
                    " file is written once every row has its outcome",
                    status=404,
                )
        else:
            if status.state in (SUBMITTED, "splitting"):
                raise JobNotFound(
                    f"job {self.job_id} is {status.state}: its rejects are known once it is split",
                    status=404,
                )
            url = status.rejects_url
            if url is None:
                # The splitter writes rejects.csv only when it refused a row.
                out.write(b"row,reason\r\n")
                return
        for piece in self._client._download(url, f"{report}.csv of job {self.job_id}"):
            out.write(piece)

    def _save(self, report: Report, path: str | os.PathLike[str]) -> Path:
        # Written beside the target and moved onto it whole: a failed download leaves any
        # earlier file as it was, not half of a new one.
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with partial.open("wb") as out:
                self.download(report, out)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target


def _s3_error(response: requests.Response) -> str:
    """S3's own reason (its XML <Message>), with the status."""
    found = _S3_MESSAGE.search(response.text or "")
    reason = found.group(1).strip() if found else (response.reason or "")
    return f"HTTP {response.status_code} {reason}".strip()


def _timing(
    start_at: str | datetime | None,
    send_window: str | None,
    send_days: str | None,
    max_per_day: int | None,
) -> dict[str, Any]:
    """POST /jobs's timing fields of those given."""
    if isinstance(start_at, datetime):
        if start_at.tzinfo is None:
            raise ClientError(f"start_at {start_at.isoformat()} has no time zone; give one")
        start_at = start_at.isoformat()
    values = (start_at, send_window, send_days, max_per_day)
    names = ("start_at", "send_window", "send_days", "max_per_day")
    return {name: value for name, value in zip(names, values, strict=True) if value is not None}
