"""DynamoDB adapter for the jobs table: one item per job (chalicelib.core.jobs.Job), keyed by job
id."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import ACTIVE, Job
from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class JobExists(CallqueueError):
    """A job with this id was already recorded: the same upload was delivered again."""


_INTEGERS = {
    "cps",
    "window_seconds",
    "rows",
    "valid",
    "rejected",
    "chunks",
    "released_chunks",
    "systemic_errors",
    "progress",
    "responses",
    "loop_generation",
    "split_attempts",
    "max_per_day",
    "releases",
    "chunk_rows",
    "released_rows",
    "delivery_pending",
}
_TIMES = {
    "created_at",
    "started_at",
    "paused_at",
    "stalled_at",
    "completed_at",
    "progress_at",
    "cancelled_at",
    "stalled_since",
    "start_at",
    "next_slot_at",
    "next_release_at",
    "last_run_at",
    "queued_until",
    "delivery_check_at",
    "split_progress_at",
}
_NUMBERS = _INTEGERS | _TIMES


def _to_item(job: Job) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in asdict(job).items():
        if value is None:
            continue
        item[name] = {"N": str(value)} if name in _NUMBERS else {"S": str(value)}
    return item


class MalformedJobRecord(CallqueueError):
    """A jobs table item that is not a job record (a missing key attribute, a number that is
    not one): written by hand or by an older version."""


@dataclass(frozen=True)
class MalformedJob:
    """An unreadable item among the active jobs: the reconciler reports it and goes on."""

    job_id: str
    reason: str


def _from_item(item: dict[str, Any]) -> Job:
    values: dict[str, Any] = {}
    try:
        for name, typed in item.items():
            if name in _NUMBERS:
                number = Decimal(typed["N"])
                values[name] = int(number) if name in _INTEGERS else float(number)
            elif "S" in typed and name in Job.__dataclass_fields__:
                values[name] = typed["S"]
        return Job(**values)
    except (KeyError, TypeError, InvalidOperation) as error:
        job_id = item.get("job_id", {}).get("S", "?")
        raise MalformedJobRecord(f"job {job_id}: {type(error).__name__} {error}") from error


# Every job item carries this constant under LISTING, the partition key of the RECENT index
# (sorted by created_at), so the most recent jobs are one Query instead of a Scan of all jobs.
# Jobs are created a few a minute at most, far below what one index partition takes.
RECENT = "recent"
LISTING = "listing"
LISTING_ALL = "job"


class JobStore:
    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def create(self, job: Job) -> None:
        """Record a new job; a second delivery of the same upload raises JobExists."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**_to_item(job), LISTING: {"S": LISTING_ALL}},
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            raise JobExists(job.job_id) from None

    def get(self, job_id: str) -> Job | None:
        item = self._db.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _from_item(item)

    def update(self, job_id: str, **changes: Any) -> None:
        """Set the given attributes (None removes one)."""
        self.update_if(job_id, None, **changes)

    def add(self, job_id: str, name: str, amount: int) -> int | None:
        """Atomically add to a numeric attribute; returns the new value, None for no such job."""
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="ADD #n :a",
                ExpressionAttributeNames={"#n": name},
                ExpressionAttributeValues={":a": {"N": str(amount)}},
                ConditionExpression="attribute_exists(job_id)",
                ReturnValues="UPDATED_NEW",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return int(response["Attributes"][name]["N"])

    def split_progress(self, job_id: str) -> tuple[int, str | None]:
        """Where the job's split stands (chalicelib.intake.checkpoint): the part it is at (0:
        none stored) and the prefix of its checkpoint."""
        item = self._db.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item", {})
        part = int(item.get("split_part", {}).get("N", "0"))
        return part, item.get("split_checkpoint", {}).get("S")

    def advance_split(self, job_id: str, part: int, checkpoint: str | None, now: float) -> bool:
        """Move the split from `part` to part + 1, stored at `checkpoint` (None: the split is
        done), with `now` as when it last went on (a long split is not stalled while its parts
        go on) and a fresh count of attempts for the next part; False when another invocation
        moved it first (of two deliveries of one part, only one goes on, or finishes)."""
        condition = "split_part = :p"
        if part == 0:
            condition = "attribute_not_exists(split_part) OR " + condition
        values = {":p": {"N": str(part)}, ":n": {"N": str(part + 1)}, ":t": {"N": str(now)}}
        expression = "SET split_part = :n, split_progress_at = :t"
        if checkpoint is None:
            # Done: the attempts it took stay on the job.
            expression += " REMOVE split_checkpoint"
        else:
            # The next part gets attempts of its own.
            expression += ", split_attempts = :z, split_checkpoint = :c"
            values.update({":z": {"N": "0"}, ":c": {"S": checkpoint}})
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ConditionExpression=f"attribute_exists(job_id) AND ({condition})",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def raise_to(self, job_id: str, name: str, value: int) -> int | None:
        """Atomically raise a numeric attribute to `value` if it is lower (or absent); returns
        its value after, None for no such job."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #n = :v",
                ExpressionAttributeNames={"#n": name},
                ExpressionAttributeValues={":v": {"N": str(value)}},
                ConditionExpression="attribute_exists(job_id) AND "
                "(attribute_not_exists(#n) OR #n < :v)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._db.exceptions.ConditionalCheckFailedException as refused:
            item: dict[str, Any] = refused.response.get("Item") or {}  # type: ignore[assignment]
            if not item:
                return None
            return int(Decimal(item[name]["N"]))
        return value

    def recent(self, limit: int) -> list[Job]:
        """The `limit` most recently created jobs, newest first."""
        page = self._db.query(
            TableName=self._table,
            IndexName=RECENT,
            KeyConditionExpression="#l = :l",
            ExpressionAttributeNames={"#l": LISTING},
            ExpressionAttributeValues={":l": {"S": LISTING_ALL}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_from_item(item) for item in page.get("Items", [])]

    def active(self, now: float | None = None) -> list[Job | MalformedJob]:
        """Jobs that are not finished: what the reconciler looks at. A cancelled job is
        unfinished until its remaining rows have ended and its outcome CSV is written. With
        `now`, also the finished jobs whose outcome CSV is due to be written again with the
        delivery statuses that came since (`delivery_check_at`).

        An item that is not a readable job comes back as a MalformedJob, so one bad item
        does not hide the others."""
        jobs: list[Job | MalformedJob] = []
        active = {f":a{i}": {"S": state} for i, state in enumerate(ACTIVE)}
        condition = (
            f"#s IN ({', '.join(active)}) OR (#s = :c AND attribute_not_exists(outcomes_key))"
        )
        values: dict[str, Any] = {**active, ":c": {"S": "cancelled"}}
        if now is not None:
            condition += " OR delivery_check_at <= :now"
            values[":now"] = {"N": str(now)}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": condition,
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        while True:
            page = self._db.scan(**kwargs)
            for item in page.get("Items", []):
                try:
                    jobs.append(_from_item(item))
                except MalformedJobRecord as error:
                    jobs.append(MalformedJob(item.get("job_id", {}).get("S", "?"), str(error)))
            if "LastEvaluatedKey" not in page:
                return jobs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def update_if(self, job_id: str, states: tuple[str, ...] | None, **changes: Any) -> None:
        """Set the given attributes (None removes one), if the job is in one of `states`."""
        self._update(job_id, states, None, changes)

    def record_release(self, job_id: str, made: int, **changes: Any) -> None:
        """Set the given attributes if the job has made exactly `made` releases (the release
        step's cursor moves once per release); StateChanged otherwise."""
        self._update(job_id, None, made, changes)

    def update_if_at(
        self, job_id: str, states: tuple[str, ...], made: int, rate: int, **changes: Any
    ) -> None:
        """Set the given attributes if the job is in one of `states`, has made exactly `made`
        releases and has the rate `rate` (nothing moved since it was read); StateChanged
        otherwise."""
        self._update(job_id, states, made, changes, cps=rate)

    def _update(
        self,
        job_id: str,
        states: tuple[str, ...] | None,
        releases: int | None,
        changes: dict[str, Any],
        *,
        cps: int | None = None,
    ) -> None:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        expression = _update_expression(changes, names, values)
        condition = _condition(states, releases, cps, names, values)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"job_id": {"S": job_id}},
            "UpdateExpression": expression.strip(),
            "ExpressionAttributeNames": names,
            "ConditionExpression": condition,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._db.update_item(**kwargs)
        except self._db.exceptions.ConditionalCheckFailedException:
            if states is None and releases is None:
                raise
            expected = " or ".join(states or ())
            if releases is not None:
                expected += f"{' with ' if expected else ''}{releases} releases made"
            if cps is not None:
                expected += f" at {cps} CPS"
            raise StateChanged(f"job {job_id} is not {expected}") from None


