"""POST /jobs/plan through chalice.test.Client on the moto stack: the plan of a file's content,
under the request's settings, with nothing sent and no job made."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.core.schedule import Schedule
from chalicelib.intake.plan import plan
from tests.stack import Stack

VALID_FROM = "+15005550006"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def csv_of(numbers: list[str], names: list[str] | None = None, body: str = "hello") -> str:
    names = names or [f"n{i}" for i in range(len(numbers))]
    lines = ["To,From,name,Body"] + [
        f"{n},{VALID_FROM},{m},{body}" for n, m in zip(numbers, names, strict=True)
    ]
    return "\n".join(lines) + "\n"


def post_plan(client: Client, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.http.post("/jobs/plan", headers=JSON, body=json.dumps(body))
    return response.status_code, json.loads(response.body)


def test_plan_api_counts_rejects_and_previews_a_template(client: Client, stack: Stack) -> None:
    content = csv_of(["+14155550100", "not a number", "+14155550101"], ["Ann", "Bob", "Zoë"], "")
    status, planned = post_plan(
        client,
        {
            "filename": "calls.csv",
            "content": content,
            "params": {"Body": "Hello {{name}}"},
            "cps": 2,
            "window": 5,
        },
    )

    assert status == 200, planned
    assert (planned["rows"], planned["valid"], planned["rejected"]) == (3, 2, 1)
    assert [r["row"] for r in planned["rejects"]] == [2]
    assert planned["rejects"][0]["reason"]
    assert [p["params"]["Body"] for p in planned["preview"]] == ["Hello Ann", "Hello Zoë"]
    # "Zoë" is not GSM-7: the second message is UCS-2.
    assert planned["sms_messages_by_encoding"] == {"GSM-7": 1, "UCS-2": 1}
    assert (planned["cps"], planned["window_seconds"], planned["chunks"]) == (2, 5, 1)
    assert planned["timeline"]["by_zone"][0]["rows"] == 2
    assert planned["cost"]
    assert planned["filename"] == "calls.csv"
    # A plan sends nothing and makes no job.
    assert stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"]).get("KeyCount", 0) == 0
    assert wiring.jobs().recent(10) == []


def test_plan_api_uses_the_stage_defaults_for_what_the_body_leaves_out(client: Client) -> None:
    status, planned = post_plan(client, {"filename": "a.csv", "content": csv_of(["+14155550100"])})

    s = wiring.settings()
    assert status == 200, planned
    assert (planned["cps"], planned["window_seconds"]) == (s.cps, s.window_seconds)


def test_plan_api_shows_only_the_first_rejects(client: Client) -> None:
    content = csv_of(["bad"] * 45)

    status, planned = post_plan(client, {"filename": "a.csv", "content": content})

    assert status == 200
    assert planned["rejected"] == 45
    assert [r["row"] for r in planned["rejects"]] == list(range(1, 21))


def test_plan_api_a_send_window_groups_rows_by_zone(client: Client) -> None:
    content = csv_of(["+14155550100", "+12125550100", "+442071838750"])
    body = {"filename": "a.csv", "content": content, "send_window": "08:00-21:00"}

    status, planned = post_plan(client, body)

    assert status == 200, planned
    zones = {z["zone"] for z in planned["timeline"]["by_zone"]}
    assert len(zones) >= 2
    assert sum(z["rows"] for z in planned["timeline"]["by_zone"]) == 3


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"filename": "calls.txt", "content": "x"}, "expected a .csv"),
        ({"filename": "calls.csv"}, "`content`"),
        ({"filename": "calls.csv", "content": 3}, "`content`"),
        ({"filename": "dir/calls.csv", "content": ""}, "`filename`"),
        ({"content": "To\n"}, "`filename` or `staged_key`"),
        ({"filename": "a.csv", "content": "To\n", "cps": "fast"}, "`cps`"),
        ({"filename": "a.csv", "content": "To\n", "cps": 0}, "CPS"),
        ({"filename": "a.csv", "content": "To\n", "send_window": "25:00-26:00"}, "send_window"),
        (
            {"filename": "a.csv", "content": "To\n+14155550100\n", "params": {"Body": "{{nope}}"}},
            "nope",
        ),
        ({"filename": "a.csv", "content": "To\n"}, "no rows"),
        ({"filename": "a.json", "content": "{not json"}, "a.json"),
    ],
)
def test_plan_api_answers_a_mistake_with_400_naming_it(
    client: Client, body: dict[str, Any], says: str
) -> None:
    status, answer = post_plan(client, body)

    assert status == 400, answer
    assert says in answer["Message"]


def test_plan_api_refuses_a_body_that_is_not_json(client: Client) -> None:
    response = client.http.post("/jobs/plan", headers=JSON, body=b"calls")

    assert response.status_code == 400


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(["+14155550100", "+12125550199", "0", "", "+1415", "+442071838750"]),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 5),
    st.integers(1, 4),
)
def test_plan_api_agrees_with_the_plan_of_the_file(
    client: Client, numbers: list[str], cps: int, window: int
) -> None:
    content = csv_of(numbers)

    status, planned = post_plan(
        client, {"filename": "a.csv", "content": content, "cps": cps, "window": window}
    )

    local = plan(
        io.BytesIO(content.encode()),
        "csv",
        Schedule(cps, window),
        default_region=wiring.settings().default_region,
    )
    assert status == 200, planned
    assert (planned["rows"], planned["valid"], planned["rejected"], planned["chunks"]) == (
        local.rows,
        local.valid,
        local.rejected,
        local.chunks,
    )
    assert planned["rejects"] == local.rejects[:20]
    assert planned["eta_seconds"] == round(local.eta_seconds, 3)
