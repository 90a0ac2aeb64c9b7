"""The layering rule of docs/architecture.md, checked on the source: a layer imports only layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jupyter_di"

# each layer may import itself and what is listed for it
ALLOWED = {
    "notebook": {"pipeline", "integration", "sync", "connectors", "state", "shared"},
    "cli": {"pipeline", "integration", "sync", "connectors", "state", "shared"},
    "pipeline": {"integration", "sync", "connectors", "state", "shared"},
    "integration": {"sync", "connectors", "state", "shared"},
    "sync": {"connectors", "state", "shared"},
    "connectors": {"shared"},
    "state": {"shared"},
    "shared": {"shared"},
}
FRONT_END_ONLY = {"IPython", "ipywidgets", "anywidget", "ipykernel", "comm"}


def layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) == 1:
        return "cli" if rel.name == "cli.py" else "shared"
    return rel.parts[0]


def imported_layers(path: Path) -> tuple[set[str], set[str]]:
    """(jupyter_di layers imported, top-level third-party packages imported) by one module."""
    tree = ast.parse(path.read_text("utf-8"))
    layers, packages = set(), set()
    package_parts = path.relative_to(PACKAGE).parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                packages.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
                if not target:
                    names = [a.name for a in node.names]
                    layers.update("shared" if f"{n}.py" in {p.name for p in PACKAGE.glob("*.py")} else n for n in names)
                else:
                    first = target[0]
                    layers.add(first if (PACKAGE / first).is_dir() else ("cli" if first == "cli" else "shared"))
            elif node.module:
                packages.add(node.module.split(".")[0])
    return layers, packages


def test_every_module_imports_only_layers_below_it():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "labextension" in path.parts or path == PACKAGE / "__init__.py":
            continue  # the package's __init__ only holds the IPython/JupyterLab entry-point hooks
        layer = layer_of(path)
        layers, packages = imported_layers(path)
        for imported in layers - {layer} - ALLOWED[layer]:
            problems.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {imported}")
        if layer not in ("notebook",):
            for pkg in packages & FRONT_END_ONLY:
                problems.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {pkg}")
    assert problems == []


CONNECTORS = PACKAGE / "connectors"
SHARED = "_shared"


def absolute_imports(path: Path) -> set[str]:
    """The dotted names a module imports (``from . import x`` counts as ``package.x``)."""
    package = ["jupyter_di", *path.relative_to(PACKAGE).parts[:-1]]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def connector_packages() -> set[str]:
    return {p.name for p in CONNECTORS.iterdir() if (p / "__init__.py").is_file() and p.name != SHARED}


def test_a_connector_package_imports_no_other_connector_package():
    """A connector folder uses only the top-level modules of jupyter_di.connectors (base, registry,
    catalog, config_check) and the private _shared package, so a new connector is one folder copied;
    _shared, the top-level modules and the layers above reach a system only through the registry."""
    systems = connector_packages()
    assert {"postgres", "duckdb", "sqlite", "files", "http_api", "singer"} <= systems
    problems = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "labextension" in path.parts:
            continue
        rel = path.relative_to(PACKAGE)
        own = rel.parts[1] if rel.parts[0] == "connectors" and len(rel.parts) > 2 else None
        for name in sorted(absolute_imports(path)):
            parts = name.split(".")
            if parts[:2] != ["jupyter_di", "connectors"] or len(parts) < 3:
                continue
            if parts[2] in systems and parts[2] != own:
                problems.add(f"{rel} imports {'.'.join(parts[:3])}")
    assert sorted(problems) == []


def test_only_the_shared_modules_stay_at_the_top_of_connectors():
    top = {p.name for p in CONNECTORS.glob("*.py")}
    assert top == {"__init__.py", "base.py", "registry.py", "catalog.py", "config_check.py"}
