"""What every reader shares: the stream it reads, the Record it yields, the error that ends a
file, and the limits that bound what one record may hold in memory."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# No Twilio parameter comes near this (Body is limited to 1,600 characters, Twiml to 4,000); a
# longer field is a broken file, not data.
MAX_FIELD_CHARS: Final = 64 * 1024

# Bounds what one CSV record may hold in memory, quotes and line breaks included. Equal to the csv
# module's default field_size_limit, so the module's own limit (process-wide state we leave alone)
# can never be what stops a record.
MAX_CSV_RECORD_CHARS: Final = 128 * 1024

# Bounds one JSON array element or one JSON Lines line.
MAX_JSON_RECORD_CHARS: Final = 1024 * 1024

# No Twilio parameter nests (ContentVariables is one object of strings); a deeper record is
# hostile or broken, and json.loads and json.dumps recurse once per level.
MAX_JSON_DEPTH: Final = 32

# S3 returns data in chunks of this order; larger reads only grow the window.
READ_SIZE: Final = 64 * 1024

UTF8_BOM: Final = "\ufeff"
NUL: Final = b"\x00"


class FileFormatError(CallqueueError):
    """The file cannot be read at all; str(error) is a message for the user who uploaded it."""


@dataclass(frozen=True)
class Record:
    """One data record: its 1-based number (headers and blank lines are not counted) and either
    its fields or the reason it could not be read."""

    number: int
    fields: dict[str, Any] | None
    error: str | None = None


class ByteStream(Protocol):
    """The one method the readers use: botocore's StreamingBody and binary files both have it."""

    def read(self, size: int, /) -> bytes: ...


class _RawStream(io.RawIOBase):
    """Lets the io module's buffering and decoding run over an object that only has read(n)."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def buffered(stream: ByteStream) -> io.BufferedReader:
    """The stream behind a buffer of READ_SIZE, for readline and text decoding."""
    return io.BufferedReader(_RawStream(stream), READ_SIZE)


def binary_error(where: str) -> FileFormatError:
    return FileFormatError(
        f"the file contains a NUL byte ({where}): it looks like a binary file, not text"
    )


def field_too_long(number: int, name: str) -> Record:
    return Record(
        number,
        None,
        f"record {number} has a field longer than {MAX_FIELD_CHARS} characters (column {name!r})",
    )
