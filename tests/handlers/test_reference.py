"""The user's reference (and kept columns) end to end through the real handlers on moto, against
the emulator: plan, split, enqueue, send, results, archive, a status callback, outcomes.csv; and
never in a request to Twilio."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client
from twilio.request_validator import RequestValidator

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.core.costs import PriceTable
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.schedule import Schedule
from chalicelib.intake.carry import Carry
from chalicelib.intake.plan import plan
from chalicelib.twilio.callbacks import status_callback_url
from downstream import wiring as sinks
from downstream.reconcile import DELIVERY_HEADER
from tests.handlers.test_pipeline import (
    drain,
    drain_responses,
    job_item,
    s3_event,
    sqs_event,
    subscribe_responses,
    upload,
    wait_for_execution,
)
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

PUBLIC_URL = "https://api.example.com/api/twilio/status"
VALID_FROM = "+15005550006"
LONGEST = "L" * 256
# Row number (1-based, as the splitter counts records) -> reference.
REFERENCES = {
    1: "cust-1",
    2: "Zoë 🙂 李",
    3: "a,b",
    4: 'say "hi"',
    5: "line one\nline two",
    6: "",
    7: "=HYPERLINK(1)",
    8: LONGEST,
    9: "L" * 257,  # too long: rejected
    10: "valid ref, bad number",
}
NAMES = {row: f"Name {row}, Jr." for row in REFERENCES}


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    wiring.reset()
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def campaign() -> bytes:
    out = io.StringIO()
    fields = ["To", "From", "Body", "reference", "Customer Name", "segment"]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row, reference in REFERENCES.items():
        to = "555-bad" if row == 10 else f"+1415555{row:04d}"
        body = f"hello {row}"
        writer.writerow(
            {
                "To": to,
                "From": VALID_FROM,
                "Body": body,
                "reference": reference,
                "Customer Name": NAMES[row],
                "segment": "never kept",
            }
        )
    return out.getvalue().encode()


def results_item(stack: Stack, job_id: str, row: int) -> dict[str, Any]:
    item = stack.dynamodb.get_item(
        TableName=stack.env["RESULTS_TABLE"],
        Key={"job_id": {"S": job_id}, "row": {"N": str(row)}},
        ConsistentRead=True,
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def release_chunks(stack: Stack, job_id: str, client: Client) -> None:
    """What the release loop does with each chunk: copy it, stamped with the job's start, into
    the process bucket, whose event the enqueuer handles; the job started a minute ago."""
    start = time.time() - 60
    wiring.jobs().update(job_id, started_at=start)
    holding = stack.env["HOLDING_BUCKET"]
    listed = stack.s3.list_objects_v2(Bucket=holding, Prefix=f"jobs/{job_id}/")["Contents"]
    for number, obj in enumerate(sorted(o["Key"] for o in listed)):
        body = stack.s3.get_object(Bucket=holding, Key=obj)["Body"].read()
        stack.s3.put_object(
            Bucket=stack.env["PROCESS_BUCKET"],
            Key=obj,
            Body=body,
            Metadata={"job_id": job_id, "job_start": repr(start), "chunk": str(number)},
        )
        client.lambda_.invoke("handle_released_chunk", s3_event(stack.env["PROCESS_BUCKET"], obj))


def test_reference_and_kept_columns_travel_from_the_file_to_outcomes_csv_never_to_twilio(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    content = campaign()
    carry = Carry.of("reference", ("Customer Name",))
    planned = plan(io.BytesIO(content), "csv", Schedule(10, 60), carry=carry)
    assert [r["row"] for r in planned.rejects] == [9, 10]
    assert "reference: 257 characters; at most 256" in str(planned.rejects[0]["reason"])

    observer = subscribe_responses(stack)
    job_id = upload(stack, "campaign.csv", content, **carry.metadata())
    client.lambda_.invoke(
        "handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], "campaign.csv")
    )
    job = job_item(stack, job_id)
    assert (job["rows"], job["valid"], job["rejected"]) == ("10", "8", "2")
    assert job["keep_columns"] == "Customer Name"
    status = json.loads(client.http.get(f"/jobs/{job_id}").body)
    assert (status["reference_column"], status["keep_columns"]) == ("reference", ["Customer Name"])
    # Eight one-segment SMS to the US, by the shipped table; the plan says the same.
    us_segment = PriceTable.load().countries["US"]["sms_segment"]
    assert status["estimated_cost"]["total"] == float(8 * us_segment)
    assert status["estimated_cost"]["total"] == planned.cost.to_json()["total"]
    assert (status["estimated_cost"]["currency"], status["estimated_cost"]["unpriced_rows"]) == (
        "USD",
        0,
    )

    # The release loop (Step Functions on moto) releases the chunk at the job's start; it is
    # released again here as due a minute ago, so its rows are on the queue at once.
    assert wait_for_execution(stack, job_id)["status"] == "SUCCEEDED"
    release_chunks(stack, job_id, client)
    queued = drain(stack, stack.send_queue_url)
    assert {q["row"]: q.get("carried", {}).get("reference") for q in queued} == {
        row: ref or None for row, ref in REFERENCES.items() if row < 9
    }
    client.lambda_.invoke("handle_send_batch", sqs_event(queued))

    # Twilio is asked for the parameters only: no reference, no kept or other user column.
    posted = [r for r in emulator.requests if r["method"] == "POST"]
    assert len(posted) == 8
    for request in posted:
        assert set(request["params"]) <= {"To", "From", "Body", "StatusCallback"}
        sent_text = json.dumps(request, ensure_ascii=False)
        for reference in REFERENCES.values():
            assert not reference or reference not in sent_text
        assert "Name " not in sent_text and "never kept" not in sent_text

    envelopes = drain_responses(stack, observer)
    assert {e["row"]: e.get("carried") for e in envelopes} == {
        row: {**({"reference": ref} if ref else {}), "Customer Name": NAMES[row]}
        for row, ref in REFERENCES.items()
        if row < 9
    }
    assert all(ResponseEnvelope.from_json(e).to_json() == e for e in envelopes)
    for handler in ("handle_results_batch", "handle_archive_batch", "handle_router_batch"):
        client.lambda_.invoke(handler, sqs_event(envelopes))

    item = results_item(stack, job_id, 2)
    assert item["reference"] == REFERENCES[2]
    assert json.loads(item["kept"]) == {"Customer Name": NAMES[2]}
    assert "reference" not in results_item(stack, job_id, 6)

    # A status callback updates the row's item, whose reference stays with it.
    sid = next(e["sid"] for e in envelopes if e["row"] == 2)
    form = {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "From": VALID_FROM,
        "To": "+14155550002",
        "ApiVersion": "2010-04-01",
    }
    url = status_callback_url(PUBLIC_URL, job_id, 2)
    response = client.http.post(
        "/twilio/status?" + url.split("?", 1)[1],
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form),
        },
        body=urlencode(form).encode(),
    )
    assert response.status_code == 204
    item = results_item(stack, job_id, 2)
    assert (item["delivery_status"], item["reference"]) == ("delivered", REFERENCES[2])

    archived = []
    archive = stack.env["ARCHIVE_BUCKET"]
    for obj in stack.s3.list_objects_v2(Bucket=archive)["Contents"]:
        lines = stack.s3.get_object(Bucket=archive, Key=obj["Key"])["Body"].read().splitlines()
        archived += [json.loads(line) for line in lines]
    assert {a["row"]: a.get("carried", {}).get("reference") for a in archived} == {
        row: ref or None for row, ref in REFERENCES.items() if row < 9
    }

    sinks.reconciler().run()
    body = stack.s3.get_object(
        Bucket=stack.env["REPORTS_BUCKET"], Key=f"jobs/{job_id}/outcomes.csv"
    )["Body"].read()
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    assert list(rows[0]) == [
        "row",
        "to",
        "api",
        "outcome",
        "error_code",
        "sid",
        "reason",
        "reference",
        *DELIVERY_HEADER,
        "Customer Name",
    ]
    inert = {7: "'=HYPERLINK(1)"}  # a formula is written inert (downstream.reconcile)
    assert {int(r["row"]): r["reference"] for r in rows} == {
        row: inert.get(row, ref) if row < 9 else "" for row, ref in REFERENCES.items()
    }
    assert {int(r["row"]): r["Customer Name"] for r in rows if r["outcome"] == "sent"} == {
        row: NAMES[row] for row in REFERENCES if row < 9
    }


def test_post_jobs_names_the_reference_and_kept_columns_and_the_status_shows_them(
    stack: Stack, client: Client
) -> None:
    from tests.handlers.test_api import create_and_split, get_job, post

    records = [
        {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": "hi", "id": f"c{i}", "plan": "p"}
        for i in range(3)
    ]
    body = {"rows": records, "reference_column": "ID", "keep_columns": ["plan"]}
    job_id = create_and_split(stack, client, body)

    status = get_job(client, job_id)
    assert (status["reference_column"], status["keep_columns"]) == ("ID", ["plan"])
    chunk = stack.s3.get_object(
        Bucket=stack.env["HOLDING_BUCKET"], Key=f"jobs/{job_id}/chunk-00000.jsonl"
    )["Body"].read()
    carried = [json.loads(line)["carried"] for line in chunk.splitlines()]
    assert carried == [{"reference": f"c{i}", "plan": "p"} for i in range(3)]

    for bad, named in [
        ({"reference_column": 5}, "`reference_column` must be a column name"),
        ({"keep_columns": "plan"}, "`keep_columns` must be a list of column names"),
        ({"keep_columns": ["a", "A"]}, "names a column twice"),
        ({"keep_columns": ["Prénom"]}, "printable ASCII"),
    ]:
        response = post(client, "/jobs", {"rows": records, **bad})
        assert response.status_code == 400
        assert named in json.loads(response.body)["Message"]
