"""The connector registry: built-ins without scanning entry points, third-party ones through them."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import ConnectorSpec
from jupyter_di.errors import ConnectorNotFound

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "jupyter_di" / "connectors"


def test_builtin_table_matches_the_declared_entry_points() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][registry.ENTRY_POINT_GROUP]
    assert {name: target.split(":")[0] for name, target in declared.items()} == registry.BUILTIN
    assert all(target.endswith(":SPEC") for target in declared.values())


def test_every_connector_package_is_a_builtin_whose_init_exposes_its_spec() -> None:
    packages = {p.name for p in CONNECTORS.iterdir() if (p / "__init__.py").is_file() and p.name != "_shared"}
    assert {module.rsplit(".", 1)[1] for module in registry.BUILTIN.values()} == packages
    for name, module in registry.BUILTIN.items():
        spec = importlib.import_module(module).SPEC
        assert isinstance(spec, ConnectorSpec) and spec.name == name


def test_builtin_lookup_does_not_read_package_metadata() -> None:
    code = (
        "import sys\n"
        "from jupyter_di.connectors import registry\n"
        "spec = registry.get('sqlite')\n"
        "print(spec.name, 'importlib.metadata' in sys.modules, registry._entry_points.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["sqlite", "False", "0"]


def test_names_list_builtins_and_unknown_names_get_suggestions() -> None:
    assert set(registry.BUILTIN) <= set(registry.names())
    with pytest.raises(ConnectorNotFound) as err:
        registry.get("postgres")
    assert "Did you mean 'postgresql'" in str(err.value)
