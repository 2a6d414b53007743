"""GET /console and its files through chalice.test.Client: served without a key, only the
console's own files, with a policy that runs nothing else; and the page's calls name real routes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client

from chalicelib.api.console import ASSETS, CONSOLE_DIR
from tests.stack import Stack


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def test_console_page_is_served_with_a_strict_policy(client: Client) -> None:
    response = client.http.get("/console")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert b"<title>callqueue console</title>" in response.body


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_console_serves_each_file_with_its_type(client: Client, name: str) -> None:
    response = client.http.get(f"/console/{name}")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == ASSETS[name]
    assert response.body == (CONSOLE_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "name", ["app.py", "..%2Fapi%2Fconsole.py", "%2E%2E", "console.js.map", "INDEX.HTML", "x"]
)
def test_console_serves_no_other_file(client: Client, name: str) -> None:
    response = client.http.get(f"/console/{name}")

    assert response.status_code == 404


def test_console_page_loads_only_the_console_files() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', page)

    assert loaded, "the page loads its script and style"
    for target in loaded:
        if target == "data:,":  # the empty icon: no request for /favicon.ico
            continue
        assert target.startswith("console/") and target.removeprefix("console/") in ASSETS


def test_console_calls_only_routes_of_the_app() -> None:
    import app as app_module

    script = "\n".join((CONSOLE_DIR / n).read_text() for n in ASSETS if n.endswith(".js"))
    paths = re.findall(r'[`"](/(?:jobs|suppression)[^`"?]*)', script)
    routes = {re.sub(r"\{[^}]+\}", "X", path) for path in app_module.app.routes}

    assert len(paths) >= 8
    for path in paths:
        assert re.sub(r"\$\{[^}]+\}", "X", path) in routes, f"{path} is not a route"
