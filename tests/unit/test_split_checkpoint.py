"""A split that stops at checkpoints and goes on in later invocations writes what one pass
writes: the same chunks under the same keys, the same rejects report, counts, groups and cost,
for CSV, JSON Lines and JSON arrays, however many parts it takes. Time is injected."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.aws.buckets import SpooledFile
from chalicelib.config import Settings
from chalicelib.core.jobs import Job
from chalicelib.intake.checkpoint import Budget, Checkpoint
from chalicelib.intake.split_pass import Counts, SplitPass, load_checkpoint
from chalicelib.intake.validation.templates import JobParams

AREAS = ["212", "305", "415", "808", "907"]
ABROAD = ["+442079460{:03d}", "+6129123{:04d}"]


class Objects:
    """S3 in memory: what SplitPass stores and reads back."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], bytes] = {}

    def put_file(
        self, bucket: str, key: str, spooled: SpooledFile, content_type: str, **metadata: str
    ) -> None:
        self.stored[(bucket, key)] = spooled.rewind().read()

    def read_small(self, bucket: str, key: str, limit: int) -> bytes | None:
        return self.stored.get((bucket, key))

    def lines_of(self, bucket: str, key: str) -> Iterator[bytes]:
        yield from io.BytesIO(self.stored[(bucket, key)])

    def final(self) -> dict[tuple[str, str], bytes]:
        """Everything but the checkpoints' own objects."""
        return {k: v for k, v in self.stored.items() if not k[1].startswith("checkpoints/")}


class Remaining:
    """Remaining time that runs out on every `every`-th look, and only then."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.looks = 0

    def __call__(self) -> int:
        self.looks += 1
        return 0 if self.looks % self.every == 0 else 900_000


def rows(count: int, seed: int) -> list[dict[str, str]]:
    out = []
    for i in range(count):
        kind = (i * 7 + seed) % 11
        if kind == 0:
            to = "12345"  # no country code: rejected
        elif kind == 1:
            to = ABROAD[i % 2].format(i % 1000)
        else:
            to = f"+1{AREAS[i % len(AREAS)]}2{i:06d}"
        out.append({"To": to, "From": "+15005550006", "Body": f"hello {i} \u00e9", "ref": str(i)})
    return out


def encoded(records: list[dict[str, str]], fmt: str) -> bytes:
    if fmt == "csv":
        lines = ["To,From,Body,reference"]
        lines += [f"{r['To']},{r['From']},{r['Body']},{r['ref']}" for r in records]
        return ("\r\n".join(lines) + "\r\n").encode()
    items = [{**r, "reference": r.pop("ref")} for r in (dict(r) for r in records)]
    if fmt == "jsonl":
        return "".join(json.dumps(i) + "\n" for i in items).encode()
    return json.dumps({"messages": items}, indent=1).encode()


def job(window: str | None) -> Job:
    return Job(
        job_id="job-1", bucket="src", key="f", etag="e", state="splitting",
        cps=2, window_seconds=5, created_at=0.0, send_window=window,
    )  # fmt: skip


def one_pass(body: bytes, fmt: str, window: str | None) -> tuple[Counts, Objects]:
    objects = Objects()
    done = SplitPass(objects, Settings.from_env(), job(window)).run(
        io.BytesIO(body), fmt, JobParams()
    )  # type: ignore[arg-type]
    assert isinstance(done, Counts)
    return done, objects


def in_parts(body: bytes, fmt: str, window: str | None, every: int) -> tuple[Counts, Objects, int]:
    """Split as Lambda would, a fresh pass per invocation, each read from the file's start."""
    objects = Objects()
    budget = Budget(Remaining(every), lambda: None, reserve_ms=1, check_every=3)
    settings_ = Settings.from_env()
    resume = None
    for part in range(1, 10_000):
        split = SplitPass(objects, settings_, job(window), resume=resume, budget=budget)
        outcome = split.run(io.BytesIO(body), fmt, JobParams())  # type: ignore[arg-type]
        if isinstance(outcome, Counts):
            return outcome, objects, part
        assert split.stopped is not None
        assert outcome.part == part
        point = load_checkpoint(objects, settings_.holding_bucket, split.stopped)
        assert point == outcome
        resume = (split.stopped, point)
    raise AssertionError("never finished")


def same(a: Counts, b: Counts) -> None:
    assert (a.rows, a.valid, a.rejected, a.chunks, a.groups) == (
        b.rows,
        b.valid,
        b.rejected,
        b.chunks,
        b.groups,
    )
    assert a.cost is not None and b.cost is not None
    assert a.cost.to_json() == b.cost.to_json()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
@pytest.mark.parametrize("window", [None, "08:00-21:00"])
def test_a_split_in_parts_writes_what_one_pass_writes(fmt: str, window: str | None) -> None:
    body = encoded(rows(240, seed=1), fmt)
    whole, objects = one_pass(body, fmt, window)
    parts, pieces, invocations = in_parts(body, fmt, window, every=5)
    assert invocations >= 3
    same(parts, whole)
    assert pieces.final() == objects.final()
    assert whole.rejected and whole.chunks > 3
    assert (len(whole.groups) > 3) == (window is not None)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["csv", "jsonl", "json"]),
    st.integers(min_value=1, max_value=90),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=1, max_value=6),
)
def test_any_stopping_points_give_the_one_pass_result(
    fmt: str, count: int, seed: int, every: int
) -> None:
    body = encoded(rows(count, seed), fmt)
    whole, objects = one_pass(body, fmt, "08:00-21:00")
    parts, pieces, _ = in_parts(body, fmt, "08:00-21:00", every)
    same(parts, whole)
    assert pieces.final() == objects.final()


def test_a_checkpoint_reads_back_as_it_was_written() -> None:
    point = Checkpoint(
        part=3, records=10, valid=7, rejected=3,
        priced=(("messages", "sms_segment", "US", "7", "7.5"),),
        unpriced=(("messages", "sms_segment", "unknown", 2),),
    )  # fmt: skip
    assert Checkpoint.of_text(point.to_text()) == point
