"""The deployment package: Chalice ships app.py, chalicelib/ and vendor/, so downstream/ must reach
the zip through the link vendor/downstream -> ../downstream."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.deployment import project_copy, render_example_policies

REPO = Path(__file__).resolve().parents[2]


def test_vendor_link_points_at_downstream() -> None:
    link = REPO / "vendor" / "downstream"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "downstream").resolve()


def test_deployment_package_contains_app_chalicelib_and_downstream(tmp_path: Path) -> None:
    out = tmp_path / "package"
    # A copy: the stage's policies (rendered by `callqueue infra deploy`) are an example stack's.
    project = project_copy(tmp_path / "project")
    render_example_policies(project, "dev")
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
    assert "app.py" in names
    assert "chalicelib/intake/splitter.py" in names
    assert "downstream/__init__.py" in names
    assert any(n.startswith("twilio/") for n in names)
    # Nothing of the local runtime or the tests is deployed.
    assert not any(n.startswith(("callqueue/", "tests/")) for n in names)
