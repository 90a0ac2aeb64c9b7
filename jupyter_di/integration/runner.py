"""Running source and destination blocks: read streams, export streams.

A source block reads each selected stream from its bookmark, spills the
batches to disk and outputs the spec's ``{stream, columns, rows}`` shape
(lazy).  A destination block exports every upstream that is not input-only,
committing each source stream's bookmark state with its rows.  Streams marked
``run_in_parallel`` run concurrently (bounded pool), the others one after
another.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import pyarrow as pa

from ..connectors import registry
from ..connectors._shared import column_types
from ..connectors.base import FULL_TABLE, INCREMENTAL, LOG_BASED, BinaryCopy, Destination, ReadRequest, StreamSettings, check_table_name
from ..connectors.catalog import catalog_entry_for_arrow, find_stream, stream_ids
from ..errors import BlockFailed, ConfigError, DIError, UpstreamFailed
from ..redaction import Redactor, block_secrets, redact_exception
from ..state.store import destination_state_key, state_key
from ..sync.bookmarks import validate_bookmark
from ..sync.engine import pass_copy, write_stream
from ..sync.live_spill import LiveSpill
from ..sync.prefetch import prefetched
from ..sync.spill import spill
from .committed_state import appends, catch_up, stamped
from .context import BlockCell, RunContext
from .incremental import check_override, cursor_warnings, with_discovered_keys
from .inputs import IncomingStream, LiveInputStream, streams_from_output
from .outputs import LiveSourceOutput, PassedThrough, StreamOutput, source_output
from .pass_through import PASSED, READ_FAILED, Handoff, HandoffGroup, handoff_of, release, takes_binary_copy
from .resolve import resolve
from .resolved import ResolvedBlock, stream_settings


@dataclass
class BlockResult:
    output: Any
    summary: dict[str, Any] = field(default_factory=dict)
    pending_states: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(stream, state) to save when the pipeline run succeeds (source read only by Python blocks)."""
    resolved: ResolvedBlock | None = None
    """What the block resolved to (connector, rendered config, streams), for panels: resolving a
    Python block again would run its decorated functions, and their side effects, twice."""


def block_redactor(resolved: ResolvedBlock) -> Redactor:
    """The block's secrets (secret config fields, {{ secret() }} values) masked, and remembered for
    every message of this process (redaction.py): driver errors quote the host, user or connection
    string they were given, and a block's errors travel far from the block."""
    try:
        secret_fields = registry.get(resolved.connector).secret_fields()
    except DIError:
        secret_fields = []
    return Redactor(block_secrets(resolved.config, secret_fields, resolved.secrets_used))


def redact(text: str, resolved: ResolvedBlock) -> str:
    """A message without the block's secrets (the shared mask, ``redaction.MASK``)."""
    return block_redactor(resolved)(text)


def check_streams_exist(missing: list[str], *, block: str) -> None:
    if missing:
        raise ConfigError(
            f"the source has no stream {missing[0]!r}"
            + (f" (nor {', '.join(repr(m) for m in missing[1:])})" if len(missing) > 1 else "")
            + ".",
            block=block,
            stream=missing[0],
            fix="check the names under `streams:` (`jupyter-di connectors` and the panel's stream list show what the source has).",
        )


def run_streams(settings: list[StreamSettings], work: Callable[[StreamSettings], Any], max_parallel: int) -> dict[str, Any]:
    """Run ``work`` per stream: parallel ones concurrently, the rest in order, in one pool."""
    parallel = [s for s in settings if s.run_in_parallel]
    serial = [s for s in settings if not s.run_in_parallel]
    results: dict[str, Any] = {}
    if not parallel:
        for s in serial:
            results[s.stream] = work(s)
        return results

    def serial_chain() -> dict[str, Any]:
        return {s.stream: work(s) for s in serial}

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(parallel) + 1)), thread_name_prefix="jupyter-di-stream") as pool:
        futures = [pool.submit(work, s) for s in parallel]
        chain = pool.submit(serial_chain) if serial else None
        errors: list[BaseException] = []
        for s, fut in zip(parallel, futures):
            try:
                results[s.stream] = fut.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below after all streams end
                errors.append(exc)
        if chain is not None:
            try:
                results.update(chain.result())
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise errors[0]
    ordered = {s.stream: results[s.stream] for s in settings if s.stream in results}
    return ordered


