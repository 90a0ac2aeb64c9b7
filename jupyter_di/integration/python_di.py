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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .python_block import call_with_upstream, execute_cell_code

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


def select_catalog(catalog: dict[str, Any], streams: list[str] | None) -> dict[str, Any]:
    """Mark ``streams`` (all when None) and every field of them as selected (``select_all``)."""
    for entry in catalog.get("streams", []):
        if streams is not None and entry.get("tap_stream_id") not in streams and entry.get("stream") not in streams:
            continue
        for item in entry.setdefault("metadata", []):
            item.setdefault("metadata", {})["selected"] = True
        if not any(list(i.get("breadcrumb", [])) == [] for i in entry["metadata"]):
            entry["metadata"].insert(0, {"breadcrumb": [], "metadata": {"selected": True}})
    return catalog


def run_python_di_block(
    body: str,
    *,
    block: str,
    kind: str,
    inputs: list[Any],
    input_names: list[str],
    variables: Mapping[str, Any],
    base_namespace: Mapping[str, Any],
    discover: Callable[[str, dict[str, Any], list[str] | None], dict[str, Any]],
) -> PythonDIResult:
    """Run the decorated functions of a ``--lang python`` source/destination cell in spec order.

    ``discover(connector, config, streams)`` returns the connector's catalog (sources only).
    """
    decorators = _Decorators()
    execute_cell_code(body, block=block, base_namespace=base_namespace, extra=decorators.namespace())
    found = decorators.found
    name_kind = f"data_integration_{kind}"
    if name_kind not in found:
        raise ConfigError(f"the cell has no @{name_kind} function.", block=block, fix=f"add a function decorated with @{name_kind} that returns the connector name, e.g. 'postgresql'.")
    if "data_integration_config" not in found:
        raise ConfigError("the cell has no @data_integration_config function.", block=block, fix="add a function decorated with @data_integration_config that returns the config dict.")

    def call(kind_name: str, extra_kwargs: dict[str, Any]) -> Any:
        fn = found[kind_name].fn
        merged = {**variables, **extra_kwargs}
        return call_with_upstream(fn, block=block, upstream=input_names, outputs=inputs, variables=merged)

    connector = call(name_kind, {})
    if not isinstance(connector, str) or not connector:
        raise ConfigError(f"@{name_kind} must return the connector name as a string, not {connector!r}.", block=block)
    config = call("data_integration_config", {kind: connector})
    if not isinstance(config, Mapping):
        raise ConfigError(f"@data_integration_config must return a dict, not {type(config).__name__}.", block=block)
    config = dict(config)
    selected: list[str] = []
    catalog: dict[str, Any] | None = None
    is_source = kind == "source"
    if connector and config:
        registered = found.get("data_integration_selected_streams")
        if registered is not None:
            extra: dict[str, Any] = {kind: connector, "config": config}
            if is_source and registered.called:
                def discover_streams_func(source: str | None = None, config: dict | None = None) -> list[str]:
                    cat = discover(source or connector, config or extra["config"], None)
                    return [s.get("tap_stream_id") or s.get("stream") for s in cat.get("streams", [])]

                extra["discover_streams_func"] = discover_streams_func
                if registered.options.get("discover_streams"):
                    extra["selected_streams"] = discover_streams_func()
            result = call("data_integration_selected_streams", extra)
            if result is not None and (not isinstance(result, (list, tuple)) or not all(isinstance(s, str) for s in result)):
                raise ConfigError("@data_integration_selected_streams must return a list of stream names.", block=block)
            selected = list(result or [])
        registered = found.get("data_integration_catalog")
        if registered is not None:
            extra = {kind: connector, "config": config, "selected_streams": selected}
            if is_source and registered.called:
                def discover_func(source: str | None = None, config: dict | None = None, streams: list[str] | None = None) -> dict[str, Any]:
                    cat = discover(source or connector, config or extra["config"], streams if streams is not None else (selected or None))
                    if registered.options.get("select_all", True):
                        select_catalog(cat, streams if streams is not None else (selected or None))
                    return cat

                extra["discover_func"] = discover_func
                if registered.options.get("discover"):
                    extra["catalog"] = discover_func()
            catalog = call("data_integration_catalog", extra)
            if catalog is not None and (not isinstance(catalog, Mapping) or not isinstance(catalog.get("streams", []), list)):
                raise ConfigError("@data_integration_catalog must return a dict with a 'streams' list.", block=block)
            catalog = dict(catalog) if catalog is not None else None
    if not selected and catalog:
        selected = [s.get("tap_stream_id") or s.get("stream") for s in catalog.get("streams", []) if stream_is_selected(s)]
    return PythonDIResult(connector=connector, config=config, selected_streams=selected, catalog=catalog)


def stream_is_selected(entry: Mapping[str, Any]) -> bool:
    """Spec: streams whose stream-level metadata is missing or has ``selected: true``."""
    for item in entry.get("metadata", []) or []:
        if list(item.get("breadcrumb", [])) == []:
            return bool(item.get("metadata", {}).get("selected", False)) or "selected" not in item.get("metadata", {})
    return True


SETTINGS_KEYS = (
    "replication_method",
    "bookmark_properties",
    "key_properties",
    "unique_constraints",
    "unique_conflict_method",
    "destination_table",
    "run_in_parallel",
    "auto_add_new_fields",
)


def stream_settings_from_catalog(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's stream settings carried on a catalog entry (Mage extension keys + metadata)."""
    settings: dict[str, Any] = {k: entry[k] for k in SETTINGS_KEYS if entry.get(k) not in (None, [])}
    stream_md: dict[str, Any] = {}
    columns: list[str] = []
    any_field_choice = False
    for item in entry.get("metadata", []) or []:
        crumb = list(item.get("breadcrumb", []))
        md = item.get("metadata", {})
        if crumb == []:
            stream_md = md
        elif len(crumb) == 2 and crumb[0] == "properties":
            if "selected" in md:
                any_field_choice = True
            if md.get("inclusion") == "unsupported":
                continue
            if md.get("selected", md.get("selected-by-default", False)) or md.get("inclusion") == "automatic":
                columns.append(crumb[1])
    if "replication_method" not in settings and stream_md.get("replication-method"):
        settings["replication_method"] = stream_md["replication-method"]
    if "bookmark_properties" not in settings and stream_md.get("replication-key"):
        settings["bookmark_properties"] = [stream_md["replication-key"]]
    if "key_properties" not in settings and stream_md.get("table-key-properties"):
        settings["key_properties"] = list(stream_md["table-key-properties"])
    if any_field_choice:
        settings["columns"] = columns
    return settings
