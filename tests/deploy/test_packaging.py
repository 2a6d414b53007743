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
    assert "app.py" in names
    assert "chalicelib/intake/splitter.py" in names
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