# -- sources ----------------------------------------------------------------------------------
def run_source(block: BlockCell, outputs: dict[str, Any], ctx: RunContext) -> BlockResult:
    resolved = resolve(block, outputs, ctx)
    block_redactor(resolved)  # its secrets are masked in every message from here on (discovery's too)
    source_cls = registry.source_class(resolved.connector)
    names = resolved.stream_order
    catalog = dict(resolved.catalog) if resolved.catalog is not None else None
    if not names:
        with source_cls(resolved.config_dict()) as source:
            catalog = source.discover(None)
        names = stream_ids(catalog)
        resolved = resolved.with_streams(names)
        if not names:
            raise ConfigError(
                "the source has no streams to read.",
                block=block.name,
                fix="check the config (database, schema, folder) or list streams under `streams:`.",
            )
    elif catalog is None and len(names) > 1:
        # every listed stream must exist before the first is read: a destination streaming from this block
        # would otherwise write the known ones and then fail (one stream alone fails before any row moves)
        with source_cls(resolved.config_dict()) as source:
            missing = source.missing_streams(list(names))
        check_streams_exist(missing, block=block.name)
    all_settings = [resolved.settings_for(n) for n in names]
    log_based = next((s for s in all_settings if s.replication_method == LOG_BASED), None)
    if log_based is not None and not source_cls.log_based:
        raise ConfigError(
            f"source {resolved.connector!r} cannot read a stream by log (LOG_BASED).",
            block=block.name,
            stream=log_based.stream,
            fix="use INCREMENTAL with a bookmark column, or FULL_TABLE; LOG_BASED reads PostgreSQL tables (source: postgresql).",
        )
    unnamed = next((s for s in all_settings if s.replication_method in (INCREMENTAL, LOG_BASED)), None) if not ctx.identified else None
    if unnamed is not None:
        raise ConfigError(
            "this kernel cannot tell which notebook it runs, so an INCREMENTAL stream has no name to keep its bookmark under "
            "(it would share it with every other unnamed notebook).",
            block=block.name,
            stream=unnamed.stream,
            fix='name the pipeline: `%config JupyterDI.pipeline_name = "my_pipeline"` after `%load_ext jupyter_di` '
            "(or set the environment variable JUPYTER_DI_PIPELINE); FULL_TABLE streams run without one.",
        )
    run_dir = ctx.work_dir / block.name / uuid.uuid4().hex[:8]

    def stream_info(settings: StreamSettings, schema: pa.Schema) -> dict[str, Any]:
        entry = find_stream(catalog, settings.stream) if catalog else None
        info = dict(entry) if entry else catalog_entry_for_arrow(settings.stream, schema, settings.key_properties)
        info.update(
            stream=settings.stream,
            tap_stream_id=settings.stream,
            replication_method=settings.replication_method,
            key_properties=settings.key_properties,
            bookmark_properties=settings.bookmark_properties,
            unique_constraints=settings.unique_constraints,
            unique_conflict_method=settings.unique_conflict_method,
            run_in_parallel=settings.run_in_parallel,
            auto_add_new_fields=settings.auto_add_new_fields,
            delete_mode=settings.delete_mode,
        )
        if settings.destination_table:
            info["destination_table"] = settings.destination_table
        return info

    unknown = sorted(stream for (b, stream) in ctx.bookmark_overrides if b == block.name and stream not in names)
    if unknown:
        raise ConfigError(
            f"a bookmark override names stream {unknown[0]!r}, which this block does not read.",
            block=block.name,
            stream=unknown[0],
            fix=f"use one of: {', '.join(names)}.",
        )

    def open_copy(settings: StreamSettings, live: LiveSpill) -> BinaryCopy | None:
        """A FULL_TABLE stream's read as binary COPY data, on the thread of the block it is offered to."""
        request = ReadRequest(settings=settings, batch_size=ctx.batch_size, state_key=state_key(ctx.pipeline, block.name, settings.stream))
        try:
            with source_cls(resolved.config_dict()) as source:
                copy = source.binary_copy(request)
        except BaseException as exc:
            redact_exception(exc, block_redactor(resolved))
            raise
        if copy is not None:
            live.begin(copy.schema, stream_info(settings, copy.schema))
        return copy

    lives: dict[str, LiveSpill] = {}
    handoffs = HandoffGroup(block.name)
    if ctx.publish is not None:
        lives = {s.stream: LiveSpill(s.stream, {"pipeline": ctx.pipeline, "block": block.name, "stream": s.stream}) for s in all_settings}
        reader_block = ctx.pass_through.get(block.name)
        for s in all_settings if reader_block else []:
            if s.replication_method == FULL_TABLE and (block.name, s.stream) not in ctx.bookmark_overrides:
                lives[s.stream].handoff = handoffs.offer(s.stream, str(reader_block), functools.partial(open_copy, s, lives[s.stream]))
        ctx.publish(block.name, LiveSourceOutput(block.name, list(lives.values())))

    def read_one(settings: StreamSettings) -> StreamOutput | Handoff:
        stream = settings.stream
        key = (block.name, stream)
        live = lives.get(stream)
        if live is not None and live.handoff is not None and not live.handoff.final:
            return live.handoff  # its reader block reads it (pass_through.py); settled below
        bookmark = source_state = None
        typed_by_user = overridden = key in ctx.bookmark_overrides
        if settings.replication_method in (INCREMENTAL, LOG_BASED):
            saved = ctx.state.get(ctx.pipeline, block.name, stream) or {}
            bookmark, typed_by_user = saved.get("bookmark"), bool(saved.get("pinned"))
            source_state = saved.get("source_state")
        if overridden:
            bookmark, typed_by_user = check_override(ctx.bookmark_overrides[key], settings, block=block.name), True
        origin: dict[str, Any] = live.origin if live is not None else {"pipeline": ctx.pipeline, "block": block.name, "stream": stream}
        origin["override"] = overridden  # set before a destination streaming from this one reads it
        origin.update(bookmark_start=bookmark, bookmark_from_user=typed_by_user)
        try:
            with source_cls(resolved.config_dict()) as source:
                entry = None
                if settings.replication_method == INCREMENTAL and (not settings.key_properties or (bookmark and typed_by_user)):
                    entry = find_stream(catalog, stream) if catalog else find_stream(source.discover([stream]), stream)
                if settings.replication_method == INCREMENTAL and not settings.key_properties:
                    settings = with_discovered_keys(settings, entry, block=block.name)
                if bookmark and typed_by_user:
                    bookmark = validate_bookmark(entry, bookmark, block=block.name, stream=stream)
                request = ReadRequest(
                    settings=settings,
                    bookmark=bookmark,
                    batch_size=ctx.batch_size,
                    source_state=source_state,
                    bookmark_from_user=typed_by_user,
                    state_key=state_key(ctx.pipeline, block.name, stream),
                )
                reader = source.read(request)
                if settings.partitions not in (None, 1) and source.unsplit_reason:
                    request.stats.setdefault("notes", []).append(f"partitions: {source.unsplit_reason}.")
                settings = with_reported_keys(settings, request, catalog)
                info = stream_info(settings, reader.schema)
                if live is not None:
                    live.begin(reader.schema, info)
                with prefetched(reader) as ahead:
                    result = spill(
                        ahead,
                        run_dir / f"{uuid.uuid4().hex[:8]}.arrow",
                        settings,
                        lambda rows, secs: ctx.progress(block.name, stream, "read", rows, secs),
                        live=live,
                    )
        except BaseException as exc:
            reading_failed(exc, stream)
        origin.update(
            batch_states=result.batch_states,
            final_state=result.final_state,
            seconds=result.seconds,
            warnings=cursor_warnings(settings, entry, result.null_cursor_rows, request, reader.schema),
        )
        return StreamOutput(info, result.path, result.schema, result.rows, origin=origin)

    def reading_failed(exc: BaseException, stream: str) -> NoReturn:
        """A read's error, secrets masked, naming this block and the stream; its readers stop."""
        redact_exception(exc, block_redactor(resolved))  # before a streaming destination sees it
        live = lives.get(stream)
        if live is not None:
            live.fail(exc)
        if isinstance(exc, DIError):
            raise exc.with_context(block=block.name, stream=stream) from exc.__cause__
        if isinstance(exc, Exception):  # a driver's own error: keep it, but say where it happened
            raise BlockFailed(redact(f"reading failed: {type(exc).__name__}: {exc}", resolved), block=block.name, stream=stream) from exc
        raise exc

    def settle(handoff: Handoff) -> StreamOutput:
        """An offered stream once its reader is done with it: passed through, or read here as usual."""
        settings = next(s for s in all_settings if s.stream == handoff.stream)
        if handoff.state == READ_FAILED:
            reading_failed(handoff.error or BlockFailed("the read stopped"), handoff.stream)
        if handoff.state != PASSED:  # read it here as usual (its reader, if still running, tails the spill)
            return cast(StreamOutput, read_one(settings))
        live = lives[handoff.stream]
        live.finish()
        rows = handoff.rows or 0
        ctx.progress(block.name, handoff.stream, "read", rows, handoff.seconds)
        origin = dict(live.origin, seconds=handoff.seconds, pass_through=handoff.reader)
        return PassedThrough(dict(live.info or {}), live.schema or pa.schema([]), rows, reader=handoff.reader, origin=origin)

    try:
        streams = run_streams(all_settings, read_one, ctx.max_parallel_streams)
        for handoff in handoffs.settled():
            streams[handoff.stream] = settle(handoff)
    except BaseException as exc:
        handoffs.withdraw()
        for live in lives.values():
            live.fail(exc)  # streams not started yet: their readers must not wait forever
        raise
    outs = [cast(StreamOutput, streams[s.stream]) for s in all_settings]
    summary: dict[str, Any] = {"streams": {o.name: stream_summary(o) for o in outs}}
    warnings = [w for o in outs for w in o.origin.get("warnings", [])]
    if warnings:
        summary["warnings"] = warnings
    # a one-run override reads from a bookmark the user typed: what it reads must not move the saved one
    pending = [(o.name, o.origin["final_state"]) for o in outs if o.origin.get("final_state") and not o.origin.get("override")]
    return BlockResult(output=source_output(outs), summary=summary, pending_states=pending, resolved=resolved)


