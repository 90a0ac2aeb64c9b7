"""What a panel needs from its kernel session, and the connector actions its buttons start.

Why in one place: the sections only know a ``PanelContext``; they never reach
into the session, so tests and benchmarks build panels from a bare
``Pipeline``.  The actions (test connection, discover, sample) resolve the
block as the panel's edits define it, exactly as a run would (interpolation,
secrets, upstream outputs), and remember the secret values they rendered so
an error text can mask them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ...block_kind import BlockKind
from ...connectors import registry
from ...connectors.base import ReadRequest
from ...errors import ConfigError
from ...integration.context import RunContext
from ...integration.inputs import catalog_for_output, streams_from_output
from ...integration.resolve import resolve
from ...integration.resolved import ResolvedBlock
from ...integration.runner import destination_settings
from ...integration.schema_conflicts import StreamConflicts, compare
from ...pipeline.block import Block
from ...pipeline.pipeline import Pipeline
from ...secrets import SecretStore
from .catalog_cache import CatalogCache
from .editor import BlockEditor
from .writeback import WriteBack


@dataclass
class PanelContext:
    pipeline: Pipeline
    writeback: WriteBack
    catalogs: CatalogCache
    secrets: SecretStore = field(default_factory=SecretStore)
    sample_rows: int = 20
    secret_values: set[str] = field(default_factory=set)

    # -- resolving ----------------------------------------------------------------------------
    def run_context(self) -> RunContext:
        p = self.pipeline
        return RunContext(
            pipeline=p.name, state=p.state, work_dir=p.work_dir, variables=p.variables({}), namespace=p.namespace, secrets=self.secrets
        )

    def resolve(self, block: Block) -> ResolvedBlock:
        block = self.pipeline.effective(block)  # a replica resolves its original's body, merged
        cached = self.pipeline.resolved.get(block.name)
        if block.lang == "python" and cached is not None and cached[0] == block.source_hash():
            resolved = cached[1]  # what the run resolved: decorated functions do not run twice
        else:
            outputs = {u: self.pipeline.outputs[u] for u in block.upstream if u in self.pipeline.outputs}
            resolved = resolve(block, outputs, self.run_context())
        self.secret_values.update(str(v) for v in resolved.secrets_used)
        spec = registry.get(resolved.connector)
        for name in spec.secret_fields():
            value = resolved.config.get(name)
            if isinstance(value, str) and value:
                self.secret_values.add(value)
        return resolved

    def upstream_kind(self, name: str) -> str:
        block = self.pipeline.graph.blocks.get(name)
        return block.kind if block is not None else "unknown"

    # -- catalogs -----------------------------------------------------------------------------
    def cached_catalog(self, editor: BlockEditor) -> dict[str, Any] | None:
        if editor.cfg.kind == BlockKind.DESTINATION:
            return self.upstream_catalog(editor)
        entry = self.catalogs.get(self.pipeline.name, editor.block.name, editor.cfg.connector)
        if entry:
            return entry["catalog"]
        return self.last_run_catalog(editor.block.name)

    def last_run_catalog(self, name: str) -> dict[str, Any] | None:
        """The catalog the block's last run read (its output's streams), before any Discover:
        after a run the panel shows the columns being synced, not "(not in catalog)" (issue 21)."""
        output = self.pipeline.outputs.get(name)
        if output is None:
            return None
        try:
            return catalog_for_output(name, output)
        except ConfigError:
            return None

    def upstream_catalog(self, editor: BlockEditor) -> dict[str, Any] | None:
        """A destination's streams: the catalogs of the upstream outputs it exports."""
        streams: list[dict[str, Any]] = []
        seen = False
        for name in editor.block.upstream:
            if editor.cfg.upstream_settings(name).only_as_input or name not in self.pipeline.outputs:
                continue
            seen = True
            try:
                streams += catalog_for_output(name, self.pipeline.outputs[name]).get("streams", [])
            except ConfigError:
                continue  # an output that cannot be exported has no catalog; the run says why
        return {"streams": streams} if seen else None

    # -- actions (run on the panel's worker thread) ---------------------------------------------
    def schema_conflicts(self, editor: BlockEditor) -> list[StreamConflicts]:
        """A destination's streams (its upstream outputs, with the settings a run would merge) against
        the tables they write (``integration/schema_conflicts.py``)."""
        block = editor.current_block()
        resolved = self.resolve(block)
        found: list[StreamConflicts] = []
        with registry.destination_class(resolved.connector)(resolved.config_dict()) as destination:
            for name in block.upstream:
                if name not in self.pipeline.outputs or editor.cfg.upstream_settings(name).only_as_input:
                    continue
                for incoming in streams_from_output(name, self.pipeline.outputs[name]):
                    if incoming.name in resolved.excluded or (resolved.only is not None and incoming.name not in resolved.only):
                        continue
                    settings = destination_settings(incoming, resolved.given.get(incoming.name, {}), block=block.name)
                    names = settings.columns if settings.columns is not None else incoming.schema.names
                    schema = pa.schema([incoming.schema.field(c) for c in names if c in incoming.schema.names])
                    origin = incoming.origin
                    previous: list[str] = []
                    if origin.get("block"):
                        saved = self.pipeline.state.get(origin["pipeline"], origin["block"], origin["stream"]) or {}
                        previous = [c for c in saved.get("columns") or [] if c not in incoming.schema.names]
                    found.append(compare(destination, resolved.connector, settings, schema, previous))
        if not found:
            raise ConfigError(
                "no upstream block has output yet, so there are no streams to compare.",
                block=block.name,
                fix="run the upstream blocks (or this cell) first.",
            )
        return found

    def test_connection(self, editor: BlockEditor) -> str:
        resolved = self.resolve(editor.current_block())
        cls = (
            registry.source_class(resolved.connector)
            if resolved.kind == BlockKind.SOURCE
            else registry.destination_class(resolved.connector)
        )
        with cls(resolved.config_dict()) as connector:
            connector.check()
        return f"Connection to {resolved.connector} works."

    def discover(self, editor: BlockEditor) -> dict[str, Any]:
        if editor.cfg.kind == BlockKind.DESTINATION:
            catalog = self.upstream_catalog(editor)
            if catalog is None:
                raise ConfigError(
                    "no upstream block has output yet.", block=editor.block.name, fix="run the upstream blocks (or this cell) first."
                )
            return catalog
        resolved = self.resolve(editor.current_block())
        with registry.source_class(resolved.connector)(resolved.config_dict()) as source:
            catalog = source.discover(None)
        self.catalogs.put(self.pipeline.name, editor.block.name, resolved.connector, catalog)
        return catalog

    def sample(self, editor: BlockEditor, stream: str, limit: int) -> Any:
        """The first ``limit`` rows of ``stream`` as a pandas DataFrame."""
        if editor.cfg.kind == BlockKind.DESTINATION:
            for name in editor.block.upstream:
                if name in self.pipeline.outputs and not editor.cfg.upstream_settings(name).only_as_input:
                    for incoming in streams_from_output(name, self.pipeline.outputs[name]):
                        if incoming.name == stream:
                            return _head(incoming.reader(), limit)
            raise ConfigError(
                f"no upstream output provides stream {stream!r} yet.",
                block=editor.block.name,
                stream=stream,
                fix="run the upstream blocks first.",
            )
        resolved = self.resolve(editor.current_block())
        settings = editor.cfg.stream_settings(stream)
        with registry.source_class(resolved.connector)(resolved.config_dict()) as source:
            return _head(source.read(ReadRequest(settings=settings, limit=limit, batch_size=max(limit, 1))), limit)


def _head(reader: pa.RecordBatchReader, limit: int) -> Any:
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, limit)
    return table.to_pandas()
