"""GET /console and its files through chalice.test.Client: served without a key, only the
console's own files, with a policy that runs nothing else; and the page's calls name real routes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client

from chalicelib.api.console import ASSETS, CONSOLE_DIR, content_security_policy
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


def connect_sources(policy: str) -> list[str]:
    [directive] = [d.strip() for d in policy.split(";") if d.strip().startswith("connect-src ")]
    return directive.split()[1:]


def test_console_policy_connects_only_to_itself_and_s3_when_deployed(client: Client) -> None:
    response = client.http.get("/console")

    assert connect_sources(response.headers["Content-Security-Policy"]) == [
        "'self'",
        "https://*.amazonaws.com",
    ]


def test_console_policy_allows_the_local_s3_only_under_callqueue_up(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:54321")

    policy = client.http.get("/console/console.js").headers["Content-Security-Policy"]

    assert connect_sources(policy) == [
        "'self'",
        "https://*.amazonaws.com",
        "http://127.0.0.1:54321",
    ]


@pytest.mark.parametrize(
    ("endpoint", "extra"),
    [
        ("", []),
        ("http://localhost:4566/", ["http://localhost:4566"]),
        ("http://[::1]:9000", ["http://[::1]:9000"]),
        ("http://127.0.0.1", ["http://127.0.0.1"]),
        # Not loopback: a real endpoint (a VPC or FIPS one) is not widened beyond S3's hosts.
        ("https://s3.eu-west-1.amazonaws.com", []),
        ("http://10.0.0.5:4566", []),
        ("http://127.0.0.1.evil.example:80", []),
        ("http://user@evil.example:1@127.0.0.1:5", ["http://127.0.0.1:5"]),
        ("ftp://127.0.0.1:21", []),
        ("http://127.0.0.1:notaport", []),
        ("http://127.0.0.1:5 https:", []),
    ],
)
def test_console_policy_adds_only_a_loopback_origin(endpoint: str, extra: list[str]) -> None:
    policy = content_security_policy({"AWS_ENDPOINT_URL": endpoint})

    assert connect_sources(policy) == ["'self'", "https://*.amazonaws.com", *extra]