def stream_summary(out: StreamOutput) -> dict[str, Any]:
    """A source stream's line in its block's summary (and in the run report)."""
    summary: dict[str, Any] = {"rows": out.num_rows, "seconds": round(out.origin["seconds"], 3)}
    if out.origin.get("pass_through"):
        summary["pass_through"] = out.origin["pass_through"]  # written by that block straight from the source
    return summary


def with_reported_keys(settings: StreamSettings, request: ReadRequest, catalog: Mapping[str, Any] | None) -> StreamSettings:
    """A stream the cell gives no key_properties takes the ones the source reported while reading
    (a Singer tap's SCHEMA, ``stats["key_properties"]``) or the catalog's: its destinations then keep
    one row per key, whatever the replication method."""
    if settings.key_properties:
        return settings
    keys = list(request.stats.get("key_properties") or [])
    if not keys and catalog:
        keys = list((find_stream(catalog, settings.stream) or {}).get("key_properties") or [])
    if not keys:
        return settings
    return dataclasses.replace(settings, key_properties=keys, unique_constraints=list(settings.unique_constraints or keys))


# -- destinations -----------------------------------------------------------------------------
def project(reader: pa.RecordBatchReader, columns: list[str] | None) -> pa.RecordBatchReader:
    """Only ``columns`` of every batch (the destination stream's column choice); keys stay first-class."""
    if columns is None:
        return reader
    schema = pa.schema([reader.schema.field(c) for c in columns])
    return pa.RecordBatchReader.from_batches(schema, (batch.select(columns) for batch in reader))


