"""The YAML of a source or destination cell: parsing, validation, canonical form.

A cell's YAML holds only the user's choices (connector, config, upstream
settings, stream settings); discovered schemas are cached elsewhere.  Panels
edit a ``DIConfig`` and write ``dump()`` back into the cell, so the canonical
form is stable: fixed key order, defaults left out.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from ..block_kind import BlockKind
from ..connectors._shared import column_types
from ..connectors.base import DELETE_MODES, NULL_CURSOR_MODES, REPLICATION_METHODS, UNIQUE_CONFLICT_METHODS, StreamSettings
from ..connectors.catalog import STREAM_KEYS
from ..errors import ConfigError
from . import safe_yaml

LIST_KEYS = ("columns", "bookmark_properties", "key_properties", "unique_constraints")
BOOL_KEYS = ("selected", "run_in_parallel", "auto_add_new_fields", "append_only", "validate_records")
CHOICE_KEYS = {
    "replication_method": REPLICATION_METHODS,
    "unique_conflict_method": UNIQUE_CONFLICT_METHODS,
    "delete_mode": DELETE_MODES,
    "null_cursor": NULL_CURSOR_MODES,
}


def did_you_mean(key: Any, allowed: list[str] | tuple[str, ...] | set[str]) -> str:
    """The fix for an unknown key: the closest allowed one, else the list (every YAML level says the same)."""
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    return f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(sorted(allowed))}."


def exact_choice(key: str, value: Any, *, block: str, stream: str) -> str:
    """An enum setting written exactly as its values are (``INCREMENTAL``, ``soft``).

    Why no silent normalising: the same YAML also reaches Singer catalogs and other tools, where
    ``incremental`` is not ``INCREMENTAL``; the panel writes the exact value, and a hand-written
    one in another case gets the exact spelling to use.
    """
    choices = CHOICE_KEYS[key]
    text = str(value)
    if text in choices:
        return text
    same = [c for c in choices if c.lower() == text.lower()]
    if same:
        raise ConfigError(
            f"{key} {text!r} must be written {same[0]}.", block=block or None, stream=stream, fix=f"write `{key}: {same[0]}`."
        )
    close = difflib.get_close_matches(text.upper() if choices[0].isupper() else text.lower(), list(choices), n=1)
    raise ConfigError(
        f"{key} {text!r} is not one of {', '.join(choices)}.",
        block=block or None,
        stream=stream,
        fix=f"did you mean {close[0]}?" if close else f"write one of {', '.join(choices)}.",
    )


@dataclass
class UpstreamSettings:
    """The spec's three upstream options for one upstream block."""

    use_output_as_input: bool = True
    use_catalog_as_input: bool = False
    only_as_input: bool = False

    def non_default(self) -> dict[str, bool]:
        default = UpstreamSettings()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}


def declared_bookmark_properties(connector: str | None, stream: str) -> list[str]:
    """The bookmark properties source ``connector`` declares for ``stream`` (``Source.default_bookmark_properties``);
    [] for none, or when the connector is not known here (that error comes when the block runs)."""
    if not connector:
        return []
    from ..connectors import registry

    try:
        return list(registry.source_class(connector).default_bookmark_properties(stream))
    except Exception:  # an unknown or broken connector: reported with its own message when the block runs
        return []


def stream_settings(name: str, given: Mapping[str, Any], *, block: str, connector: str | None = None) -> StreamSettings:
    """Typed settings of one stream from what a cell (or a source's catalog entry) says about it.

    The one place defaults are applied: a stream with keys upserts on them, whatever its replication
    method (a FULL_TABLE load too ends with one row per key: the last one, or the first with IGNORE).
    """
    raw = {k: v for k, v in given.items() if k != "selected"}
    try:
        settings = StreamSettings(stream=name, **raw)
    except TypeError as exc:
        raise ConfigError(f"bad stream settings: {exc}", block=block or None, stream=name) from None
    if settings.key_properties and not settings.unique_constraints:
        settings.unique_constraints = list(settings.key_properties)
    if settings.column_types:  # Python blocks' settings come here unchecked: the types reach DDL
        settings.column_types = column_types.check_setting(settings.column_types, block=block or None, stream=name)
    check_null_cursor(settings.null_cursor, block=block, stream=name)
    if settings.replication_method == "INCREMENTAL" and not settings.bookmark_properties:
        settings.bookmark_properties = declared_bookmark_properties(connector, name)
    return settings


