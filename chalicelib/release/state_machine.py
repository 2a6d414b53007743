"""Step Functions adapter: starts a job's chunk release loop (.chalice/state-machine.json) and
tells whether one is running.

A job's loop is a chain of executions. One execution stays within Step Functions' history limit
(25,000 events) by handing its loop state to a new execution of the same state machine every so many
iterations (chalicelib/release/releaser.py), and `resume` starts a new one when the loop died. The
first execution is named after the job (the splitter starts it), the n-th after it `{job_id}-g{n}`:
a start repeated (a retried release step, two resumes at once) names the same execution, which Step
Functions starts once, so a generation never has two loops.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

_GENERATION = re.compile(r"-g([0-9]+)$")


class LoopNotStarted(CallqueueError):
    """No execution could be started for a job whose loop is not running."""


def execution_name(job_id: str, generation: int) -> str:
    """The execution of the loop's `generation`; job ids are at most 53 characters, well
    within the 80 an execution name may have."""
    return job_id if generation == 0 else f"{job_id}-g{generation}"


def generation_of(job_id: str, name: str) -> int | None:
    """The generation of `job_id`'s loop an execution name is, None for another job's."""
    if name == job_id:
        return 0
    match = _GENERATION.search(name)
    if match is None or name[: match.start()] != job_id:
        return None
    return int(match[1])


class ReleaseLoop:
    def __init__(self, sfn: SFNClient, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, job_id: str, state: dict[str, Any], generation: int = 0) -> bool:
        """Start the loop's execution of `generation` with `state`; False if an execution of
        that name exists already (running, or finished: names are never reused)."""
        try:
            self._sfn.start_execution(
                stateMachineArn=self._arn,
                name=execution_name(job_id, generation),
                input=json.dumps(state, sort_keys=True),
            )
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return False
        return True

    def running(self, job_id: str) -> bool:
        """Whether an execution of the job's loop, of any generation, is running. Running
        executions are the active jobs' loops, a page or two of names."""
        return any(True for _ in self._running(job_id))

    def stop(self, job_id: str, *, keep: int | None = None) -> int:
        """Stop the running executions of the job's loop but generation `keep`; how many were
        stopped. A release step running in one still finishes (Lambda is not interrupted):
        the step is idempotent on the job's release count."""
        stopped = 0
        for arn, generation in self._running(job_id):
            if generation == keep:
                continue
            try:
                self._sfn.stop_execution(executionArn=arn, cause="release loop restarted")
            except self._sfn.exceptions.ExecutionDoesNotExist:
                continue
            stopped += 1
        return stopped

    def _running(self, job_id: str) -> Iterator[tuple[str, int]]:
        for page in self._sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self._arn, statusFilter="RUNNING"
        ):
            for execution in page["executions"]:
                generation = generation_of(job_id, execution["name"])
                if generation is not None:
                    yield execution["executionArn"], generation