def destination_settings(stream: IncomingStream, raw: Mapping[str, Any], *, block: str) -> StreamSettings:
    """The source stream's settings, overridden by the destination's own.

    Unique constraints given at the destination without a replication method
    mean upsert (INCREMENTAL): replacing the table would make them pointless.
    """
    info = stream.stream_info or {}
    merged: dict[str, Any] = {}
    for key in (
        "replication_method",
        "key_properties",
        "bookmark_properties",
        "unique_constraints",
        "unique_conflict_method",
        "auto_add_new_fields",
        "destination_table",
        "delete_mode",
    ):
        if info.get(key) not in (None, []):
            merged[key] = info[key]
    merged.update(raw)
    if raw.get("unique_constraints") and "replication_method" not in raw:
        merged["replication_method"] = INCREMENTAL
    if "columns" not in raw:
        merged.pop("columns", None)
    settings = stream_settings(stream.name, merged, block=block)
    check_table_name(settings.table_name, stream=stream.name, block=block)
    return settings


def check_type_overrides(
    destination_cls: type[Destination], resolved: ResolvedBlock, settings: list[StreamSettings], *, block: str
) -> None:
    """Every stream's ``column_types`` is one the destination takes and its engine parses, before any
    stream is written (a bad type in the second stream must not leave the first one written)."""
    overridden = [s for s in settings if s.column_types]
    if not overridden:
        return
    if not destination_cls.takes_column_types:
        raise ConfigError(
            f"destination {resolved.connector!r} does not take column_types (it chooses its columns' types itself).",
            block=block,
            stream=overridden[0].stream,
            fix="remove column_types; the SQL destinations (duckdb, sqlite, postgresql, trino) take it.",
        )
    try:
        with destination_cls(resolved.config_dict()) as destination:
            for s in overridden:
                destination.check_column_types(s.column_types, stream=s.stream)
    except DIError as exc:
        raise redact_exception(exc, block_redactor(resolved)).with_context(block=block) from exc.__cause__