def check_null_cursor(value: Any, *, block: str, stream: str) -> None:
    if value not in NULL_CURSOR_MODES:
        raise ConfigError(
            f"null_cursor {value!r} is not one of {', '.join(NULL_CURSOR_MODES)}.",
            block=block or None,
            stream=stream,
            fix="use null_cursor: report (default), resync or ignore.",
        )


MAX_PARTITIONS = 64


def check_partitions(value: Any, *, block: str, stream: str) -> int | str | None:
    """The ``partitions`` stream setting: a whole number from 1 to 64, or ``auto``."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARTITIONS:
        raise ConfigError(
            f"partitions must be a whole number from 1 to {MAX_PARTITIONS} or auto, not {value!r}.",
            block=block or None,
            stream=stream,
            fix="write partitions: auto (one part per 64 MB of table, at most one per core) or a number such as partitions: 4.",
        )
    return value


def check_name(name: Any, what: str, *, block: str, stream: str | None = None) -> None:
    """A stream or table name must be printable text: a lone surrogate or a NUL cannot be written to a
    terminal, a file name or a database identifier (it failed at the run's summary, after the writes)."""
    text = str(name)
    bad = "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text) or not text.strip() or len(text) > 1000
    if bad:
        shown = text[:40].encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise ConfigError(
            f"{what} {shown!r} is not usable: it must be non-empty text without NUL or lone surrogate characters (at most 1000).",
            block=block,
            stream=stream,
            fix="rename it.",
        )


def parse_upstream_settings(raw: Any, *, block: str) -> dict[str, UpstreamSettings]:
    """``{upstream name: {option: bool}}`` (YAML ``upstream:`` or a Python cell's ``upstream``)."""
    if not isinstance(raw, dict):
        raise ConfigError("`upstream` must map upstream block names to their settings.", block=block)
    upstream = {}
    for name, opts in raw.items():
        opts = opts or {}
        if not isinstance(opts, dict):
            raise ConfigError(f"upstream settings for {name!r} must be a mapping.", block=block)
        options = [f.name for f in fields(UpstreamSettings)]
        unknown = sorted(str(k) for k in set(opts) - set(options))
        if unknown:
            raise ConfigError(
                f"unknown upstream setting(s) {', '.join(unknown)} for {name!r}.", block=block, fix=did_you_mean(unknown[0], options)
            )
        for key, value in opts.items():
            if not isinstance(value, bool):
                raise ConfigError(
                    f"upstream setting {key} for {name!r} must be true or false, not {value!r}.",
                    block=block,
                    fix=f"write {key}: true or {key}: false (unquoted).",
                )
        upstream[str(name)] = UpstreamSettings(**opts)
    return upstream


@dataclass
class DIConfig:
    kind: BlockKind  # a source or a destination
    connector: str
    config: dict[str, Any] = field(default_factory=dict)
    upstream: dict[str, UpstreamSettings] = field(default_factory=dict)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- parsing ------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, *, kind: BlockKind | str, block: str) -> DIConfig:
        kind = BlockKind(kind)
        data = safe_yaml.load_cell(text, block=block) if text.strip() else {}
        if not isinstance(data, dict):
            raise ConfigError("the cell's YAML must be a mapping with keys like `" + kind + ":` and `config:`.", block=block)
        allowed = {kind, "config", "upstream", "streams"}
        for key in data:
            if key not in allowed:
                raise ConfigError(f"unknown key {key!r} in the cell.", block=block, fix=did_you_mean(key, allowed))
        connector = data.get(kind)
        if not connector or not isinstance(connector, str):
            raise ConfigError(
                "the cell does not say which connector to use.",
                block=block,
                fix=f"add a line `{kind}: postgresql` (`jupyter-di connectors` lists them).",
            )
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError("`config:` must be a mapping of settings.", block=block)
        upstream = parse_upstream_settings(data.get("upstream") or {}, block=block)
        streams: dict[str, dict[str, Any]] = {}
        raw_streams = data.get("streams") or {}
        if isinstance(raw_streams, list):
            raw_streams = {str(s): {} for s in raw_streams}
        if not isinstance(raw_streams, dict):
            raise ConfigError("`streams:` must map stream names to their settings.", block=block)
        for name, settings in raw_streams.items():
            check_name(name, "stream name", block=block)
            streams[str(name)] = validate_stream_settings(settings or {}, block=block, stream=str(name), kind=kind, connector=connector)
        return cls(kind=kind, connector=connector, config=config, upstream=upstream, streams=streams)

    # -- queries --------------------------------------------------------------------------
    def upstream_settings(self, name: str) -> UpstreamSettings:
        return self.upstream.get(name, UpstreamSettings())

    def selected_streams(self) -> list[str]:
        return [name for name, s in self.streams.items() if s.get("selected", True)]

    def stream_settings(self, name: str) -> StreamSettings:
        return stream_settings(name, self.streams.get(name, {}), block="", connector=self.connector)

    # -- canonical form -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.kind.value: self.connector, "config": dict(self.config)}
        ups = {name: s.non_default() for name, s in self.upstream.items() if s.non_default()}
        if ups:
            data["upstream"] = ups
        data["streams"] = {name: canonical_stream(s) for name, s in self.streams.items()}
        return data

    def dump(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def validate_stream_settings(
    settings: Any, *, block: str, stream: str, kind: BlockKind = BlockKind.SOURCE, connector: str | None = None
) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise ConfigError("stream settings must be a mapping.", block=block, stream=stream)
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in STREAM_KEYS:
            raise ConfigError(f"unknown stream setting {key!r}.", block=block, stream=stream, fix=did_you_mean(key, STREAM_KEYS))
        if key in LIST_KEYS:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key} must be a list of column names.", block=block, stream=stream)
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false, not {value!r}.", block=block, stream=stream)
        elif key in CHOICE_KEYS:
            value = exact_choice(key, value, block=block, stream=stream)
        elif key == "partitions":
            value = check_partitions(value, block=block, stream=stream)
        elif key == "column_types":
            if kind != BlockKind.DESTINATION:
                raise ConfigError(
                    "column_types is a destination setting (the types of the table's columns).",
                    block=block,
                    stream=stream,
                    fix="move column_types to the stream's settings in the destination block.",
                )
            value = column_types.check_setting(value, block=block or None, stream=stream)
        elif key == "destination_table" and value is not None:
            if not isinstance(value, str):
                raise ConfigError("destination_table must be a table name.", block=block, stream=stream)
            check_name(value, "destination_table", block=block, stream=stream)
        out[key] = value
    if (
        kind == BlockKind.SOURCE
        and out.get("replication_method") == "INCREMENTAL"
        and not out.get("bookmark_properties")
        and not declared_bookmark_properties(connector, stream)
    ):
        raise ConfigError(
            "an INCREMENTAL stream needs bookmark_properties.",
            block=block,
            stream=stream,
            fix="add `bookmark_properties: [updated_at]` (a column that grows with every change).",
        )
    return out


def canonical_stream(settings: dict[str, Any]) -> dict[str, Any]:
    defaults = StreamSettings(stream="")
    out = {}
    for key in STREAM_KEYS:
        if key not in settings:
            continue
        value = settings[key]
        if key == "selected" and value is True:
            continue
        if key != "selected" and key != "columns" and value == getattr(defaults, key, object()):
            continue
        out[key] = value
    return out


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, flow style for short lists of names."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (str, int, float, bool)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=False if data else True)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if "{{" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)
