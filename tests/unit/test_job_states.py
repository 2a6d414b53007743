"""A job's states and the moves between them exist once (chalicelib/core/jobs.py): the table is
consistent, the groups other modules use are the table's, and no other module spells out a tuple
of job states of its own."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from chalicelib.core.jobs import (
    ACTIVE,
    CANCELLABLE,
    FINAL,
    HELD,
    LOOPING,
    SENDING,
    SETTLING,
    TRANSITIONS,
    JobState,
    sources_of,
)

REPO = Path(__file__).resolve().parents[2]
STATES = set(get_args(JobState))


def test_the_table_names_every_state_and_only_states() -> None:
    assert set(TRANSITIONS) == STATES
    assert all(targets <= STATES for targets in TRANSITIONS.values())
    assert all(state not in targets for state, targets in TRANSITIONS.items())


def test_every_state_is_reachable_from_splitting_and_every_job_can_end() -> None:
    reached, frontier = {"splitting"}, ["splitting"]
    while frontier:
        for following in TRANSITIONS[frontier.pop()]:  # type: ignore[index]
            if following not in reached:
                reached.add(following)
                frontier.append(following)
    assert reached == STATES
    for state in STATES - set(FINAL):
        assert TRANSITIONS[state] & set(FINAL) or any(  # type: ignore[index]
            TRANSITIONS[t] & set(FINAL)
            for t in TRANSITIONS[state]  # type: ignore[index]
        ), state


def test_the_groups_are_the_tables() -> None:
    assert set(FINAL) == {"completed", "failed", "cancelled", "duplicate"}
    assert SENDING == sources_of("paused") == ("scheduled", "running", "released")
    # A scheduled job can be cancelled before its start: it then sends nothing.
    assert set(CANCELLABLE) == {"scheduled", "running", "released", "paused"}
    assert set(ACTIVE) == STATES - set(FINAL) and not set(ACTIVE) & set(FINAL)
    assert set(HELD) | set(LOOPING) | set(SETTLING) <= STATES
    # Resuming goes back to sending; a paused job is never final.
    assert set(SENDING) <= TRANSITIONS["paused"]


def test_no_other_module_spells_out_its_own_tuple_of_job_states() -> None:
    own = REPO / "chalicelib" / "core" / "jobs.py"
    found = []
    for package in ("chalicelib", "downstream", "app.py"):
        paths = [REPO / package] if package.endswith(".py") else (REPO / package).rglob("*.py")
        for path in paths:
            if path == own:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Tuple | ast.Set | ast.List) and len(node.elts) >= 2:
                    values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                    if len(values) == len(node.elts) and set(values) <= STATES:
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} {values}")
    assert not found, found
