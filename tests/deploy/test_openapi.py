"""openapi.yaml describes exactly the app's routes, with their authorisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def described() -> dict[tuple[str, str], dict[str, Any]]:
    document = yaml.safe_load((REPO / "openapi.yaml").read_text())
    return {
        (path, method.upper()): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_openapi_describes_every_route_and_nothing_else() -> None:
    import app as app_module

    routes = {
        (path, method): entry
        for path, methods in app_module.app.routes.items()
        for method, entry in methods.items()
    }
    operations = described()

    assert set(operations) == set(routes)
    for key, entry in routes.items():
        assert operations[key]["operationId"] == entry.view_name


def test_openapi_security_matches_the_routes_authorisation() -> None:
    import app as app_module

    for (path, method), operation in described().items():
        entry = app_module.app.routes[path][method]
        # Twilio's webhooks carry its signature, not an API key; the console's files are public.
        if path in ("/twilio/status", "/twilio/inbound") or path.startswith("/console"):
            assert operation["security"] == []
            assert not entry.api_key_required and entry.authorizer is None
        else:
            assert operation["security"] == [{"apiKey": []}]
            assert entry.api_key_required


def test_openapi_path_parameters_match_the_routes() -> None:
    import app as app_module

    for (path, method), operation in described().items():
        entry = app_module.app.routes[path][method]
        refs = [p.get("$ref", "") for p in operation.get("parameters", [])]
        names = {"/JobId": "job_id", "/ConsoleFile": "name"}
        declared = [n for r in refs for end, n in names.items() if r.endswith(end)]
        assert declared == list(entry.view_args)
