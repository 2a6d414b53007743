"""`callqueue deploy` gives the stack the callback function once Chalice has created it (the
stack's function URL needs the function), and from then on with every update, so an update never
deletes the URL messages in flight were given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callqueue.deploy import infra, sequence

FUNCTION = "callqueue-dev-status_callback_url"


class FakeLambda:
    """The Lambda API's get_function, for functions that `chalice deploy` creates."""

    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self) -> None:
        self.functions: set[str] = set()

    def get_function(self, FunctionName: str) -> dict[str, Any]:
        if FunctionName not in self.functions:
            raise self.exceptions.ResourceNotFoundException(FunctionName)
        return {"Configuration": {"FunctionName": FunctionName}}


class FakeTarget(sequence.Target):
    def __init__(self, lam: FakeLambda, *, moto: bool = False) -> None:
        super().__init__(project_dir=Path("."), moto=moto)
        object.__setattr__(self, "_lambda", lam)

    def client(self, service: str) -> Any:
        return self._lambda if service == "lambda" else object()  # type: ignore[attr-defined]


@pytest.fixture
def stack_updates(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeLambda, list[str]]:
    """The StatusCallbackFunction each stack update is given; `chalice deploy` creates the
    functions in the fake Lambda."""
    lam, given = FakeLambda(), []

    def stack(cloudformation: Any, secrets: Any, stage: str, **kw: Any) -> dict[str, str]:
        given.append(kw["parameters"][infra.CALLBACK_PARAMETER])
        return {}

    monkeypatch.setattr(infra, "secret_arn", lambda *a: "arn:secret")
    monkeypatch.setattr(infra, "deploy", stack)
    monkeypatch.setattr(sequence, "_chalice", lambda *a: lam.functions.add(FUNCTION))
    monkeypatch.setattr(sequence, "_deployed_count", lambda *a: 12)
    monkeypatch.setattr(infra, "post_deploy", lambda *a, **k: ["q"])
    monkeypatch.setattr(sequence, "rest_api_url", lambda *a: None)
    monkeypatch.setattr(sequence, "outputs", lambda *a, **k: None)
    return lam, given


def test_a_first_deploy_gives_the_stack_the_function_after_chalice_creates_it(
    stack_updates: tuple[FakeLambda, list[str]],
) -> None:
    lam, given = stack_updates
    lines: list[str] = []

    sequence.deploy("dev", target=FakeTarget(lam), report=lines.append)

    assert given == ["", FUNCTION]
    assert any(line.startswith(f"callback function URL on {FUNCTION}") for line in lines)


def test_a_later_deploy_keeps_the_function_url_with_one_update(
    stack_updates: tuple[FakeLambda, list[str]],
) -> None:
    lam, given = stack_updates
    lam.functions.add(FUNCTION)

    sequence.deploy("dev", target=FakeTarget(lam), report=lambda line: None)

    assert given == [FUNCTION]


def test_infra_deploy_by_hand_finds_the_function_itself() -> None:
    lam = FakeLambda()
    assert infra.deployed_callback_function(lam, "dev") == ""
    lam.functions.add(FUNCTION)
    assert infra.deployed_callback_function(lam, "dev") == FUNCTION
