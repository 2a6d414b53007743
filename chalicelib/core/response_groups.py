"""Response envelopes grouped into SNS messages: a message's body is a JSON array of envelopes of
one job and one API, up to SNS's 64 KB billing chunk, with attributes that summarize the group.

Every message on the response topic is delivered to three sink queues, each read by a Lambda
that pays SQS requests and, for the router, a job-counter write per invocation and job: per
message, not per envelope. Grouping divides all of these by the envelopes a message holds
(docs/decisions/grouped-responses.md). The attributes let a subscriber's filter policy keep
the groups that hold what it wants (SNS matches a String.Array if any element matches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalicelib.core.batching import compact_json, message_size
from chalicelib.core.limits import SNS_BILLED_CHUNK_BYTES

T = TypeVar("T")
Code = int | str


@dataclass(frozen=True)
class _Values:
    """A group's attribute values were an envelope added, and the attributes' size then."""

    outcomes: list[str]
    codes: list[Code]
    statuses: list[int]
    attributes_bytes: int


@dataclass
class _Group:
    """The envelopes of one message so far; each attribute list holds distinct values in the
    order first seen."""

    job_id: str
    api: str
    texts: list[str] = field(default_factory=list)
    # The texts' bytes with a comma between each: the body is "[" + that + "]".
    joined_bytes: int = 0
    values: _Values = field(default_factory=lambda: _Values([], [], [], 0))

    def with_envelope(self, envelope: Mapping[str, Any], text: str) -> tuple[int, _Values]:
        """The message's size (body and attributes) were `envelope` added, and its attribute
        values then, for `add`: each worked out once an envelope."""
        outcome, code, status = _summary(envelope)
        old = self.values
        outcomes = _added(old.outcomes, outcome)
        codes = _added(old.codes, code)
        statuses = _added(old.statuses, status)
        if self.texts and (outcomes, codes, statuses) == (old.outcomes, old.codes, old.statuses):
            values = old  # no new value: most envelopes of a batch
        else:
            attributes = _attributes(self.job_id, self.api, outcomes, codes, statuses)
            values = _Values(outcomes, codes, statuses, message_size("", attributes))
        # compact_json escapes non-ASCII, so a text's length is its size in bytes.
        body_bytes = 2 + self.joined_bytes + len(text) + (1 if self.texts else 0)
        return body_bytes + values.attributes_bytes, values

    def add(self, text: str, values: _Values) -> None:
        """Adds an envelope's `text` with the `values` `with_envelope` gave for it."""
        self.joined_bytes += len(text) + (1 if self.texts else 0)
        self.texts.append(text)
        self.values = values

    def entry(self) -> dict[str, Any]:
        """A PublishBatch entry, its Id given when its request is made."""
        v = self.values
        return {
            "Message": "[" + ",".join(self.texts) + "]",
            "MessageAttributes": _attributes(
                self.job_id, self.api, v.outcomes, v.codes, v.statuses
            ),
        }


def grouped_entries(
    envelopes: Sequence[Mapping[str, Any]], max_bytes: int = SNS_BILLED_CHUNK_BYTES
) -> list[dict[str, Any]]:
    """PublishBatch entries holding `envelopes` (each already fitted to a message: batching
    .fit_envelope), each once: a message per run of envelopes of one (job, API) whose body
    and attributes stay within `max_bytes`. An envelope over `max_bytes` on its own is a
    message alone. Envelopes keep their order within a message; only what is given is
    grouped, so no publish waits for more."""
    done: list[_Group] = []
    open_groups: dict[tuple[str, str], _Group] = {}
    for envelope in envelopes:
        key = (str(envelope["job_id"]), str(envelope["api"]))
        text = compact_json(envelope)
        group = open_groups.get(key)
        if group is not None:
            size, values = group.with_envelope(envelope, text)
            if size > max_bytes:
                done.append(group)
                group = None
        if group is None:
            group = open_groups[key] = _Group(*key)
            _, values = group.with_envelope(envelope, text)
        group.add(text, values)
    return [group.entry() for group in [*done, *open_groups.values()]]


def _attributes(
    job_id: str, api: str, outcomes: list[str], codes: list[Code], statuses: list[int]
) -> dict[str, dict[str, str]]:
    # Message attributes let subscribers filter (errors only, one job) without parsing bodies.
    found = {"job_id": _string(job_id), "api": _string(api), "outcome": _array(outcomes)}
    if codes:
        found["error_code"] = _array(codes)
    if statuses:
        found["status"] = _array(statuses)
    return found


def _summary(envelope: Mapping[str, Any]) -> tuple[str, Code | None, int | None]:
    code = (envelope.get("error") or {}).get("code")
    status = envelope.get("status")
    return (
        str(envelope["outcome"]),
        # Twilio's codes are numbers; `cancelled` (chalicelib.sending.cancel) is not.
        None if code is None else code if isinstance(code, int) else str(code),
        None if status is None else int(status),
    )


def _added(values: list[T], value: T | None) -> list[T]:
    return values if value is None or value in values else [*values, value]


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _array(values: Sequence[Any]) -> dict[str, str]:
    # SNS's String.Array: a JSON array, whose numbers numeric filter policies match.
    return {"DataType": "String.Array", "StringValue": compact_json(list(values))}
