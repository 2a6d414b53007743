"""End to end: the REST API served by a real `chalice local` process on loopback, with the local
runtime's moto server, Twilio emulator and handlers behind it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from twilio.request_validator import RequestValidator

from callqueue.local.api_server import free_port
from callqueue.local.emulator import DEFAULT_AUTH_TOKEN
from callqueue.local.options import Options
from callqueue.local.runtime import LocalRuntime
from chalicelib.twilio.callbacks import status_callback_url

pytestmark = pytest.mark.e2e

VALID_FROM = "+15005550006"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    options = Options(cps=10, window_seconds=2, schedule_period=1.0, api_port=free_port())
    with LocalRuntime(options) as local:
        yield local


@pytest.fixture
def api(runtime: LocalRuntime) -> str:
    assert runtime.api is not None
    return runtime.api.url


def rows(count: int, prefix: str) -> list[dict[str, str]]:
    return [
        {"To": f"+1415{prefix}{i:04d}", "From": VALID_FROM, "Body": f"{prefix} {i}"}
        for i in range(count)
    ]


def wait_for(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def job(api: str, job_id: str) -> dict[str, Any] | None:
    response = requests.get(f"{api}/jobs/{job_id}", timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return dict(response.json())


def create(api: str, body: dict[str, Any]) -> str:
    response = requests.post(f"{api}/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["job_id"])
    wait_for(lambda: job(api, job_id))
    return job_id


def delivery_statuses(runtime: LocalRuntime, job_id: str) -> dict[int, str]:
    items = runtime.client("dynamodb").query(
        TableName=runtime.env["RESULTS_TABLE"],
        KeyConditionExpression="job_id = :j",
        ExpressionAttributeValues={":j": {"S": job_id}},
        ConsistentRead=True,
    )["Items"]
    return {int(i["row"]["N"]): i["delivery_status"]["S"] for i in items if "delivery_status" in i}


def test_local_api_job_runs_to_completion_with_delivery_statuses(
    runtime: LocalRuntime, api: str
) -> None:
    body_rows = [*rows(14, "555"), {"To": "+15005550060", "From": VALID_FROM, "Body": "landline"}]
    job_id = create(api, {"rows": body_rows})

    seen: list[int] = []

    def completed() -> dict[str, Any] | None:
        status = job(api, job_id)
        assert status is not None
        seen.append(status["counts"]["sent"])
        return status if status["state"] == "completed" else None

    final = wait_for(completed)
    assert final["counts"]["sent"] == 15 and final["pending"] == 0
    assert seen[0] < 15  # the counts moved while it ran
    outcomes = requests.get(final["links"]["outcomes_csv"], timeout=10)
    assert outcomes.status_code == 200 and outcomes.text.startswith("row,to,api,outcome")

    statuses = wait_for(
        lambda: (
            (s := delivery_statuses(runtime, job_id))
            and all(v in ("delivered", "undelivered") for v in s.values())
            and len(s) == 15
            and s
        )
    )
    assert statuses[15] == "undelivered"
    assert set(statuses.values()) == {"delivered", "undelivered"}
    listed = requests.get(f"{api}/jobs", timeout=10).json()["jobs"]
    assert job_id in [j["job_id"] for j in listed]


def test_local_api_pause_resume_and_cancel_a_running_job(runtime: LocalRuntime, api: str) -> None:
    job_id = create(api, {"rows": rows(60, "556"), "window": 2})
    # A job still splitting is neither pausable nor cancellable (409): the splitter sets its state.
    wait_for(lambda: (status := job(api, job_id)) and status["state"] in ("running", "released"))

    assert requests.post(f"{api}/jobs/{job_id}/pause", timeout=10).json()["state"] == "paused"
    assert requests.post(f"{api}/jobs/{job_id}/pause", timeout=10).status_code == 409
    time.sleep(1.0)
    resumed = requests.post(f"{api}/jobs/{job_id}/resume", timeout=10).json()
    assert resumed["state"] in ("running", "released")
    time.sleep(1.5)
    assert requests.post(f"{api}/jobs/{job_id}/cancel", timeout=10).json()["state"] == "cancelled"
    assert requests.post(f"{api}/jobs/{job_id}/resume", timeout=10).status_code == 409

    def settled() -> dict[str, Any] | None:
        status = job(api, job_id)
        assert status is not None
        return status if status["links"]["outcomes_csv"] else None

    final = wait_for(settled)
    counts = final["counts"]
    assert final["state"] == "cancelled"
    assert counts["sent"] + counts["failed"] == 60 and counts["failed"] > 0
    calls = [r for r in runtime.emulator.requests if r["params"].get("Body", "").startswith("556")]
    assert len(calls) == counts["sent"] < 60


def test_local_api_callback_signatures_checked_by_the_served_app(
    runtime: LocalRuntime, api: str
) -> None:
    # A row the job really called: a callback binds only to the message its call created.
    job_id = create(api, {"rows": rows(1, "557")})
    wait_for(lambda: (status := job(api, job_id)) and status["state"] == "completed")
    created = [
        r
        for r in runtime.emulator.requests
        if r["processed"] and r["params"].get("To") == "+14155570000"
    ]
    assert len(created) == 1
    url = status_callback_url(f"{api}/twilio/status", job_id, 1)
    # `read` ranks above what the emulator's own callbacks reached, so accepting it shows.
    form = {"MessageSid": created[0]["sid"], "MessageStatus": "read", "To": "+14155570000"}
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, form)
    other_sid = {**form, "MessageSid": "SM" + "c" * 32}
    other_sig = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, other_sid)

    forged = requests.post(url, data=form, headers={"X-Twilio-Signature": "x"}, timeout=10)
    unsigned = requests.post(url, data=form, timeout=10)
    changed = requests.post(
        url,
        data={**form, "MessageStatus": "sent"},
        headers={"X-Twilio-Signature": signature},
        timeout=10,
    )
    not_its_own = requests.post(
        url, data=other_sid, headers={"X-Twilio-Signature": other_sig}, timeout=10
    )
    valid = requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)

    codes = [r.status_code for r in (forged, unsigned, changed, not_its_own, valid)]
    assert codes == [403, 403, 403, 403, 204]
    assert delivery_statuses(runtime, job_id) == {1: "read"}


def test_local_send_queue_hides_a_batch_for_longer_than_it_can_run(runtime: LocalRuntime) -> None:
    # As deployed (360 s against the sender's 60 s timeout): a batch's rows are not delivered
    # again while it may still be calling them (30 s after its claims here) or publishing.
    sqs = runtime.client("sqs")

    def visibility(name: str) -> int:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
        return int(attributes["Attributes"]["VisibilityTimeout"])

    deadline = runtime.options.in_doubt_after_seconds / 2
    assert visibility(runtime.env["SEND_QUEUE"]) >= deadline + 15
    assert visibility(runtime.env["RESULTS_QUEUE"]) == runtime.options.visibility_timeout


def test_local_inbound_stop_from_the_emulator_suppresses_later_rows(
    runtime: LocalRuntime, api: str
) -> None:
    assert runtime.emulator is not None
    assert runtime.emulator.reply("+14155580000", VALID_FROM, " stop") == 200

    job_id = create(api, {"rows": rows(2, "558")})
    final = wait_for(
        lambda: (status := job(api, job_id)) and status["state"] == "completed" and status
    )

    assert (final["counts"]["suppressed"], final["counts"]["sent"]) == (1, 1)
    called = {r["params"].get("To") for r in runtime.emulator.requests if r["method"] == "POST"}
    assert "+14155580001" in called and "+14155580000" not in called
