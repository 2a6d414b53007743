"""The user's own columns that travel with a row and are never sent to Twilio: its reference (the
`reference` column, or the one the job names) and any columns the job asks to keep.

They ride in the chunk row, the queued row, the response envelope and the results item, so a
row's outcome (outcomes.csv, `run --outcomes`, a status callback's record) can be joined back
to the user's own records. Validation never sees them as parameters: a row's Twilio parameters
are only the ones api_params names.

Settings: the job's `reference-column` and `keep-columns` (comma-separated header names, matched
regardless of case) from the upload's object metadata, as the rate and window are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final

from chalicelib.config import ConfigError
from chalicelib.core.jobs import Job
from chalicelib.intake.validation import InvalidRow

REFERENCE: Final = "reference"
# A reference is an id, not a document: long enough for any key or URL-safe token. A kept
# column may be a name or an address line. Both count toward the row's size as it travels.
MAX_REFERENCE_CHARS: Final = 256
MAX_KEPT_CHARS: Final = 1024
MAX_KEPT_COLUMNS: Final = 20


@dataclass(frozen=True)
class Carry:
    """Which of a file's columns travel with each row."""

    reference_column: str = REFERENCE
    keep_columns: tuple[str, ...] = ()

    @classmethod
    def of_metadata(cls, metadata: Mapping[str, str]) -> Carry:
        """The job's settings in object metadata (x-amz-meta-reference-column, -keep-columns).
        Raises ConfigError naming the setting."""
        reference = metadata.get("reference-column", "").strip() or REFERENCE
        keep = tuple(c.strip() for c in metadata.get("keep-columns", "").split(",") if c.strip())
        return cls.of(reference, keep)

    @classmethod
    def of(cls, reference_column: str, keep_columns: tuple[str, ...]) -> Carry:
        """Raises ConfigError for settings that cannot be used."""
        lowered = [c.lower() for c in keep_columns]
        for name in (reference_column, *keep_columns):
            # They travel as S3 object metadata, which is ASCII only.
            if not (name.isascii() and name.isprintable() and name.strip()) or "," in name:
                raise ConfigError(
                    f"column {name!r}: a job setting names columns in printable ASCII, "
                    "without commas; rename the column in the file"
                )
        if len(keep_columns) > MAX_KEPT_COLUMNS:
            raise ConfigError(f"keep-columns: {len(keep_columns)}; at most {MAX_KEPT_COLUMNS}")
        if len(set(lowered)) != len(lowered) or reference_column.lower() in lowered:
            raise ConfigError(
                f"keep-columns: {','.join(keep_columns)} names a column twice "
                f"(the reference column {reference_column} is kept already)"
            )
        if REFERENCE in lowered:
            raise ConfigError("keep-columns: `reference` is the name outcomes give the reference")
        return cls(reference_column, tuple(keep_columns))

    @classmethod
    def of_job(cls, job: Job) -> Carry:
        keep = tuple(c for c in (job.keep_columns or "").split(",") if c)
        return cls(job.reference_column or REFERENCE, keep)

    def on_job(self, job: Job) -> Job:
        """The job with these settings recorded, so its outcomes know their columns."""
        return replace(
            job,
            reference_column=None if self.reference_column == REFERENCE else self.reference_column,
            keep_columns=",".join(self.keep_columns) or None,
        )

    def metadata(self) -> dict[str, str]:
        """The object metadata that gives these settings (nothing for the defaults)."""
        out = {}
        if self.reference_column != REFERENCE:
            out["reference-column"] = self.reference_column
        if self.keep_columns:
            out["keep-columns"] = ",".join(self.keep_columns)
        return out

    def carried_of(self, fields: Mapping[str, Any]) -> dict[str, str]:
        """The row's carried values: `reference` and each kept column (under its name as the
        job gives it) that has a value. Raises InvalidRow for a value too long or not text."""
        carried: dict[str, str] = {}
        # By the settings' values, not the Carry: hashing a dataclass is a Python call a row.
        names = tuple(fields)
        for key, source, column, limit in _sources(self.reference_column, self.keep_columns, names):
            value = _text(fields[source], column)
            if value is None:
                continue
            if len(value) > limit:
                raise InvalidRow(f"{column}: {len(value):,} characters; at most {limit:,}")
            carried[key] = value
        return carried


@lru_cache(maxsize=256)
def _sources(
    reference_column: str, keep_columns: tuple[str, ...], names: tuple[Any, ...]
) -> tuple[tuple[str, Any, str, int], ...]:
    """For a record with these column names, each carried value's (key, the column it is read
    from, the column as the job names it, its limit): the last of the names that match
    regardless of case; a carried column the record lacks is left out."""
    by_name = {str(name).lower(): name for name in names}
    wanted = [(REFERENCE, reference_column, MAX_REFERENCE_CHARS)] + [
        (name, name, MAX_KEPT_CHARS) for name in keep_columns
    ]
    return tuple(
        (key, by_name[column.lower()], column, limit)
        for key, column, limit in wanted
        if column.lower() in by_name
    )


DEFAULT_CARRY: Final = Carry()


def _text(value: Any, column: str) -> str | None:
    """A cell as text: a JSON record's number or boolean as JSON writes it; absent if empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise InvalidRow(f"{column}: a {type(value).__name__}, not text or a number")
    return value
