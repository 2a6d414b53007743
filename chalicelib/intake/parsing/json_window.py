"""A sliding window of decoded text over a JSON file, from which the JSON reader takes one value
at a time without ever holding the whole file."""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, Final

from chalicelib.errors import CallqueueError
from chalicelib.intake.parsing.base import (
    MAX_JSON_DEPTH,
    MAX_JSON_RECORD_CHARS,
    NUL,
    READ_SIZE,
    UTF8_BOM,
    ByteStream,
    FileFormatError,
    binary_error,
)
from chalicelib.intake.parsing.json_scan import ends_within, scan_nesting, value_is_complete
from chalicelib.intake.parsing.json_values import json_type

_NOT_WHITESPACE: Final = re.compile(r"[^ \t\n\r]")
_DECODER: Final = json.JSONDecoder()


class TooDeepError(CallqueueError):
    """Raised by JsonWindow.value past a value nested more than MAX_JSON_DEPTH levels deep
    (never decoded); `kind` says what it was, for a message."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def found(char: str) -> str:
    """What a message says was found instead of the expected character."""
    return "the end of the file" if not char else repr(char)


class JsonWindow:
    """A sliding window of decoded text over the stream: the unread rest of the last chunk plus
    whatever one value needs, never the whole file."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._bytes_read = 0
        self._at_start = True
        self.text = ""
        self.pos = 0
        # Characters already dropped from the front, so messages can give file offsets.
        self.dropped = 0
        self.eof = False

    def offset(self, pos: int | None = None) -> int:
        return self.dropped + (self.pos if pos is None else pos)

    def fill(self, at_least: int = 1) -> None:
        """Drop what was consumed and append at least ``at_least`` more characters (or the rest).

        Asking for as much again as a value already holds keeps re-parsing of a long value,
        delivered in small reads, linear rather than quadratic.
        """
        chunks = [self.text[self.pos :]]
        added = 0
        while added < at_least and not self.eof:
            chunk = self._read_chunk()
            chunks.append(chunk)
            added += len(chunk)
        self.dropped += self.pos
        self.text = "".join(chunks)
        self.pos = 0

    def _read_chunk(self) -> str:
        data = self._stream.read(READ_SIZE)
        if NUL in data:
            raise binary_error(f"byte offset {self._bytes_read + data.index(NUL)}")
        pending = len(self._decoder.getstate()[0])
        try:
            chunk = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            offset = self._bytes_read - pending + error.start
            raise FileFormatError(
                f"the file is not valid UTF-8 (byte 0x{error.object[error.start]:02x} at byte "
                f"offset {offset}); save it as UTF-8"
            ) from None
        self._bytes_read += len(data)
        self.eof = not data
        if self._at_start and chunk:
            self._at_start = False
            chunk = chunk.removeprefix(UTF8_BOM)
        return chunk

    def peek(self) -> str:
        """The next non-whitespace character, or "" at the end of the file."""
        while True:
            match = _NOT_WHITESPACE.search(self.text, self.pos)
            if match is not None:
                self.pos = match.start()
                return match.group()
            self.pos = len(self.text)
            if self.eof:
                return ""
            self.fill()

    def expect(self, char: str, context: str) -> None:
        found_char = self.peek()
        if found_char != char:
            raise FileFormatError(
                f"invalid JSON at character {self.offset()}: expected {char!r} {context}, "
                f"found {found(found_char)}"
            )
        self.pos += 1

    def separator(self, close: str, where: str, after: str = "") -> bool:
        """Step past the ',' or `close` that follows an item of an array or object: True at
        `close`. Anything else is invalid JSON, said `where` in the file and `after` what."""
        found_char = self.peek()
        self.pos += 1
        if found_char == close:
            return True
        if found_char != ",":
            raise FileFormatError(
                f"invalid JSON{where} at character {self.offset() - 1}: expected ',' or "
                f"{close!r}{after}, found {found(found_char)}"
            )
        return False

    def value(self, what: str) -> Any:
        """The next value, decoded; TooDeepError (with the window past the value) when it
        nests deeper than MAX_JSON_DEPTH, so the caller can reject one record and go on."""
        first = self.peek()
        nests = first in ("{", "[")
        while True:
            end, deep = scan_nesting(self.text, self.pos, MAX_JSON_DEPTH) if nests else (0, False)
            if deep:
                if end is not None:
                    if end - self.pos > MAX_JSON_RECORD_CHARS:
                        raise self._too_long(what)
                    self.pos = end
                    raise TooDeepError(json_type({} if first == "{" else []))
                if self.eof:
                    raise FileFormatError(
                        f"invalid JSON in {what} at character {self.offset()}: its brackets "
                        "are never closed"
                    )
            else:
                decoded = self._decode(what)
                if decoded is not None:
                    return decoded[0]
            held = len(self.text) - self.pos
            if held > MAX_JSON_RECORD_CHARS:
                raise self._too_long(what)
            self.fill(at_least=max(1, min(held, MAX_JSON_RECORD_CHARS + 1 - held)))

    def skip(self, what: str) -> None:
        """Read past the next value, which is not used: it may nest as deep as it likes."""
        try:
            self.value(what)
        except TooDeepError:
            # Never decoded and never used; only a record's depth matters.
            return

    def _decode(self, what: str) -> tuple[Any] | None:
        """The value at the window's position, (value,), or None when more text is needed.
        Only called once the value is known to nest no deeper than MAX_JSON_DEPTH within the
        window, so the decoder's recursion is bounded."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                if self.eof or value_is_complete(self.text, self.pos):
                    raise FileFormatError(
                        f"invalid JSON in {what} at character {self.offset(error.pos)}: {error.msg}"
                    ) from None
            except ValueError as error:
                # Not a syntax error (an integer too long to convert): more text will not help.
                raise FileFormatError(f"invalid JSON in {what}: {error}") from None
            else:
                if self.eof or ends_within(self.text, end, value):
                    if end - self.pos > MAX_JSON_RECORD_CHARS:
                        raise self._too_long(what)
                    self.pos = end
                    return (value,)
            return None

    def _too_long(self, what: str) -> FileFormatError:
        return FileFormatError(
            f"{what} at character {self.offset()} is longer than {MAX_JSON_RECORD_CHARS} characters"
        )
