"""Connector lookup by name, fed by the ``jupyter_di.connectors`` entry point group.

Why entry points: a third-party package adds a connector by declaring
``[project.entry-points."jupyter_di.connectors"] name = "pkg.module:SPEC"``
where ``SPEC`` is a ``ConnectorSpec``; nothing in jupyter-di has to change.

The built-in connectors are also declared there (so ``entry_points`` lists
them all), but are looked up here first: scanning every installed
distribution's metadata costs 15-35 ms of each CLI run, and a built-in name
always means the built-in connector.
"""

from __future__ import annotations

import difflib
import importlib
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ConnectorNotFound
from .base import ConnectorSpec, Destination, Source

if TYPE_CHECKING:  # importlib.metadata costs a built-in lookup time: imported only when scanning
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "jupyter_di.connectors"

BUILTIN = {
    "postgresql": "jupyter_di.connectors.postgres",
    "duckdb": "jupyter_di.connectors.duckdb",
    "sqlite": "jupyter_di.connectors.sqlite",
    "files": "jupyter_di.connectors.files",
    "http_api": "jupyter_di.connectors.http_api",
    "singer": "jupyter_di.connectors.singer",
    "stripe": "jupyter_di.connectors.stripe",
    "trino": "jupyter_di.connectors.trino",
    "salesforce": "jupyter_di.connectors.salesforce",
}
"""Built-in connector name -> module holding its ``SPEC`` (the same as pyproject's entry points)."""


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN}


_loaded: dict[str, ConnectorSpec] = {}


def register(spec: ConnectorSpec) -> None:
    """Register a connector at run time (tests, notebooks); overrides entry points."""
    _loaded[spec.name] = spec


def names() -> list[str]:
    return sorted(set(BUILTIN) | set(_entry_points()) | set(_loaded))


def get(name: str) -> ConnectorSpec:
    """The spec registered under ``name``, or one clear error with suggestions."""
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        spec: ConnectorSpec = importlib.import_module(BUILTIN[name]).SPEC
        _loaded[name] = spec
        return spec
    ep = _entry_points().get(name)
    if ep is None:
        close = difflib.get_close_matches(name or "", names(), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConnectorNotFound(
            f"no connector named {name!r}.{hint}",
            fix=f"use one of: {', '.join(names())} (`jupyter-di connectors` lists them).",
        )
    spec = ep.load()
    if not isinstance(spec, ConnectorSpec):
        raise ConnectorNotFound(f"entry point {name!r} does not point at a ConnectorSpec")
    _loaded[name] = spec
    return spec


def source_class(name: str) -> type[Source]:
    spec = get(name)
    if spec.source is None:
        raise ConnectorNotFound(f"connector {name!r} cannot be a source", fix="pick a connector that reads data.")
    return spec.source


def destination_class(name: str) -> type[Destination]:
    spec = get(name)
    if spec.destination is None:
        raise ConnectorNotFound(f"connector {name!r} cannot be a destination", fix="pick a connector that writes data.")
    return spec.destination
