"""Tests for callqueue.generate: determinism, magic numbers, files the readers accept."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from callqueue.generate import (
    CALL_ERRORS,
    MESSAGE_ERRORS,
    SAMPLE_INVALID,
    SUCCESS_FROM,
    generate_rows,
    main_generate,
    write_file,
    write_sample,
)
from chalicelib.intake.parsing import Format, read_records
from chalicelib.intake.validation import InvalidRow, validate

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "sample.csv"
ALL_APIS = ("messages", "calls", "lookup", "verify", "studio")


def test_generate_rows_is_deterministic_with_a_seed() -> None:
    first = list(generate_rows(500, seed=7, apis=ALL_APIS))
    assert first == list(generate_rows(500, seed=7, apis=ALL_APIS))
    assert first != list(generate_rows(500, seed=8, apis=ALL_APIS))


def test_generate_rows_bodies_are_unique() -> None:
    bodies = [row["Body"] for row in generate_rows(1000, seed=3)]
    assert len(set(bodies)) == 1000
    assert bodies[16] == "Test message 17 of 1000 [seed 3]"


def test_generate_rows_messages_only_has_the_plain_columns() -> None:
    rows = list(generate_rows(3, seed=1))
    assert [list(row) for row in rows] == [["To", "From", "Body"]] * 3


def test_generate_rows_every_row_has_the_same_columns() -> None:
    rows = list(generate_rows(200, seed=1, apis=ALL_APIS))
    assert len({tuple(row) for row in rows}) == 1
    assert next(iter(rows[0])) == "api"


def test_generate_rows_covers_every_magic_number() -> None:
    rows = list(generate_rows(2000, seed=5, apis=("messages", "calls")))
    seen = {(row["api"], name, row[name]) for row in rows for name in ("To", "From")}
    for name, number in MESSAGE_ERRORS:
        assert ("messages", name, number) in seen
    for name, number in CALL_ERRORS:
        assert ("calls", name, number) in seen


def test_generate_rows_error_rate() -> None:
    rows = list(generate_rows(5000, seed=11, error_rate=0.2))
    failing = sum(row["From"] != SUCCESS_FROM or row["To"].startswith("+1500555") for row in rows)
    assert 900 < failing < 1100
    assert all(row["From"] == SUCCESS_FROM for row in generate_rows(300, error_rate=0.0))


def test_generate_rows_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        list(generate_rows(-1))
    with pytest.raises(ValueError, match="fax"):
        list(generate_rows(1, apis=("messages", "fax")))


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_write_file_round_trips_through_the_readers_and_validation(
    tmp_path: Path, fmt: Format
) -> None:
    path = tmp_path / f"calls.{fmt}"
    assert write_file(path, fmt, generate_rows(400, seed=9, apis=ALL_APIS)) == 400
    with path.open("rb") as stream:
        records = list(read_records(stream, fmt))
    assert [record.number for record in records] == list(range(1, 401))
    assert all(record.error is None and record.fields is not None for record in records)
    apis = Counter(validate(record.fields).api for record in records if record.fields)
    assert set(apis) == set(ALL_APIS)


def test_write_file_json_is_a_messages_object(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    write_file(path, "json", generate_rows(3, seed=1, apis=("messages", "lookup")))
    document = json.loads(path.read_text())
    assert list(document) == ["messages"]
    assert all("" not in message.values() for message in document["messages"])


def test_write_file_streams_rows(tmp_path: Path) -> None:
    def rows() -> Iterator[dict[str, str]]:
        yield from generate_rows(2, seed=1)
        raise RuntimeError("source failed")

    path = tmp_path / "x.jsonl"
    with pytest.raises(RuntimeError):
        write_file(path, "jsonl", rows())
    # Rows are written as they come, not gathered first: the two before the failure are there.
    assert len(path.read_text().splitlines()) == 2


def test_main_generate_default_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = main_generate("csv", 25, None, 4)
    assert path == Path("calls-25.csv")
    assert len((tmp_path / path).read_text().splitlines()) == 26


def test_main_generate_explicit_path_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    assert main_generate("jsonl", 2, out, None) == out
    assert len(out.read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="format"):
        main_generate("xml", 2, out, None)
    with pytest.raises(ValueError, match="at least 1"):
        main_generate("csv", 0, out, None)


def test_sample_csv_is_what_write_sample_makes(tmp_path: Path) -> None:
    write_sample(tmp_path / "sample.csv")
    assert (tmp_path / "sample.csv").read_bytes() == SAMPLE.read_bytes()


def test_sample_csv_invalid_rows_are_the_documented_ones() -> None:
    invalid: dict[int, str] = {}
    apis: Counter[str] = Counter()
    with SAMPLE.open("rb") as stream:
        for record in read_records(stream, "csv"):
            if record.fields is None:
                invalid[record.number] = str(record.error)
                continue
            try:
                apis[validate(record.fields).api] += 1
            except InvalidRow as error:
                invalid[record.number] = str(error)
    assert invalid == SAMPLE_INVALID
    assert sum(apis.values()) + len(invalid) == 300
    assert set(apis) == set(ALL_APIS)
    assert apis["messages"] > sum(apis.values()) / 2
