"""The shape of the code, kept by tests: imports point one way (app -> downstream -> chalicelib;
callqueue, the command and the local runtime, may use all three), no two modules import each other
through any path, chalicelib's pure core imports no AWS or Twilio client, the sinks and routes
take adapters rather than AWS clients, and every exception the project defines derives from one
root, CallqueueError."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.errors import CallqueueError

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("chalicelib", "downstream", "callqueue")
# What each top-level part may import of the project.
MAY_IMPORT = {
    "app": {"app", "chalicelib", "downstream"},
    "chalicelib": {"chalicelib"},
    "downstream": {"downstream", "chalicelib"},
    "callqueue": {"callqueue", "chalicelib", "downstream", "app"},
}
PROJECT = set(MAY_IMPORT)
CORE = "chalicelib.core"
# Third-party clients that make the core impure: it computes, it does not call out.
CLIENTS = ("boto3", "botocore", "twilio", "requests", "urllib3", "mypy_boto3")
# Exceptions that must derive from something else, and why.
ROOT_EXEMPT = {
    # Chalice turns its view errors into HTTP answers: the API's 413 must be one.
    "chalicelib.api.request_bodies.PayloadTooLargeError",
    # Escapes `except Exception` on purpose, as a Lambda dying would.
    "callqueue.local.lambdas.SimulatedCrash",
    # The same, for an invocation that ran past its timeout (a SimulatedCrash).
    "callqueue.local.invocation_deadline.InvocationTimedOut",
}


def modules() -> dict[str, Path]:
    found = {"app": REPO / "app.py"}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, name: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """What a module imports, as module names (a `from package import module` names the module),
    with the line; imports made only for type checking are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else base), node.lineno


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        edges[name] = {
            target
            for target, _ in imports_of(path, name, known)
            if target in known and target != name
        }
    return edges


def test_imports_point_one_way() -> None:
    found = modules()
    known = set(found)
    wrong = []
    for name, path in sorted(found.items()):
        top = name.split(".")[0]
        for target, line in imports_of(path, name, known):
            other = target.split(".")[0]
            if other in PROJECT and other not in MAY_IMPORT[top]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_no_client_and_nothing_outside_the_core() -> None:
    found = modules()
    known = set(found)
    core = {n: p for n, p in found.items() if n == CORE or n.startswith(CORE + ".")}
    assert core, "chalicelib.core is missing"
    allowed = {"chalicelib.errors", "chalicelib.config"}
    wrong = []
    for name, path in sorted(core.items()):
        for target, line in imports_of(path, name, known):
            inside = target == CORE or target.startswith(CORE + ".") or target in allowed
            if target.split(".")[0] in CLIENTS or (target.startswith("chalicelib") and not inside):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_through_others() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in sorted(edges[node]):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not cycles, cycles


def test_sinks_and_routes_take_adapters_not_aws_clients() -> None:
    """downstream/ and the REST API reach AWS through chalicelib.aws's adapters: not even a
    type-only import of a client (which would mean one is passed in)."""
    wrong = []
    for name, path in sorted(modules().items()):
        if not (name.startswith("downstream") or name.startswith("chalicelib.api")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            roots = {i.split(".")[0] for i in imported}
            if roots & {"boto3", "botocore"} or any(r.startswith("mypy_boto3") for r in roots):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports {imported}")
    assert not wrong, "\n".join(wrong)


def project_exceptions() -> Iterator[type[BaseException]]:
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            module = importlib.import_module(info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == module.__name__:
                    yield value


def test_every_project_exception_derives_from_callqueue_error() -> None:
    found = list(project_exceptions())
    assert len(found) > 10
    stray = [
        f"{e.__module__}.{e.__qualname__}"
        for e in found
        if not issubclass(e, CallqueueError)
        and f"{e.__module__}.{e.__qualname__}" not in ROOT_EXEMPT
    ]
    assert not stray, stray


@pytest.mark.parametrize("name", sorted(ROOT_EXEMPT))
def test_each_exemption_from_the_error_root_still_exists(name: str) -> None:
    module, _, qualname = name.rpartition(".")
    assert inspect.isclass(getattr(importlib.import_module(module), qualname))
