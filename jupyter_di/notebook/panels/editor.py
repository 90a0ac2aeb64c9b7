"""The panel's model: a block's ``DIConfig`` plus the edits the sections make to it.

Why a model without widgets: every section (credentials, streams, columns,
...) changes the configuration through these few methods, each of which ends
in one write-back of the canonical YAML (``DIConfig.dump``).  So the cell is
always the source of truth, the widgets only mirror it, and tests can assert
the YAML an edit produces without a browser.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from ...integration.di_config import DIConfig, UpstreamSettings, canonical_stream, validate_stream_settings
from ...integration.replica import difference, dump_yaml
from ...pipeline.block import Block
from ...secrets import SecretStore
from .writeback import APPLIED, WriteBack

#: Stream settings the streams table and the bulk editor may change.
STREAM_FIELDS = (
    "destination_table",
    "replication_method",
    "unique_conflict_method",
    "run_in_parallel",
    "auto_add_new_fields",
    "bookmark_properties",
    "key_properties",
    "unique_constraints",
)
#: Column marks in the schema properties table and the stream setting each one edits.
COLUMN_MARKS = {"bookmark": "bookmark_properties", "key": "key_properties", "unique": "unique_constraints"}


def secret_name(block: str, field: str) -> str:
    return f"{block}_{field}"


def secret_ref(name: str) -> str:
    return "{{ secret('" + name + "') }}"


@dataclass
class SaveResult:
    status: str  # writeback.APPLIED or writeback.PENDING
    source: str
    warnings: list[str]

    def message(self) -> str:
        text = "Saved into the cell." if self.status == APPLIED else "Saved; re-run this cell to write the change into its YAML."
        if self.warnings:
            text += " Warning: " + " ".join(self.warnings)
        return text


class BlockEditor:
    """Edits one YAML source/destination block and writes each edit back into its cell."""

    def __init__(self, block: Block, cfg: DIConfig, writeback: WriteBack, secrets: SecretStore | None = None) -> None:
        self.block = block
        self.base = block  # what the cell held when the panel was built
        self.cfg = cfg
        self.original: dict[str, Any] | None = None
        """For a replica block: the replicated block's settings; the cell gets only what differs."""
        self.writeback = writeback
        self.secrets = secrets or SecretStore()
        self.last: SaveResult | None = None
        #: Every stream the panel lists (set by the panel from the catalog); see ``_stream``.
        self.known_streams: Callable[[], list[str]] = lambda: list(self.cfg.streams)
        self._listeners: list[Callable[[SaveResult], None]] = []

    # -- plumbing -----------------------------------------------------------------------------
    def on_change(self, fn: Callable[[SaveResult], None]) -> None:
        self._listeners.append(fn)

    def body(self) -> str:
        """The cell's body for the panel's settings: all of them, or a replica's override only."""
        if self.original is None:
            return self.cfg.dump()
        override = difference(self.cfg.to_dict(), self.original)
        return dump_yaml(override) if override else ""

    def source(self) -> str:
        return self.block.magic_line() + "\n" + self.body()

    def current_block(self) -> Block:
        """The block as the panel's edits define it (for test connection, discovery, samples)."""
        return dataclasses.replace(self.block, body=self.body())

    def _save(self, streams: Iterable[str] = ()) -> SaveResult:
        warnings = []
        for name in streams:
            if name in self.cfg.streams:
                try:
                    validate_stream_settings(
                        self.cfg.streams[name], block=self.block.name, stream=name, kind=self.cfg.kind, connector=self.cfg.connector
                    )
                except ConfigError as exc:
                    warnings.append(str(exc))
        if len(warnings) > 3:
            warnings = warnings[:3] + [f"(and {len(warnings) - 3} more streams)"]
        body = self.body()
        status = self.writeback.save(self.block, body, self.base)
        self.last = SaveResult(status, self.block.magic_line() + "\n" + body, warnings)
        for fn in list(self._listeners):
            fn(self.last)
        return self.last

    # -- credentials --------------------------------------------------------------------------
    def set_config(self, values: dict[str, Any]) -> SaveResult:
        """Set plain config values; ``None`` or "" removes a key (the connector's default applies)."""
        for key, value in values.items():
            if value is None or value == "":
                self.cfg.config.pop(key, None)
            else:
                self.cfg.config[key] = value
        return self._save()

    def set_secret(self, field: str, value: str) -> SaveResult:
        """Store ``value`` outside the notebook; the YAML refers to it by name only."""
        name = secret_name(self.block.name, field)
        self.secrets.set(name, value)
        self.cfg.config[field] = secret_ref(name)
        return self._save()

    # -- upstream -----------------------------------------------------------------------------
    def set_upstream(self, name: str, **options: bool) -> SaveResult:
        current = self.cfg.upstream.get(name, UpstreamSettings())
        self.cfg.upstream[name] = dataclasses.replace(current, **options)
        if not self.cfg.upstream[name].non_default():
            del self.cfg.upstream[name]
        return self._save()

    # -- streams ------------------------------------------------------------------------------
    def is_selected(self, stream: str) -> bool:
        if not self.cfg.streams:
            return True  # no streams listed: the block reads every stream
        settings = self.cfg.streams.get(stream)
        return settings is not None and settings.get("selected", True)

    def select(self, streams: Iterable[str], selected: bool, known: Iterable[str]) -> SaveResult:
        """Select or unselect streams; ``known`` is every stream the panel lists.

        Unselecting a stream with settings keeps them as ``selected: false``;
        one without settings just leaves the list.  Unselecting from the
        implicit "all streams" first lists them all.
        """
        streams = list(streams)
        if not selected and not self.cfg.streams:
            self.cfg.streams = {n: {} for n in known}
        for name in streams:
            settings = self.cfg.streams.get(name)
            if selected:
                if settings is None:
                    self.cfg.streams[name] = {}
                else:
                    settings.pop("selected", None)
            elif settings is not None:
                if canonical_stream({k: v for k, v in settings.items() if k != "selected"}):
                    settings["selected"] = False
                else:
                    del self.cfg.streams[name]
        result = self._save()
        if not self.cfg.selected_streams():
            result.warnings.append("no stream is selected, so the block reads every stream.")
        return result

    def _stream(self, name: str) -> dict[str, Any]:
        """The settings of ``name`` to edit, without changing which streams are selected.

        With no streams listed (read all), listing one would select only it, so
        all known streams get listed first; a stream not in a non-empty list is
        unselected, so it is added as ``selected: false``.
        """
        if name not in self.cfg.streams:
            if not self.cfg.streams:
                self.cfg.streams = {n: {} for n in self.known_streams()}
                self.cfg.streams.setdefault(name, {})
            else:
                self.cfg.streams[name] = {"selected": False}
        return self.cfg.streams[name]

    def set_stream_fields(self, streams: Iterable[str], changes: dict[str, Any]) -> SaveResult:
        """Bulk edit: the same settings on many streams at once (one write-back)."""
        unknown = set(changes) - set(STREAM_FIELDS)
        if unknown:
            raise ValueError(f"not a stream setting: {', '.join(sorted(unknown))}")
        names = list(streams)
        for name in names:
            settings = self._stream(name)
            for key, value in changes.items():
                if value is None or value == "" or value == []:
                    settings.pop(key, None)
                else:
                    settings[key] = list(value) if isinstance(value, (list, tuple)) else value
        return self._save(names)

    # -- schema properties --------------------------------------------------------------------
    def included_columns(self, stream: str, all_columns: list[str]) -> list[str]:
        chosen = self.cfg.streams.get(stream, {}).get("columns")
        return list(all_columns) if chosen is None else [c for c in chosen]

    def set_columns(self, stream: str, columns: Iterable[str], changes: dict[str, bool], all_columns: list[str]) -> SaveResult:
        """Bulk edit columns of one stream: ``include`` and the bookmark/key/unique marks.

        ``columns:`` is written only when some column is left out (omitted = all).
        """
        columns = list(columns)
        settings = self._stream(stream)
        if "include" in changes:
            current = self.included_columns(stream, all_columns)
            if changes["include"]:
                wanted = set(current) | set(columns)
            else:
                wanted = set(current) - set(columns)
            order = list(all_columns) + [c for c in current if c not in all_columns]
            new = [c for c in order if c in wanted]
            if all_columns and set(all_columns) <= set(new):
                settings.pop("columns", None)
            else:
                settings["columns"] = new
        for mark, key in COLUMN_MARKS.items():
            if mark not in changes:
                continue
            values = list(settings.get(key) or [])
            if changes[mark]:
                values += [c for c in columns if c not in values]
            else:
                values = [c for c in values if c not in columns]
            if values:
                settings[key] = values
            else:
                settings.pop(key, None)
        return self._save([stream])

    def set_column_types(self, stream: str, columns: Iterable[str], type_text: str) -> SaveResult:
        """A destination type override for columns of one stream (``column_types:``); "" removes it.
        A type that is not a type name is still written, with the warning the run would fail with."""
        settings = self._stream(stream)
        types = dict(settings.get("column_types") or {})
        text = " ".join(type_text.split())
        for name in columns:
            if text:
                types[name] = text
            else:
                types.pop(name, None)
        if types:
            settings["column_types"] = types
        else:
            settings.pop("column_types", None)
        return self._save([stream])

    def snapshot(self) -> DIConfig:
        return copy.deepcopy(self.cfg)
