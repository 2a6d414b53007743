"""The release loop's definition (.chalice/state-machine.json) as Amazon States Language.

Its execution is tested on moto's interpreter in test_pipeline; here, its structure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from callqueue.cli import main
from callqueue.deploy.stack import render_template

DEFINITION = Path(__file__).resolve().parents[2] / ".chalice" / "state-machine.json"


def definition() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFINITION.read_text())
    return data


def targets(state: dict[str, Any]) -> set[str]:
    found = {state[k] for k in ("Next", "Default") if k in state}
    found |= {choice["Next"] for choice in state.get("Choices", [])}
    return found


def test_state_machine_every_transition_names_a_state() -> None:
    states = definition()["States"]
    assert definition()["StartAt"] in states
    for name, state in states.items():
        assert targets(state) <= set(states), name
        if state["Type"] not in ("Succeed", "Fail", "Choice"):
            assert "Next" in state or state.get("End") is True, name


def test_state_machine_every_state_is_reachable_and_the_loop_can_end() -> None:
    states = definition()["States"]
    seen, todo = set(), [definition()["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(targets(states[name]))
    assert seen == set(states)
    assert any(s["Type"] == "Succeed" for s in states.values())


def test_state_machine_waits_for_an_absolute_time_not_a_fixed_period() -> None:
    waits = [s for s in definition()["States"].values() if s["Type"] == "Wait"]
    assert waits
    assert all("TimestampPath" in w and "Seconds" not in w for w in waits)


def test_state_machine_task_is_substituted_with_the_release_function() -> None:
    [task] = [s for s in definition()["States"].values() if s["Type"] == "Task"]
    assert task["Resource"] == "${ReleaseChunkFunctionArn}"
    assert task["Retry"]
    rendered = render_template()["Resources"]["ReleaseStateMachine"]["Properties"]
    body, variables = rendered["DefinitionString"]["Fn::Sub"]
    assert json.loads(body) == definition()
    assert set(variables) == {"ReleaseChunkFunctionArn"}


def test_template_command_prints_the_rendered_template(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["template"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == render_template()


def test_state_machine_waits_first_when_started_with_a_next_at() -> None:
    # A loop continued as new, or restarted by resume, starts with the time of its next chunk;
    # the splitter's first state has none and releases chunk 0 at once.
    states = definition()["States"]
    begin = states[definition()["StartAt"]]
    assert begin["Type"] == "Choice"
    [at_once] = begin["Choices"]
    assert (at_once["Variable"], at_once["StringEquals"]) == ("$.next_at", "")
    assert states[at_once["Next"]]["Type"] == "Task"
    assert states[begin["Default"]]["Type"] == "Wait"
    assert states[begin["Default"]]["TimestampPath"] == "$.next_at"
