"""The deployment: the infrastructure stack, the functions (Chalice) and the steps around them.

`outputs(stage)` finds a deployed stage by name (callqueue.deploy.stack_outputs); `sequence`
deploys and destroys a stage in one call; `stages` adds one to .chalice/config.json.
"""

from callqueue.deploy.stack_outputs import StackOutputs, StageNotDeployed, outputs

__all__ = ["StackOutputs", "StageNotDeployed", "outputs"]