def run_destination(block: BlockCell, outputs: dict[str, Any], ctx: RunContext) -> BlockResult:
    try:
        return _run_destination(block, outputs, ctx)
    finally:
        release(outputs, block.name)  # streams offered to it that it did not pass through: their source reads them


def _run_destination(block: BlockCell, outputs: dict[str, Any], ctx: RunContext) -> BlockResult:
    resolved: ResolvedBlock = resolve(block, outputs, ctx)
    block_redactor(resolved)  # its secrets are masked in every message from here on
    destination_cls = registry.destination_class(resolved.connector)
    incoming: dict[str, IncomingStream] = {}
    for name in block.upstream:
        if resolved.upstream[name].only_as_input:
            ctx.decline(name, None, block.name)
            continue
        for stream in streams_from_output(name, outputs.get(name)):
            if stream.name in resolved.excluded or (resolved.only is not None and stream.name not in resolved.only):
                ctx.decline(name, stream.name, block.name)
                release({name: outputs.get(name)}, block.name, stream.name)
                continue
            if stream.name in incoming:
                raise ConfigError(
                    f"two upstream blocks both provide a stream named {stream.name!r}.",
                    block=block.name,
                    stream=stream.name,
                    fix="rename one of them, or mark one only_as_input.",
                )
            incoming[stream.name] = stream
    for name in resolved.given:
        if name not in incoming:
            raise ConfigError(
                f"stream {name!r} is configured but no upstream block provides it (got: {', '.join(incoming) or 'none'}).",
                block=block.name,
                stream=name,
                fix="fix the stream name, or add the block that outputs it with --upstream.",
            )

    def settings_for(name: str) -> StreamSettings:
        """The stream's final settings (waits for a running source to open the stream)."""
        s = destination_settings(incoming[name], resolved.given.get(name, {}), block=block.name)
        if s.columns is not None:
            unknown = [c for c in s.columns if c not in incoming[name].schema.names]
            if unknown:
                raise ConfigError(
                    f"columns {', '.join(repr(c) for c in unknown)} are not in the stream (it has: {', '.join(incoming[name].schema.names)}).",
                    block=block.name,
                    stream=name,
                    fix="fix `columns:` in the destination's stream settings.",
                )
        written = s.columns if s.columns is not None else incoming[name].schema.names
        column_types.check_columns(s.column_types, written, block=block.name, stream=name)
        keys = [c for c in s.unique_constraints if c not in written]
        if keys:
            raise ConfigError(
                f"unique_constraints {', '.join(repr(c) for c in keys)} are not columns written to the table (it gets: {', '.join(written)}).",
                block=block.name,
                stream=name,
                fix="set unique_constraints to the columns that identify a row, or add them to `columns:`.",
            )
        return s

    for name in incoming:  # table names every stream will get, before anything is written
        check_table_name(resolved.given.get(name, {}).get("destination_table") or name, stream=name, block=block.name)
    # Streams already complete are checked before anything is written; a running source's streams
    # when their turn comes (their own settings are checked now, their schema is not known yet).
    live = {n for n, s in incoming.items() if isinstance(s, LiveInputStream)}
    settings = [resolved.settings_for(n) if n in live else settings_for(n) for n in incoming]
    check_type_overrides(destination_cls, resolved, settings, block=block.name)

    def take(stream: IncomingStream) -> tuple[Handoff | None, BinaryCopy | None]:
        """A stream offered to this block to pass through, opened (None: it comes through Arrow)."""
        handoff = handoff_of(stream, block.name)
        if handoff is None:
            return None, None
        if not takes_binary_copy(destination_cls):
            handoff.decline()
            return None, None
        try:
            copy = handoff.take()
        except BaseException as exc:  # the source's read: its block fails with it
            raise UpstreamFailed(stream.origin.get("block") or "?", stream=stream.name) from exc
        return (handoff, copy) if copy is not None else (None, None)

    def write_one(stream_settings: StreamSettings) -> dict[str, Any]:
        handoff, copy = take(incoming[stream_settings.stream])
        try:
            return write_taken(stream_settings, handoff, copy)
        except BaseException as exc:
            if handoff is None or copy is None:
                raise
            copy.close()
            if handoff.error is not None:  # the source's read failed inside the COPY: its block reports it
                handoff.read_failed(handoff.error)
                raise UpstreamFailed(handoff.source, stream=stream_settings.stream) from exc
            handoff.write_failed()  # rolled back; the source block reads the stream as usual
            raise

    def write_taken(stream_settings: StreamSettings, handoff: Handoff | None, copy: BinaryCopy | None) -> dict[str, Any]:
        stream = incoming[stream_settings.stream]
        if stream_settings.stream in live:
            stream_settings = settings_for(stream_settings.stream)
        origin = stream.origin
        key: str | None = None
        epoch: str | None = None
        save: Callable[[dict[str, Any]], None] | None = None
        if origin.get("block"):
            src_block, src_stream = origin["block"], origin["stream"]
            if not origin.get("override"):  # a one-run override's bookmarks are never saved (nor committed)
                key = destination_state_key(origin["pipeline"], src_block, src_stream, block.name)
                epoch = ctx.state.epoch(origin["pipeline"], src_block, src_stream)

                def save_consumer_state(state: dict[str, Any]) -> None:
                    if not state.get("bookmark") and state.get("source_state") is None:
                        return
                    ctx.state.commit_consumer(
                        origin["pipeline"],
                        src_block,
                        src_stream,
                        consumer=block.name,
                        bookmark=state.get("bookmark"),
                        consumers=ctx.consumers_of(src_block, src_stream) or [block.name],
                        columns=stream.schema.names,
                        source_state=state.get("source_state"),
                    )

                save = save_consumer_state
            previous = (ctx.state.get(origin["pipeline"], src_block, src_stream) or {}).get("columns") or []
            dropped = [c for c in previous if c not in stream.schema.names]
        else:
            dropped = []

        def progress(rows: int, seconds: float) -> None:
            ctx.progress(block.name, stream_settings.stream, "write", rows, seconds)

        try:
            with destination_cls(resolved.config_dict()) as destination:
                result = None
                if handoff is not None and copy is not None:
                    if stream_settings.columns is None and not dropped:  # else Arrow chooses or drops columns
                        result = pass_copy(destination, stream_settings, copy, state_key=key, on_progress=progress)
                    if result is None:
                        copy.close()
                        handoff.decline()  # the source block reads it as usual; this block tails that
                    else:
                        handoff.passed(copy.rows, result.seconds)
                if result is None:  # the spill: opened only now (a passed-through stream never spills)
                    reader = stream.reader()  # all the stream's columns: the bookmark's too, whatever `columns:` keeps
                    if key is not None and save is not None and appends(stream_settings):  # pinned ones too (epochs)
                        saved = (ctx.state.get(origin["pipeline"], src_block, src_stream) or {}).get("consumers") or {}
                        # a row of the source stream's own key (written before blocks had one each) may be this block's
                        # only when no other block reads the stream nor ever did (the file remembers those)
                        alone = set(ctx.consumers_of(src_block, src_stream) or [block.name]) | set(saved) == {block.name}
                        reader = catch_up(
                            destination,
                            stream_settings,
                            reader,
                            keys=[key, state_key(origin["pipeline"], src_block, src_stream)] if alone else [key],
                            recorded=saved.get(block.name),
                            read_from=origin.get("bookmark_start"),
                            epoch=epoch,
                            save=save,
                        )
                    result = write_stream(
                        destination,
                        stream_settings,
                        project(reader, stream_settings.columns),
                        batch_states=stamped(origin.get("batch_states"), epoch),
                        state_key=key,
                        save_state=save,
                        on_progress=progress,
                        dropped_columns=dropped,
                    )
                # rows a destination could not write without failing the block (Salesforce's rejected rows
                # within max_rejected_rows): listed in the run report, and the run is not complete (exit 3)
                reported = list(destination.report_warnings)
        except DIError as exc:
            raise redact_exception(exc, block_redactor(resolved)).with_context(
                block=block.name, stream=stream_settings.stream
            ) from exc.__cause__
        except Exception as exc:  # a driver's own error: keep it, but say where it happened
            raise BlockFailed(
                redact(f"writing failed: {type(exc).__name__}: {exc}", resolved), block=block.name, stream=stream_settings.stream
            ) from exc
        out: dict[str, Any] = {"rows": result.rows, "table": result.table, "seconds": round(result.seconds, 3)}
        if reported:
            out["warnings"] = [{"stream": stream_settings.stream, **w} for w in reported]
        return out

    written = run_streams(settings, write_one, ctx.max_parallel_streams)
    summary: dict[str, Any] = {"streams": written}
    reported = [w for s in written.values() for w in s.pop("warnings", [])]
    if reported:
        summary["warnings"] = reported
    return BlockResult(output=None, summary=summary, resolved=resolved)
