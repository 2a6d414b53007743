"""Suppression lists in and out against a stack (moto, in-process): `callqueue suppression
import|export`, GET /suppression and POST /suppression/import, and the batch writes under them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from callqueue.cli import main
from chalicelib import wiring
from chalicelib.errors import RetryableError
from chalicelib.sending.suppression import SuppressionList
from chalicelib.sending.suppression_csv import read_import
from tests.stack import Stack

A, B = "+14155550100", "+442079460958"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def table(stack: Stack) -> str:
    return stack.env["SUPPRESSION_TABLE"]


def items(stack: Stack) -> dict[str, dict[str, Any]]:
    scanned = stack.dynamodb.scan(TableName=table(stack))["Items"]
    return {i["number"]["S"]: i for i in scanned}


def test_suppression_import_cli_writes_every_number_with_its_source(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wiring.suppression().add(A, "unsubscribed", error_code=21610)
    path = tmp_path / "stops.csv"
    path.write_bytes(f"\ufeffTo,reason\r\n{A},from file\r\n+44 20 7946 0958,\r\n".encode())

    assert main(["suppression", "import", str(path), "--reason", "crm export"]) == 0

    assert "2 number(s) read, 1 newly suppressed" in capsys.readouterr().out
    stored = items(stack)
    assert stored[A]["reason"] == {"S": "unsubscribed"}  # the first reason is kept
    assert stored[A]["source"] == {"S": "send_error"}
    assert stored[B]["reason"] == {"S": "crm export"}
    assert stored[B]["source"] == {"S": "import"}
    assert "added_at" in stored[B]


def test_suppression_import_cli_with_a_bad_line_imports_nothing(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stops.csv"
    path.write_text(f"number\n{A}\ncall me\n{B}\n+1234567\n")

    assert main(["suppression", "import", str(path)]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("line 3: 'call me' is not")
    assert err[1].startswith("line 5: +1234567 is not")
    assert err[-1] == "nothing imported"
    assert items(stack) == {}


def test_suppression_import_cli_of_a_missing_file_is_one_line(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["suppression", "import", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot read it" in err and "Traceback" not in err


def test_suppression_manual_add_is_recorded_as_manual(stack: Stack) -> None:
    assert main(["suppression", "add", A]) == 0
    assert items(stack)[A]["source"] == {"S": "manual"}


def test_suppression_export_cli_lists_old_items_without_source_or_date(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An item written before sources were recorded (and one without even a date).
    stack.dynamodb.put_item(
        TableName=table(stack),
        Item={"number": {"S": B}, "reason": {"S": "unsubscribed"}, "added_at": {"N": "0"}},
    )
    stack.dynamodb.put_item(
        TableName=table(stack), Item={"number": {"S": A}, "reason": {"S": "old"}}
    )

    assert main(["suppression", "list"]) == 0
    assert main(["suppression", "export"]) == 0
    out = capsys.readouterr().out
    assert f"{A}\told" in out
    assert out.splitlines()[-3:] == [
        "number,reason,source,added_at",
        "'+14155550100,old,,",
        "'+442079460958,unsubscribed,,1970-01-01T00:00:00Z",
    ]
    path = tmp_path / "out.csv"
    assert main(["suppression", "export", str(path)]) == 0
    assert (
        path.read_bytes().decode().endswith("'+442079460958,unsubscribed,,1970-01-01T00:00:00Z\r\n")
    )


def test_suppression_export_then_import_into_an_empty_list_restores_it(
    stack: Stack, tmp_path: Path
) -> None:
    wiring.suppression().add(A, "=cmd|' /C calc'!A0", source="reply")
    wiring.suppression().add(B, "invalid number")
    path = tmp_path / "out.csv"
    assert main(["suppression", "export", str(path)]) == 0
    for number in (A, B):
        wiring.suppression().remove(number)

    assert main(["suppression", "import", str(path)]) == 0

    assert set(items(stack)) == {A, B}
    assert read_import(path.read_text(), None) == {
        A: "'=cmd|' /C calc'!A0",
        B: "invalid number",
    }


def test_api_get_suppression_as_csv_and_json(stack: Stack, client: Client) -> None:
    wiring.suppression().add(B, "unsubscribed", source="callback")
    stack.dynamodb.put_item(
        TableName=table(stack), Item={"number": {"S": A}, "reason": {"S": "old"}}
    )

    as_csv = client.http.get("/suppression")
    as_json = client.http.get("/suppression?format=json")

    assert as_csv.status_code == 200
    assert as_csv.headers["Content-Type"] == "text/csv"
    lines = as_csv.body.decode().splitlines()
    assert lines[:2] == ["number,reason,source,added_at", "'+14155550100,old,,"]
    assert lines[2].startswith("'+442079460958,unsubscribed,callback,20")
    listed = json.loads(as_json.body)["suppressions"]
    assert [(e["number"], e["source"]) for e in listed] == [(A, None), (B, "callback")]
    assert listed[0]["added_at"] is None
    assert client.http.get("/suppression?format=xml").status_code == 400


def test_api_import_suppression_writes_every_number(stack: Stack, client: Client) -> None:
    body = f"number,reason\n{A},stop\n{A},again\n{B}\n".encode()

    response = client.http.post("/suppression/import", headers=CSV, body=body)

    assert response.status_code == 200
    assert json.loads(response.body) == {"read": 2, "added": 2}
    stored = items(stack)
    assert stored[A]["reason"] == {"S": "stop"} and stored[A]["source"] == {"S": "import"}


def test_api_import_suppression_with_bad_lines_is_400_and_imports_nothing(
    stack: Stack, client: Client
) -> None:
    body = f"number\n{A}\n12\n{B}\n".encode()

    response = client.http.post("/suppression/import", headers=CSV, body=body)

    assert response.status_code == 400
    answer = json.loads(response.body)
    assert answer["Message"] == "1 bad line(s); nothing imported"
    assert [b["line"] for b in answer["bad_lines"]] == [3]
    assert "12" in answer["bad_lines"][0]["error"]
    assert items(stack) == {}


def test_api_import_suppression_refuses_a_body_past_the_limit(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chalicelib.api.suppression.MAX_BODY_BYTES", 10)
    response = client.http.post("/suppression/import", headers=CSV, body=f"{A}\n{B}\n".encode())
    assert response.status_code == 413
    assert items(stack) == {}


def test_suppression_add_many_writes_in_batches_and_retries_unprocessed_puts(
    stack: Stack,
) -> None:
    dynamodb, name = stack.dynamodb, table(stack)
    sent: list[list[dict[str, Any]]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["RequestItems"][name])

    def leave_two_unprocessed(parsed: dict[str, Any], **_: Any) -> None:
        # The first answer says its last two puts were throttled, as DynamoDB can.
        if len(sent) == 1:
            parsed["UnprocessedItems"] = {name: sent[0][-2:]}

    dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", remember)
    dynamodb.meta.events.register("after-call.dynamodb.BatchWriteItem", leave_two_unprocessed)
    sleeps: list[float] = []
    suppressions = SuppressionList(dynamodb, name, sleep=sleeps.append)
    entries = {f"+1500555{n:04d}": "bulk" for n in range(60)}

    assert suppressions.add_many(entries) == 60
    assert [len(r) for r in sent] == [25, 2, 25, 10]
    assert sent[1] == sent[0][-2:]
    assert sleeps == [0.05]
    assert len(items(stack)) == 60
    assert suppressions.add_many(entries) == 0
    assert len(sent) == 4


def test_suppression_add_many_raises_when_puts_stay_unprocessed(stack: Stack) -> None:
    dynamodb, name = stack.dynamodb, table(stack)
    sent: list[list[dict[str, Any]]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["RequestItems"][name])

    def leave_all(parsed: dict[str, Any], **_: Any) -> None:
        parsed["UnprocessedItems"] = {name: sent[-1]}

    dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", remember)
    dynamodb.meta.events.register("after-call.dynamodb.BatchWriteItem", leave_all)
    suppressions = SuppressionList(dynamodb, name, sleep=lambda _: None, attempts=3)

    with pytest.raises(RetryableError, match="1 puts still unprocessed after 3 attempts"):
        suppressions.add_many({A: "x"})
    assert len(sent) == 3


def test_suppression_add_refuses_an_unknown_source(stack: Stack) -> None:
    with pytest.raises(ValueError, match="unknown suppression source"):
        wiring.suppression().add(A, "x", source="sms")
    assert items(stack) == {}
