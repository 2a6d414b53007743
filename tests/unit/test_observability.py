"""Metrics as CloudWatch embedded metric format, valid by its specification; calls, 429s and lag at
1-second resolution. Logs and traces: test_observability_logs.py."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.observability import HIGH_RESOLUTION, Metrics, record_responses

UNITS = ["Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
         "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
         "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
         "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
         "Gigabits/Second", "Terabits/Second", "Count/Second", "None"]  # fmt: skip
# The embedded metric format's specification (CloudWatch user guide, "Specification: Embedded
# metric format") as a JSON schema: what CloudWatch Logs accepts for extraction.
EMF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 255},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "Name": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 1024,
                                        },
                                        "Unit": {"enum": UNITS},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}

EMF = jsonschema.Draft202012Validator(EMF_SCHEMA)


def emf(lines: list[str]) -> list[dict[str, Any]]:
    """The documents, each checked against the specification: its schema, and every dimension and
    metric it names present at the root (dimension values strings, metric values numbers or at
    most 100 of them)."""
    documents = [json.loads(line) for line in lines]
    for document in documents:
        EMF.validate(document)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension in {d for dims in directive["Dimensions"] for d in dims}:
                assert isinstance(document[dimension], str), dimension
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                assert 1 <= len(values) <= 100
                assert all(isinstance(v, int | float) for v in values)
    return documents


def resolutions(documents: list[dict[str, Any]]) -> dict[str, set[int | None]]:
    """Each metric name's StorageResolution in every document it is in (None: not given)."""
    found: dict[str, set[int | None]] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                found.setdefault(metric["Name"], set()).add(metric.get("StorageResolution"))
    return found


def test_metrics_flush_one_emf_document_per_second_and_dimensions() -> None:
    lines: list[str] = []
    metrics = Metrics("dev", sink=lines.append, clock=lambda: 100.5)
    metrics.count("Calls", 2)
    metrics.count("Calls")
    metrics.count("Outcomes", at=101.2, Outcome="sent")
    metrics.timing("TwilioRequestDuration", 0.25)
    assert metrics.flush() == 2
    first, second = emf(lines)
    assert first["_aws"]["Timestamp"] == 100_000
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "callqueue"
    assert directive["Dimensions"] == [["Stage"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Calls": "Count",
        "TwilioRequestDuration": "Milliseconds",
    }
    assert first["Stage"] == "dev"
    assert first["Calls"] == 3
    assert first["TwilioRequestDuration"] == 250.0
    assert second["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Outcome", "Stage"]]
    assert second["Outcome"] == "sent"
    assert second["Outcomes"] == 1
    # Flushed means forgotten: the next flush writes nothing.
    assert metrics.flush() == 0


def test_metrics_split_more_than_a_hundred_values() -> None:
    lines: list[str] = []
    metrics = Metrics("dev", sink=lines.append, clock=lambda: 5.0)
    for i in range(150):
        metrics.measure("ScheduleLag", i / 100, "Seconds")
    assert metrics.flush() == 2
    documents = emf(lines)
    assert [len(d["ScheduleLag"]) for d in documents] == [100, 50]


