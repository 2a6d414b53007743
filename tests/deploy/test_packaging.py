"""The deployment package, as a CI/CD pipeline builds it: plain `chalice package` on a fresh clone
(docs/decisions/packaging.md). Chalice ships app.py, chalicelib/ and vendor/, so downstream/ must
reach the zip through the link vendor/downstream -> ../downstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.api.console import ASSETS
from tests.deploy.deployment import fresh_clone

REPO = Path(__file__).resolve().parents[2]


def test_vendor_link_points_at_downstream() -> None:
    link = REPO / "vendor" / "downstream"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "downstream").resolve()


def test_chalice_package_terraform_on_a_fresh_clone(tmp_path: Path) -> None:
    out = tmp_path / "package"
    project = fresh_clone(tmp_path / "clone")
    assert not (project / ".chalice" / "stacks").exists()
    chalice = Path(sys.executable).parent / "chalice"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(chalice), "package", "--pkg-format", "terraform", "--stage", "dev", str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = set(archive.namelist())
        machines = {n: _elf_machine(archive.read(n)) for n in names if n.endswith(".so")}
    assert "app.py" in names
    assert "chalicelib/intake/splitter.py" in names
    # The web console's files travel with the code that serves them.
    assert {f"chalicelib/console/{n}" for n in ASSETS} <= names
    assert "downstream/__init__.py" in names
    assert any(n.startswith("twilio/") for n in names)
    # Nothing of the command, the local runtime or the tests is deployed.
    assert not any(n.startswith(("callqueue/", "tests/")) for n in names)
    # Each function's role has the stage's committed policy.
    template = json.loads((out / "chalice.tf.json").read_text())
    policies = template["resource"]["aws_iam_role_policy"]
    committed = json.loads(
        (project / ".chalice" / "policies" / "dev" / "handle_send_batch.json").read_text()
    )
    assert json.loads(policies["handle_send_batch_role"]["policy"]) == committed
    # Every function runs on the configured architecture, and every compiled module the package
    # carries was built for it: a dependency with no wheel for it would be built here, for this
    # machine, and fail to import on Lambda (docs/decisions/arm64.md).
    config = json.loads((project / ".chalice" / "config.json").read_text())
    architecture = config.get("lambda_architecture", "x86_64")
    functions = template["resource"]["aws_lambda_function"]
    assert {tuple(f["architectures"]) for f in functions.values()} == {(architecture,)}
    assert machines, "the package carries aiohttp's and others' compiled modules"
    assert {n: m for n, m in machines.items() if m != ELF_MACHINE[architecture]} == {}


# ELF's e_machine for Lambda's two architectures.
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}


def _elf_machine(content: bytes) -> int:
    """The machine a shared object was built for (little-endian ELF: e_machine at byte 18)."""
    assert content[:4] == b"\x7fELF", "not an ELF shared object"
    return int.from_bytes(content[18:20], "little")


def _wheel(out: Path) -> Path:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(out), str(REPO)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("callqueue-*.whl")
    return wheel


def test_the_wheel_installs_only_the_callqueue_package_and_carries_the_project(
    tmp_path: Path,
) -> None:
    with zipfile.ZipFile(_wheel(tmp_path)) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    tops = {name.split("/")[0] for name in names}
    assert tops == {"callqueue", next(t for t in tops if t.endswith(".dist-info"))}
    project = "callqueue/_app/"
    for needed in (
        "app.py",
        "requirements.txt",
        ".chalice/config.json",
        ".chalice/state-machine.json",
        ".chalice/infrastructure.yaml",
        "chalicelib/intake/splitter.py",
        "downstream/archive.py",
        "vendor/downstream/archive.py",
    ):
        assert project + needed in names, needed
    assert not any(n.startswith(project) and "__pycache__" in n for n in names)
    assert not any(n.startswith(project + ".chalice/deployed") for n in names)
    assert not any(n.startswith(project + ".chalice/stacks") for n in names)
    # The Lambda set is declared, not left to whatever the machine has.
    lines = (REPO / "requirements.txt").read_text().splitlines()
    lambda_set = [line.split("==")[0] for line in lines if line and not line.startswith("#")]
    assert lambda_set
    for name in lambda_set:
        assert any(r.lower().startswith(name.lower()) for r in requires), name
    # The local runtime's and deployment's tools are extras, not everyone's dependencies.
    assert any(r.startswith("moto") and "extra == " in r for r in requires)
    assert not any(r.startswith(("pytest", "mypy", "ruff", "hypothesis")) for r in requires)


@pytest.mark.e2e
def test_a_clean_install_plans_and_generates_without_the_dev_dependencies(tmp_path: Path) -> None:
    """pip install of the wheel into a fresh venv (dependencies from the index), then the
    command from another directory: --help, generate, plan."""
    wheel = _wheel(tmp_path / "wheel")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "callqueue"), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    for absent in ("moto", "pytest", "chalice"):
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", f"import {absent}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode != 0, f"{absent} is installed without being asked for"
    helped = command("--help")
    assert helped.returncode == 0 and "plan" in helped.stdout, helped.stderr
    generated = command("generate", "csv", "50", "--out", "calls.csv")
    assert generated.returncode == 0, generated.stderr
    planned = command("plan", "calls.csv", "--json")
    assert planned.returncode == 0, planned.stderr
    assert "Traceback" not in planned.stderr
    assert '"rows": 50' in planned.stdout
