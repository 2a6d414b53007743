"""In-process moto answers a request at a time, as its server does (tests/stack.py). The fixtures
of a deployment on moto's server (`moto_endpoint`, `deployed_stage`) are in tests/deploy/moto.py."""

import tests.stack  # noqa: F401 - imported for that
from tests.deploy.moto import deployed_stage, moto_endpoint  # noqa: F401 - fixtures
