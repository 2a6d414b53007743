"""MachineDetection at the split: a job manifest's value reaches every call's chunked request, a
row's own overrides it, and a value Twilio does not take rejects its row with the reason."""

from __future__ import annotations

import json

from tests.handlers.test_intake_edges import (
    FROM,
    URL,
    StartedLoops,
    chunk,
    csv_bytes,
    make_splitter,
    put,
    rejects,
)
from tests.stack import Stack

HEADER = ["api", "To", "machinedetection"]


def test_machine_detection_of_the_job_and_of_rows_reaches_the_chunks_checked(
    stack: Stack,
) -> None:
    params = {"From": FROM, "Url": URL, "MachineDetection": "enable"}
    put(stack, "calls.csv.job.json", json.dumps({"params": params}).encode())
    rows = [
        ["calls", "+14155550100", ""],
        ["calls", "+14155550101", "detectmessageend"],
        ["calls", "+14155550102", "yes"],
        ["messages", "+14155550103", ""],
    ]
    put(stack, "calls.csv", csv_bytes(HEADER, rows))
    splitter = make_splitter(StartedLoops())

    splitter.split(stack.env["SOURCE_BUCKET"], "calls.csv.job.json")
    job = splitter.split(stack.env["SOURCE_BUCKET"], "calls.csv")

    assert job is not None and (job.valid, job.rejected) == (2, 2)
    sent = {
        r["params"]["To"]: r["params"].get("MachineDetection") for r in chunk(stack, job.job_id)
    }
    assert sent == {"+14155550100": "Enable", "+14155550101": "DetectMessageEnd"}
    reasons = rejects(stack, job.job_id)
    assert reasons[3] == "MachineDetection 'yes' is not one of Enable, DetectMessageEnd"
    assert 4 in reasons  # a message without a Body: the job's MachineDetection is not its


def test_a_bad_machine_detection_of_the_job_rejects_every_call_saying_why(stack: Stack) -> None:
    params = {"From": FROM, "Url": URL, "MachineDetection": "always"}
    put(stack, "bad.csv.job.json", json.dumps({"params": params}).encode())
    put(stack, "bad.csv", csv_bytes(["api", "To"], [["calls", "+14155550100"]] * 2))
    splitter = make_splitter(StartedLoops())

    splitter.split(stack.env["SOURCE_BUCKET"], "bad.csv.job.json")
    job = splitter.split(stack.env["SOURCE_BUCKET"], "bad.csv")

    assert job is not None and (job.valid, job.rejected) == (0, 2)
    why = "MachineDetection 'always' is not one of Enable, DetectMessageEnd"
    assert rejects(stack, job.job_id) == {1: why, 2: why}
