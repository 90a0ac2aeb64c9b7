"""Python-language source and destination blocks: the spec's five decorators.

Order (spec and Mage): the cell's code runs with the decorators defined; then
``@data_integration_source``/``_destination`` gives the connector name;
``@data_integration_config`` the config; then, only when both are truthy,
``@data_integration_selected_streams`` and ``@data_integration_catalog``.
Each function gets exactly the keyword arguments the spec lists for it (plus
runtime variables) and the block's inputs as positional arguments.  The
``discover_*`` helpers are injected only in the called form of a decorator,
as in the spec; ``discover=True`` / ``discover_streams=True`` run discovery up
front.

Upstream settings: a Python cell may define a module-level dict named
``upstream`` with the same per-upstream options as the YAML ``upstream:``
section (``use_output_as_input``, ``use_catalog_as_input``,
``only_as_input``).  ``run_python_di_block`` receives the raw outputs of all
upstream blocks, applies those settings itself (an input is the data, the
catalog, or a ``(data, catalog)`` tuple) and returns them, so the caller can
also honour ``only_as_input`` when exporting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..block_kind import BlockKind
from ..connectors.catalog import entries_by_id, select_catalog, stream_ids, stream_is_selected
from ..errors import ConfigError
from .di_config import UpstreamSettings, parse_upstream_settings
from .inputs import apply_upstream_settings
from .python_block import call_with_upstream, execute_cell_code

UPSTREAM_VARIABLE = "upstream"

DECORATOR_NAMES = (
    "data_integration_source",
    "data_integration_destination",
    "data_integration_config",
    "data_integration_selected_streams",
    "data_integration_catalog",
)


@dataclass
class _Registered:
    fn: Callable[..., Any]
    called: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class _Decorators:
    def __init__(self) -> None:
        self.found: dict[str, _Registered] = {}

    def _plain(self, kind: str) -> Callable[..., Any]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.found.setdefault(kind, _Registered(fn))
            return fn

        return decorator

    def _with_options(self, kind: str, defaults: dict[str, Any]) -> Callable[..., Any]:
        def decorator(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
            unknown = set(options) - set(defaults)
            if unknown:
                raise TypeError(f"@{kind} got unknown argument(s): {', '.join(sorted(unknown))}")
            if callable(fn):
                self.found.setdefault(kind, _Registered(fn, called=False, options=dict(defaults)))
                return fn

            def register(inner: Callable[..., Any]) -> Callable[..., Any]:
                self.found.setdefault(kind, _Registered(inner, called=True, options={**defaults, **options}))
                return inner

            return register

        return decorator

    def namespace(self) -> dict[str, Any]:
        return {
            "data_integration_source": self._plain("data_integration_source"),
            "data_integration_destination": self._plain("data_integration_destination"),
            "data_integration_config": self._plain("data_integration_config"),
            "data_integration_selected_streams": self._with_options("data_integration_selected_streams", {"discover_streams": False}),
            "data_integration_catalog": self._with_options("data_integration_catalog", {"discover": False, "select_all": True}),
        }


@dataclass
class PythonDIResult:
    connector: str
    config: dict[str, Any]
    selected_streams: list[str]
    catalog: dict[str, Any] | None
    upstream: dict[str, UpstreamSettings] = field(default_factory=dict)
    chose_streams: bool = False
    """True when @data_integration_selected_streams returned a list (a destination exports only those)."""


def _cell_upstream_settings(
    namespace: Mapping[str, Any], base_namespace: Mapping[str, Any], *, block: str, names: list[str]
) -> dict[str, UpstreamSettings]:
    """The cell's own ``upstream = {...}`` dict (not a notebook variable of that name)."""
    raw = namespace.get(UPSTREAM_VARIABLE)
    if raw is None or raw is base_namespace.get(UPSTREAM_VARIABLE):
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "`upstream` must be a dict of upstream block name -> settings.",
            block=block,
            fix="e.g. upstream = {'pg_credentials': {'only_as_input': True}}.",
        )
    settings = parse_upstream_settings(dict(raw), block=block)
    for name in settings:
        if name not in names:
            raise ConfigError(
                f"`upstream` names {name!r}, which is not an upstream block.",
                block=block,
                fix=f"add it with --upstream {name}, or remove it from `upstream`.",
            )
    return {name: settings.get(name, UpstreamSettings()) for name in names}


SOURCE_ONLY_OPTIONS = {"discover_streams": False, "discover": False, "select_all": True}


