"""What a source or destination cell resolves to: one complete, immutable, typed value.

Why: resolving a cell (parse the YAML or run the Python decorators, render the
templates, check the config) and running it are two steps.  The runner gets a
``ResolvedBlock`` and never looks at the cell text again; the panels show the
same value.  YAML and Python cells are two front ends of the same resolution
(``resolve.py``).  Stream settings are typed once, here, with their defaults
(a stream's ``unique_constraints`` default to its keys) — nothing
downstream re-derives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ..block_kind import BlockKind
from ..connectors.base import StreamSettings
from .di_config import UpstreamSettings, stream_settings


@dataclass(frozen=True)
class ResolvedBlock:
    """A source or destination block, ready to run."""

    name: str
    kind: BlockKind
    connector: str
    config: Mapping[str, Any]
    """The rendered config, checked against the connector's fields (read-only)."""
    given: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per stream the cell configures, in the cell's order: what it says (validated, without
    ``selected``).  A destination's own settings override the source's only where given."""
    upstream: Mapping[str, UpstreamSettings] = field(default_factory=dict)
    catalog: Mapping[str, Any] | None = None
    secrets_used: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()
    """Streams the cell leaves out (``selected: false``)."""
    only: frozenset[str] | None = None
    """A destination exports only these incoming streams (Python ``@data_integration_selected_streams``)."""

    @classmethod
    def make(cls, **values: Any) -> ResolvedBlock:
        """Freeze what the front ends collected (dicts and lists become read-only views and tuples)."""
        given = {str(n): MappingProxyType(dict(s)) for n, s in (values.pop("given", None) or {}).items()}
        only = values.pop("only", None)
        return cls(
            kind=BlockKind(values.pop("kind")),
            config=MappingProxyType(dict(values.pop("config") or {})),
            given=MappingProxyType(given),
            upstream=MappingProxyType(dict(values.pop("upstream", None) or {})),
            secrets_used=tuple(values.pop("secrets_used", None) or ()),
            excluded=frozenset(values.pop("excluded", None) or ()),
            only=frozenset(only) if only is not None else None,
            **values,
        )

    @property
    def stream_order(self) -> list[str]:
        """The streams the cell names, in its order (empty: every stream the source discovers)."""
        return list(self.given)

    @property
    def streams(self) -> tuple[StreamSettings, ...]:
        """Typed settings of the streams the cell names."""
        return tuple(self.settings_for(n) for n in self.given)

    def settings_for(self, name: str) -> StreamSettings:
        """Typed settings of one stream (defaults for a stream the cell does not name)."""
        return stream_settings(name, self.given.get(name, {}), block=self.name, connector=self.connector)

    def with_streams(self, names: list[str]) -> ResolvedBlock:
        """The same block reading ``names`` (discovered) with default settings."""
        return replace(self, given=MappingProxyType({n: MappingProxyType({}) for n in names}))

    def config_dict(self) -> dict[str, Any]:
        """A private, mutable copy of the config for a connector."""
        return dict(self.config)
