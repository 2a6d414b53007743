"""The handlers run against in-process moto: the `stack` and `emulator` fixtures."""

from tests.stack import emulator, stack  # noqa: F401 - fixtures, registered by being here
