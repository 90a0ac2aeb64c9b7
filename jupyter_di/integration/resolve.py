"""From a source/destination cell to a connector name, a rendered config and stream settings.

YAML cells are parsed and their templates rendered; Python cells run their
decorated functions.  Both end in the same ``ResolvedBlock``, so the runner
does not care which language the cell was written in.
"""

from __future__ import annotations

from typing import Any

from ..block_kind import BlockKind
from ..connectors import registry
from ..connectors.catalog import entries_by_id, stream_is_selected, stream_settings_from_catalog
from ..errors import ConfigError, DIError
from .context import BlockCell, RunContext
from .di_config import DIConfig, UpstreamSettings
from .inputs import apply_upstream_settings
from .interpolation import Interpolator
from .resolved import ResolvedBlock


def upstream_settings_for(block: BlockCell, cfg: DIConfig | None) -> dict[str, UpstreamSettings]:
    return {name: (cfg.upstream_settings(name) if cfg else UpstreamSettings()) for name in block.upstream}


def block_inputs(block: BlockCell, settings: dict[str, UpstreamSettings], outputs: dict[str, Any]) -> dict[str, Any]:
    """Upstream outputs that are inputs, by name: data, catalog, or a (data, catalog) tuple."""
    names, values = apply_upstream_settings(block.upstream, [outputs.get(n) for n in block.upstream], settings)
    return dict(zip(names, values))


def discover_catalog(connector: str, config: dict[str, Any], streams: list[str] | None) -> dict[str, Any]:
    source_cls = registry.source_class(connector)
    with source_cls(config) as source:
        return source.discover(streams)


def resolve(block: BlockCell, outputs: dict[str, Any], ctx: RunContext) -> ResolvedBlock:
    """The cell as a ``ResolvedBlock``: the YAML front end, or the Python decorators' one."""
    kind = block.kind
    if block.lang == "python":
        from .python_di import run_python_di_block  # only Python cells need the decorators

        upstream = upstream_settings_for(block, None)
        inputs = block_inputs(block, upstream, outputs)
        result = run_python_di_block(
            block.body,
            block=block.name,
            kind=kind,
            inputs=list(inputs.values()),
            input_names=list(inputs),
            variables=ctx.variables,
            base_namespace=ctx.namespace,
            discover=discover_catalog,
        )
        streams: dict[str, dict[str, Any]] = {}
        entries = entries_by_id(result.catalog)
        for name in result.selected_streams:
            streams[name] = stream_settings_from_catalog(entries.get(name, {}))
        excluded: set[str] = set()
        only = None
        if kind == BlockKind.DESTINATION:
            excluded = {name for name, entry in entries.items() if not stream_is_selected(entry)}
            for name, entry in entries.items():
                if name not in streams and name not in excluded:
                    streams[name] = stream_settings_from_catalog(entry)
            only = set(result.selected_streams) if result.chose_streams else None
        return ResolvedBlock.make(
            name=block.name,
            kind=kind,
            connector=result.connector,
            config=checked_config(result.connector, result.config, block.name),
            given=streams,
            upstream=result.upstream or upstream,
            catalog=result.catalog,
            excluded=excluded,
            only=only,
        )

    cfg = DIConfig.parse(block.body, kind=kind, block=block.name)
    for name in cfg.upstream:
        if name not in block.upstream:
            raise ConfigError(
                f"`upstream:` names {name!r}, which is not an upstream block.",
                block=block.name,
                fix=f"add it with --upstream {name}, or remove it from `upstream:`.",
            )
    upstream = upstream_settings_for(block, cfg)
    inputs = block_inputs(block, upstream, outputs)
    interpolator = Interpolator(variables=ctx.variables, inputs=inputs, upstream=block.upstream, secrets=ctx.secrets)
    try:
        config = interpolator.render(cfg.config)
    except DIError as exc:
        raise exc.with_context(block=block.name) from exc.__cause__  # the same error, its cause kept
    streams = {name: {k: v for k, v in s.items() if k != "selected"} for name, s in cfg.streams.items() if s.get("selected", True)}
    excluded = {name for name, s in cfg.streams.items() if not s.get("selected", True)}
    return ResolvedBlock.make(
        name=block.name,
        kind=kind,
        connector=cfg.connector,
        config=checked_config(cfg.connector, config, block.name),
        given=streams,
        upstream=upstream,
        secrets_used=interpolator.used_secrets,
        excluded=excluded,
    )


def checked_config(connector: str, config: Any, block: str) -> dict[str, Any]:
    """The rendered config checked against the connector's fields, before anything connects."""
    from ..connectors.config_check import check_config

    try:
        return check_config(registry.get(connector), config, block=block)
    except DIError as exc:
        raise exc.with_context(block=block) from exc.__cause__  # the same error, its cause kept
