"""The user's columns that travel with a row (chalicelib.intake.carry): read from any record,
capped, counted in the row's size, never among the parameters sent to Twilio."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import ConfigError
from chalicelib.core.jobs import Job
from chalicelib.core.limits import MAX_ROW_BYTES
from chalicelib.intake.carry import DEFAULT_CARRY, MAX_REFERENCE_CHARS, Carry
from chalicelib.intake.rows import Accepted, Rejected, checked_rows, travelling_bytes

ROW = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}


def checked(
    records: list[dict[str, Any]], carry: Carry = DEFAULT_CARRY
) -> list[Accepted | Rejected]:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    return list(checked_rows(io.BytesIO(body), "jsonl", None, carry=carry))


@given(st.text(min_size=1, max_size=MAX_REFERENCE_CHARS))
def test_any_reference_within_the_cap_travels_as_it_is_and_is_never_a_parameter(ref: str) -> None:
    (item,) = checked([{**ROW, "reference": ref}])
    assert isinstance(item, Accepted)
    assert item.request.carried == {"reference": ref}
    assert item.request.params == ROW


@pytest.mark.parametrize(
    ("value", "carried"),
    [
        ("", {}),
        (None, {}),
        (42, {"reference": "42"}),
        (1.5, {"reference": "1.5"}),
        (True, {"reference": "true"}),
        ('a,b\n"c" 🙂', {"reference": 'a,b\n"c" 🙂'}),
        ("x" * MAX_REFERENCE_CHARS, {"reference": "x" * MAX_REFERENCE_CHARS}),
    ],
)
def test_a_reference_from_a_json_record_is_text_and_an_empty_one_is_absent(
    value: Any, carried: dict[str, str]
) -> None:
    (item,) = checked([{**ROW, "Reference": value}])
    assert isinstance(item, Accepted) and item.request.carried == carried


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x" * (MAX_REFERENCE_CHARS + 1), "reference: 257 characters; at most 256"),
        ({"id": 1}, "reference: a dict, not text or a number"),
        ([1], "reference: a list, not text or a number"),
    ],
)
def test_a_reference_too_long_or_not_text_rejects_its_row_with_the_reason(
    value: Any, reason: str
) -> None:
    (item,) = checked([{**ROW, "reference": value}])
    assert isinstance(item, Rejected) and item.reason == reason


def test_the_reference_column_and_kept_columns_are_the_jobs_own() -> None:
    carry = Carry.of("customer_id", ("First Name", "plan"))
    record = {**ROW, "Customer_ID": "c-9", "first name": "Zoë", "reference": "ignored", "x": "y"}
    (item,) = checked([record], carry)
    assert isinstance(item, Accepted)
    assert item.request.carried == {"reference": "c-9", "First Name": "Zoë"}
    assert Carry.of_metadata(carry.metadata()) == carry
    job = carry.on_job(Job("j", "b", "k", "e", "running", 1, 60, 0.0))
    assert Carry.of_job(job) == carry
    assert Carry().metadata() == {}


@pytest.mark.parametrize(
    ("reference", "keep", "named"),
    [
        ("reference", ("a", "A"), "names a column twice"),
        ("id", ("ID",), "names a column twice"),
        ("id", ("reference",), "the name outcomes give the reference"),
        ("reference", tuple(f"c{i}" for i in range(21)), "at most 20"),
    ],
)
def test_bad_carry_settings_are_refused_naming_them(
    reference: str, keep: tuple[str, ...], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Carry.of(reference, keep)


def test_a_reference_counts_toward_the_rows_size_as_it_travels() -> None:
    def call(reason_chars: int, **extra: str) -> dict[str, str]:
        url = "https://example.com/t"
        return {"api": "calls", **ROW, "Url": url, "CallReason": "x" * reason_chars, **extra}

    (probe,) = checked([call(60_000)])
    assert isinstance(probe, Accepted)
    room = MAX_ROW_BYTES - travelling_bytes(probe.number, probe.request)
    # A row exactly at the limit travels; the same row with a reference does not.
    (at_limit,) = checked([call(60_000 + room)])
    assert isinstance(at_limit, Accepted)
    (over,) = checked([call(60_000 + room, reference="r")])
    assert isinstance(over, Rejected)
    extra = len(',"carried":{"reference":"r"}')
    assert over.reason.startswith(f"row is {MAX_ROW_BYTES + extra:,} bytes")
