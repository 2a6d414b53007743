"""Step Functions adapter: starts a job's chunk release loop (.chalice/state-machine.json)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class ReleaseLoop:
    def __init__(self, sfn: SFNClient, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, job_id: str, state: dict[str, Any]) -> None:
        """Start the loop once per job: the execution is named after the job, so a retried start
        with the same input is accepted by Step Functions as the same execution."""
        # Same name, different input: an execution for this job is already running.
        with contextlib.suppress(self._sfn.exceptions.ExecutionAlreadyExists):
            self._sfn.start_execution(
                stateMachineArn=self._arn, name=job_id, input=json.dumps(state, sort_keys=True)
            )
