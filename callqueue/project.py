"""Where the Chalice project is (app.py, chalicelib/, downstream/, .chalice/, requirements.txt):
the checkout `callqueue` runs from, or the copy an installed `callqueue` carries in
`callqueue/_app/` (see setup.py). Only `callqueue` is installed as a top-level package; the
project's own packages are imported from here, so a user's Chalice app with its own
`chalicelib` is not shadowed by ours in the same environment."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _project_dir() -> Path:
    checkout = HERE.parent
    if (checkout / "app.py").is_file() and (checkout / ".chalice").is_dir():
        return checkout
    return HERE / "_app"


PROJECT_DIR = _project_dir()


def make_importable() -> None:
    """Let `import chalicelib` / `downstream` / `app` find the project's code. Appended, not
    prepended: the checkout a developer runs from (the working directory) keeps precedence."""
    path = str(PROJECT_DIR)
    if path not in sys.path:
        sys.path.append(path)