def _update_expression(
    changes: dict[str, Any], names: dict[str, str], values: dict[str, Any]
) -> str:
    """SET the changes' values, REMOVE those set to None; their names and values added."""
    sets: list[str] = []
    removes: list[str] = []
    for i, (name, value) in enumerate(sorted(changes.items())):
        names[f"#a{i}"] = name
        if value is None:
            removes.append(f"#a{i}")
        else:
            sets.append(f"#a{i} = :v{i}")
            values[f":v{i}"] = {"N": str(value)} if name in _NUMBERS else {"S": str(value)}
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression


def _condition(
    states: tuple[str, ...] | None,
    releases: int | None,
    cps: int | None,
    names: dict[str, str],
    values: dict[str, Any],
) -> str:
    """The job exists (and is in one of `states`, has made `releases` releases, runs at `cps`)."""
    condition = "attribute_exists(job_id)"
    if states:
        names["#state"] = "state"
        allowed = []
        for j, state in enumerate(states):
            values[f":s{j}"] = {"S": state}
            allowed.append(f":s{j}")
        condition += f" AND #state IN ({', '.join(allowed)})"
    if releases is not None:
        names["#releases"] = "releases"
        values[":releases"] = {"N": str(releases)}
        condition += " AND " + (
            "(attribute_not_exists(#releases) OR #releases = :releases)"
            if releases == 0
            else "#releases = :releases"
        )
    if cps is not None:
        names["#cps"] = "cps"
        values[":cps"] = {"N": str(cps)}
        condition += " AND #cps = :cps"
    return condition


class StateChanged(CallqueueError):
    """The job was not in the state a change expected (someone else changed it first)."""
