"""`callqueue stage add NAME [--live]`: one step, a complete stage (credentials choice, X-Ray,
autogen_policy off, a committed policy per function), config.json's other lines untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from callqueue.cli import main
from callqueue.deploy import infra, stages

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / ".chalice", tmp_path / ".chalice")
    return tmp_path


def test_config_json_is_written_in_its_own_layout() -> None:
    text = (REPO / ".chalice" / "config.json").read_text()
    assert stages.format_config(json.loads(text)) == text


@pytest.mark.parametrize(
    ("live", "credentials", "xray"), [(False, "test", False), (True, "live", True)]
)
def test_stage_add_makes_a_complete_stage_and_changes_only_its_lines(
    project: Path, live: bool, credentials: str, xray: bool
) -> None:
    path = project / ".chalice" / "config.json"
    before = path.read_text()
    stages.add_stage("eu-2", live=live, project_dir=project)
    after = path.read_text()
    config = json.loads(after)

    stage = config["stages"]["eu-2"]
    assert stage["autogen_policy"] is False
    assert stage["xray"] is xray
    assert stage["environment_variables"] == {
        "CALLQUEUE_STAGE": "eu-2",
        "TWILIO_CREDENTIALS": credentials,
        # Powertools' Tracer runs where X-Ray is on, as in the stage it is modelled on.
        "POWERTOOLS_TRACE_DISABLED": "false" if xray else "true",
    }
    assert set(stage["lambda_functions"]) == set(infra.policy_sources(project))
    for function, own in stage["lambda_functions"].items():
        policy = json.loads((project / ".chalice" / own["iam_policy_file"]).read_text())
        assert "callqueue-eu-2-" in json.dumps(policy), function
        assert "callqueue-dev-" not in json.dumps(policy) and "Comment" not in json.dumps(policy)
    # The other stages are as they were, line for line: the new one is inserted before the end.
    old_lines, new_lines = before.splitlines(), after.splitlines()
    assert new_lines[: len(old_lines) - 3] == old_lines[:-3]
    assert new_lines[-3:] == old_lines[-3:]
    assert config["stages"]["dev"] == json.loads(before)["stages"]["dev"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dev", "stage 'dev' exists"),
        ("Prod", "lower-case letters"),
        ("local", "'local' is the local runtime's"),
        ("a" * 21, "at most 20 characters"),
        ("x_y", "lower-case letters"),
    ],
)
def test_stage_add_refuses_in_one_line_and_writes_nothing(
    project: Path, name: str, message: str
) -> None:
    path = project / ".chalice" / "config.json"
    before = path.read_bytes()
    with pytest.raises(stages.StageError, match=message):
        stages.add_stage(name, project_dir=project)
    assert path.read_bytes() == before
    assert sorted(p.name for p in (project / ".chalice" / "policies").iterdir() if p.is_dir()) == [
        "dev",
        "prod",
    ]


def test_stage_add_command_reports_a_bad_name_as_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stage", "add", "Bad!"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("callqueue: stage name 'Bad!'") and err.count("\n") == 1