def run_python_di_block(
    body: str,
    *,
    block: str,
    kind: BlockKind | str,
    inputs: list[Any],
    input_names: list[str],
    variables: Mapping[str, Any],
    base_namespace: Mapping[str, Any],
    discover: Callable[[str, dict[str, Any], list[str] | None], dict[str, Any]],
) -> PythonDIResult:
    """Run the decorated functions of a ``--lang python`` source/destination cell in spec order.

    ``inputs``/``input_names`` are the raw outputs of every upstream block, in
    upstream order; the cell's ``upstream`` settings decide which become
    positional arguments and in what form.
    ``discover(connector, config, streams)`` returns the connector's catalog (sources only).
    """
    kind = BlockKind(kind)
    decorators = _Decorators()
    namespace = execute_cell_code(body, block=block, base_namespace=base_namespace, extra=decorators.namespace())
    found = decorators.found
    upstream = _cell_upstream_settings(namespace, base_namespace, block=block, names=list(input_names))
    input_names, inputs = apply_upstream_settings(list(input_names), list(inputs), upstream)
    if kind != BlockKind.SOURCE:
        for kind_name, decorated in found.items():
            wrong = [k for k, default in SOURCE_ONLY_OPTIONS.items() if k in decorated.options and decorated.options[k] != default]
            if wrong:
                raise ConfigError(
                    f"@{kind_name}({wrong[0]}=...) is only available in source blocks.",
                    block=block,
                    fix=f"remove {wrong[0]}= from the decorator of this destination.",
                )
    name_kind = f"data_integration_{kind}"
    if name_kind not in found:
        raise ConfigError(
            f"the cell has no @{name_kind} function.",
            block=block,
            fix=f"add a function decorated with @{name_kind} that returns the connector name, e.g. 'postgresql'.",
        )
    if "data_integration_config" not in found:
        raise ConfigError(
            "the cell has no @data_integration_config function.",
            block=block,
            fix="add a function decorated with @data_integration_config that returns the config dict.",
        )

    def call(kind_name: str, extra_kwargs: dict[str, Any]) -> Any:
        fn = found[kind_name].fn
        merged = {**variables, **extra_kwargs}
        return call_with_upstream(fn, block=block, upstream=input_names, outputs=inputs, variables=merged)

    connector = call(name_kind, {})
    if not isinstance(connector, str) or not connector:
        raise ConfigError(f"@{name_kind} must return the connector name as a string, not {connector!r}.", block=block)
    config = call("data_integration_config", {kind.value: connector})
    if not isinstance(config, Mapping):
        raise ConfigError(f"@data_integration_config must return a dict, not {type(config).__name__}.", block=block)
    config = dict(config)
    selected: list[str] = []
    catalog: dict[str, Any] | None = None
    is_source = kind == BlockKind.SOURCE
    if connector and config:
        registered: _Registered | None = found.get("data_integration_selected_streams")
        if registered is not None:
            extra: dict[str, Any] = {kind.value: connector, "config": config}
            if is_source and registered.called:

                def discover_streams_func(source: str | None = None, config: dict | None = None) -> list[str]:
                    cat = discover(source or connector, config or extra["config"], None)
                    return stream_ids(cat)

                extra["discover_streams_func"] = discover_streams_func
                if registered.options.get("discover_streams"):
                    extra["selected_streams"] = discover_streams_func()
            result = call("data_integration_selected_streams", extra)
            if result is not None and (not isinstance(result, (list, tuple)) or not all(isinstance(s, str) for s in result)):
                raise ConfigError("@data_integration_selected_streams must return a list of stream names.", block=block)
            selected = list(result or [])
        registered = found.get("data_integration_catalog")
        if registered is not None:
            extra = {kind.value: connector, "config": config, "selected_streams": selected}
            if is_source and registered.called:

                def discover_func(
                    source: str | None = None, config: dict | None = None, streams: list[str] | None = None
                ) -> dict[str, Any]:
                    wanted = streams if streams is not None else (selected or None)
                    cat = discover(source or connector, config or extra["config"], wanted)
                    return select_catalog(cat, wanted, selected=bool(registered.options.get("select_all", True)))

                extra["discover_func"] = discover_func
                if registered.options.get("discover"):
                    extra["catalog"] = discover_func()
            catalog = call("data_integration_catalog", extra)
            if catalog is not None and (not isinstance(catalog, Mapping) or not isinstance(catalog.get("streams", []), list)):
                raise ConfigError("@data_integration_catalog must return a dict with a 'streams' list.", block=block)
            catalog = dict(catalog) if catalog is not None else None
    if catalog and catalog.get("streams"):
        selected = _selected_in_catalog(catalog, selected, block=block)
    chose = "data_integration_selected_streams" in found and bool(selected)
    return PythonDIResult(
        connector=connector, config=config, selected_streams=selected, catalog=catalog, upstream=upstream, chose_streams=chose
    )


def _selected_in_catalog(catalog: Mapping[str, Any], selected: list[str], *, block: str) -> list[str]:
    """The streams to sync once a catalog is known: its selected entries.

    Order: ``selected_streams`` order when given (streams it names but the
    catalog lacks are kept, with default settings), else the catalog's order.
    A catalog that selects nothing is an error rather than "sync everything".
    """
    entries = entries_by_id(catalog)
    chosen = [n for n, e in entries.items() if stream_is_selected(e)]
    if selected:
        chosen = [n for n in selected if n not in entries or stream_is_selected(entries[n])]
    if not chosen:
        raise ConfigError(
            "the catalog selects no streams.",
            block=block,
            fix="set metadata selected: true on the stream entries (breadcrumb []) you want, or use select_all=True.",
        )
    return chosen
