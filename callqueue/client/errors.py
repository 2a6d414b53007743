"""What can go wrong talking to a deployed stack, as the project's own errors.

Every HTTP error of the REST API becomes one of these, carrying the API's own message (Chalice
answers `{"Code": ..., "Message": ...}`, API Gateway itself `{"message": ...}`), so a caller
branches on the type and a person reads the message; the status code stays on the error.
"""

from __future__ import annotations

from chalicelib.errors import CallqueueError


class ClientError(CallqueueError):
    """Base of the client's errors: the message is one line a person can act on."""


class StackNotFound(ClientError):
    """No API was found for the stage (no stack, no deployed REST API, no URL given, no AWS
    region or credentials to look); `code` is AWS's error code when AWS refused."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConnectionFailed(ClientError):
    """The API (or S3, for an upload or a download) could not be reached."""


class ApiError(ClientError):
    """The API answered with an HTTP error; `status` is its code, `code` the API's error name."""

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BadRequest(ApiError):
    """400 or 413: the request itself is wrong (a bad file name, rate, window or limit)."""


class NotAuthorized(ApiError):
    """401 or 403: no API key, a wrong one, or credentials IAM refuses."""


class JobNotFound(ApiError):
    """404: no such job (or not yet: a job appears once its file is split)."""


class Conflict(ApiError):
    """409: the job's state does not allow the change; the message says why."""


class ServerError(ApiError):
    """5xx: the API failed; retrying later may work."""


class TransferFailed(ClientError):
    """The file's upload to, or a report's download from, its presigned URL failed."""


class WaitTimeout(ClientError):
    """A job did not finish within the time given; it goes on regardless."""


class BadFile(ClientError):
    """The file to submit is missing or not a file."""
