"""The emulated account: one store of resources with every API's operations on it."""

from __future__ import annotations

from callqueue.local.emulator.calls import _CallsApi
from callqueue.local.emulator.lookup import _LookupApi
from callqueue.local.emulator.messages import _MessagesApi
from callqueue.local.emulator.studio import _StudioApi
from callqueue.local.emulator.verify import _VerifyApi


class _Account(_MessagesApi, _CallsApi, _LookupApi, _VerifyApi, _StudioApi):
    """The emulated account's resources and the operations on them. `step`: seconds between a
    resource's status changes on the emulator's timeline."""
