"""The Python API of a deployed stack (docs/python-api.md): `Client` finds a stage's REST API
(`endpoint`), talks to it (`transport`) and hands out `Job`s; `records` types what it answers;
`errors` is every error it raises, one per kind of HTTP answer."""

from __future__ import annotations

from callqueue.client.client import Client, Job
from callqueue.client.errors import (
    ApiError,
    BadFile,
    BadRequest,
    ClientError,
    Conflict,
    ConnectionFailed,
    JobNotFound,
    NotAuthorized,
    ServerError,
    StackNotFound,
    TransferFailed,
    WaitTimeout,
)
from callqueue.client.rate import RateChanged
from callqueue.client.records import JobStatus, JobSummary, Outcome, Reject
from callqueue.client.retry import Retried

__all__ = [
    "ApiError",
    "BadFile",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Job",
    "JobNotFound",
    "JobStatus",
    "JobSummary",
    "NotAuthorized",
    "Outcome",
    "RateChanged",
    "Reject",
    "Retried",
    "ServerError",
    "StackNotFound",
    "TransferFailed",
    "WaitTimeout",
]
