"""In-process moto answers a request at a time, as its server does (tests/stack.py)."""

import tests.stack  # noqa: F401 - imported for that
