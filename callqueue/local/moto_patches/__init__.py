"""Patches of moto's internals for the local runtime and the tests (harness only, never the
product), pinned to the one version of moto they were written against and checked on.

Each patch replaces or wraps a private function or class of moto (or of a library moto calls) to
make it safe under concurrent requests (`locking`, `lock_keys`), fast enough at hundreds of calls
a second (`sqs`, `dynamodb`, `dispatch`, `sns`), or reach the runtime's handlers (`awslambda`).
Private internals change between releases without notice, so importing any of them on another
version of moto fails at once, naming both versions, instead of patching what is not there.
"""

from __future__ import annotations

from importlib.metadata import version

from chalicelib.errors import CallqueueError

# The version in requirements-dev.txt and constraints.txt.
PINNED_MOTO_VERSION = "5.2.5"


class MotoVersionError(CallqueueError):
    """The installed moto is not the version the patches were written against."""


def check_moto_version(installed: str | None = None) -> None:
    """Raise MotoVersionError unless `installed` (default: moto's installed version) is the
    pinned one."""
    found = installed if installed is not None else version("moto")
    if found != PINNED_MOTO_VERSION:
        raise MotoVersionError(
            f"callqueue.local.moto_patches patch moto {PINNED_MOTO_VERSION}'s internals, but moto "
            f"{found} is installed: install moto=={PINNED_MOTO_VERSION} (constraints.txt), or "
            "check every patch against the new version before changing PINNED_MOTO_VERSION"
        )


check_moto_version()