def test_record_responses_counts_calls_outcomes_errors_and_twilio_headers() -> None:
    lines: list[str] = []
    metrics = Metrics("prod", sink=lines.append, clock=lambda: 0.0)
    sent = {
        "outcome": "sent",
        "api": "messages",
        "status": 201,
        "error": None,
        "headers": {"Twilio-Request-Duration": "0.040", "Twilio-Concurrent-Requests": "3"},
        "timings": {"started_at": 10.2, "lag_seconds": 0.1},
    }
    throttled = {
        **sent,
        "outcome": "retrying",
        "status": 429,
        "error": {"code": 20429},
        "headers": {},
        "timings": {"started_at": 10.7, "lag_seconds": 0.3},
    }
    suppressed = {"outcome": "suppressed", "api": "messages", "status": None, "timings": {}}
    record_responses(metrics, [sent, throttled, {**suppressed, "timings": {"started_at": 10.9}}])
    metrics.flush()
    by_dims: dict[tuple[str, ...], dict[str, Any]] = {}
    for document in emf(lines):
        dims = tuple(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
        key = dims + tuple(str(document[d]) for d in dims if d != "Stage")
        by_dims[key] = document
    stage = by_dims[("Stage",)]
    assert stage["Calls"] == 2
    assert stage["Errors"] == 1
    assert stage["Throttled"] == 1
    assert stage["TwilioRequestDuration"] == 40.0
    assert stage["TwilioConcurrentRequests"] == 3.0
    assert stage["ScheduleLag"] == [0.1, 0.3]
    assert by_dims[("ErrorCode", "Stage", "20429")]["Errors"] == 1
    assert by_dims[("Outcome", "Stage", "suppressed")]["Outcomes"] == 1
    assert by_dims[("Api", "Stage", "messages")]["Calls"] == 2


# High resolution: calls, 429s and lag are stored each second, and nothing else is.


def test_high_resolution_are_exactly_calls_throttles_and_lag() -> None:
    assert frozenset({"Calls", "Throttled", "ScheduleLag"}) == HIGH_RESOLUTION


def test_record_responses_stores_calls_429s_and_lag_each_second_and_the_rest_each_minute() -> None:
    lines: list[str] = []
    metrics = Metrics("prod", sink=lines.append, clock=lambda: 0.0)
    envelope = {
        "outcome": "retrying",
        "api": "messages",
        "status": 429,
        "error": {"code": 20429},
        "headers": {"Twilio-Request-Duration": "0.040", "Twilio-Concurrent-Requests": "3"},
        "timings": {"started_at": 10.2, "lag_seconds": 0.1},
    }
    record_responses(metrics, [envelope, {**envelope, "timings": {"started_at": 11.5}}])
    metrics.count("RowsAccepted", 5, at=10.0)
    metrics.flush()

    found = resolutions(emf(lines))
    assert set(found) == {
        "Outcomes",
        "Calls",
        "Errors",
        "Throttled",
        "ScheduleLag",
        "TwilioRequestDuration",
        "TwilioConcurrentRequests",
        "RowsAccepted",
    }
    # Calls is high resolution in every dimension set (Stage, and Stage + Api): a metric keeps
    # one resolution wherever it is written.
    for name, seen in found.items():
        assert seen == ({1} if name in {"Calls", "Throttled", "ScheduleLag"} else {None}), name


def test_a_per_second_metric_keeps_each_second_apart_in_its_timestamp() -> None:
    """The dashboard's per-second sums are the documents' per-second counts: a burst of calls in
    one second is not spread over the minute."""
    lines: list[str] = []
    metrics = Metrics("prod", sink=lines.append, clock=lambda: 0.0)
    for at in [100.0, 100.5, 100.999, 101.0, 159.9]:
        metrics.count("Calls", at=at)
    metrics.flush()
    by_second = {d["_aws"]["Timestamp"]: d["Calls"] for d in emf(lines)}
    assert by_second == {100_000: 3, 101_000: 1, 159_000: 1}


names = st.sampled_from(["Calls", "Throttled", "ScheduleLag", "Outcomes", "Errors", "Chunks"])
dimension_sets = st.dictionaries(
    st.sampled_from(["Outcome", "Api", "ErrorCode"]),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12),
    max_size=2,
)
operations = st.lists(
    st.tuples(
        names,
        st.booleans(),
        st.floats(0, 1e6, allow_nan=False),
        st.floats(0, 600),
        dimension_sets,
    ),
    max_size=150,
)


@settings(deadline=None, max_examples=60)
@given(operations)
def test_any_metrics_flush_as_valid_emf_with_totals_kept(
    ops: list[tuple[str, bool, float, float, dict[str, str]]],
) -> None:
    lines: list[str] = []
    metrics = Metrics("dev", sink=lines.append, clock=lambda: 0.0)
    expected: dict[tuple[Any, ...], float] = {}
    counted = {name for name, is_count, *_ in ops if is_count}
    for name, is_count, value, at, dims in ops:
        # One name is either a count or a measurement, as in the code that writes them.
        if is_count or name in counted:
            metrics.count(name, value, at=at, **dims)
        else:
            metrics.measure(name, value, "Seconds", at=at, **dims)
        key = (name, int(at), tuple(sorted(dims.items())))
        expected[key] = expected.get(key, 0.0) + value
    assert metrics.flush() == len(lines)
    documents = emf(lines)

    written: dict[tuple[Any, ...], float] = {}
    for document in documents:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        dims = tuple(sorted((d, document[d]) for d in directive["Dimensions"][0] if d != "Stage"))
        assert document["Stage"] == "dev"
        for metric in directive["Metrics"]:
            name = metric["Name"]
            assert ("StorageResolution" in metric) == (name in HIGH_RESOLUTION)
            value = document[name]
            key = (name, document["_aws"]["Timestamp"] // 1000, dims)
            written[key] = written.get(key, 0.0) + sum(
                value if isinstance(value, list) else [value]
            )
    assert written.keys() == expected.keys()
    for key, total in expected.items():
        assert written[key] == pytest.approx(total), key
