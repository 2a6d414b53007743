"""The `callqueue` command (not deployed): `cli` (its arguments and commands), `generate` (test
files), `report` (a run's report), `client` (the Python API of a deployed stack: `from
callqueue import Client`), `deploy` (the stack and the steps around `chalice deploy`) and
`local` (the local runtime: the whole pipeline on one machine). `project` finds the Chalice
project whose code the command runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callqueue.project import make_importable

if TYPE_CHECKING:
    from callqueue.client import Client, Job

__all__ = ["Client", "Job"]

make_importable()


def __getattr__(name: str) -> Any:
    # `from callqueue import Client` without loading requests for every command that never
    # talks to a stack (`callqueue plan` stays light).
    if name in __all__:
        from callqueue import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(f"module 'callqueue' has no attribute {name!r}")
