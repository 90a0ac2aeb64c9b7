"""How block outputs travel between the machine running the notebook and Dask workers.

A source block's output is a set of spilled Arrow files (``integration/outputs.StreamOutput``):
cheap to hand on within one process, but a path means nothing on another machine.  So an output
leaves a worker *packed*, one ``PackedStream`` per stream, in one of three forms:

- ``path``: the spill file is in the run folder every worker shares with the client (the client's
  own run folder, seen by workers on the same machine: a ``LocalCluster``).  Nothing is copied.
- ``url``: the file was copied to ``JupyterDI.spill_url`` (a local path or any fsspec URL:
  ``s3://bucket/prefix``, ``gcs://…``, ``file:///shared/…``): large outputs for workers elsewhere
  go through shared storage, not through the scheduler.
- ``arrow``: the rows themselves, as an Arrow table in the task's result (Dask serializes Arrow
  without copying through pickle).  Small outputs, or when there is no shared location.

Unpacking gives a ``StreamOutput`` again (with the batch states its bookmarks ride on, batch for
batch), so the integration layer runs unchanged on either side.  Other outputs (a Python block's
DataFrame) travel as they are.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..integration.outputs import PassedThrough, SourceOutput, StreamOutput, source_output

INLINE_BYTES = 64 * 1024 * 1024
"""Outputs up to this size on disk move as Arrow inside the task result when no shared folder is seen."""


@dataclass
class PackedStream:
    """One stream of a source output, ready to cross a process boundary."""

    info: dict[str, Any]
    schema: pa.Schema
    rows: int
    origin: dict[str, Any]
    kind: str  # "path" | "url" | "arrow" | "passed"
    payload: Any  # str path, str URL, pa.Table, or the block a passed-through stream went to


@dataclass
class PackedSource:
    """A source block's output: its streams (one stream unpacks to a dict, several to a list)."""

    streams: list[PackedStream]


@dataclass
class Where:
    """What a packing side knows about shared storage."""

    shared_dir: Path | None = None
    """The run folder the client also sees (None: the worker is elsewhere)."""
    spill_url: str | None = None
    inline_bytes: int = INLINE_BYTES
    run_id: str = ""


def pack(output: Any, where: Where) -> Any:
    """An output ready for a task result or a task argument."""
    if isinstance(output, StreamOutput):
        return PackedSource([_pack_stream(output, where)])
    if isinstance(output, SourceOutput) or (isinstance(output, list) and output and all(isinstance(o, StreamOutput) for o in output)):
        return PackedSource([_pack_stream(o, where) for o in output])
    return output


def _pack_stream(out: StreamOutput, where: Where) -> PackedStream:
    path = Path(out._path)
    common: dict[str, Any] = dict(info=dict(out["stream"]), schema=out.schema, rows=out.num_rows, origin=dict(out.origin))
    if isinstance(out, PassedThrough):  # its rows went into a destination; only the count travels
        return PackedStream(kind="passed", payload=out.written_by, **common)
    if where.shared_dir is not None and _inside(path, where.shared_dir):
        return PackedStream(kind="path", payload=str(path), **common)
    size = path.stat().st_size
    if where.spill_url and size > where.inline_bytes:
        url = f"{where.spill_url.rstrip('/')}/{where.run_id}/{uuid.uuid4().hex}.arrow"
        _copy_to(path, url)
        return PackedStream(kind="url", payload=url, **common)
    return PackedStream(kind="arrow", payload=out.to_arrow(), **common)


def unpack(value: Any, work_dir: Path) -> Any:
    """The output a block on this side sees (``StreamOutput``s over local files)."""
    if not isinstance(value, PackedSource):
        return value
    return source_output([_unpack_stream(s, work_dir) for s in value.streams])


def _unpack_stream(packed: PackedStream, work_dir: Path) -> StreamOutput:
    if packed.kind == "passed":
        return PassedThrough(packed.info, packed.schema, packed.rows, reader=packed.payload, origin=dict(packed.origin))
    if packed.kind == "path":
        path = Path(packed.payload)
    else:
        work_dir.mkdir(parents=True, exist_ok=True)
        path = work_dir / f"{uuid.uuid4().hex}.arrow"
        if packed.kind == "url":
            _copy_from(packed.payload, path)
        else:
            _write_table(packed.payload, packed.schema, path)
    return StreamOutput(packed.info, path, packed.schema, packed.rows, origin=dict(packed.origin))


def _write_table(table: pa.Table, schema: pa.Schema, path: Path) -> None:
    """Batch for batch as spilled: the stream's batch states pair with these batches in order."""
    tmp = path.with_suffix(".partial")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in table.to_batches():
            if batch.num_rows:
                writer.write_batch(batch)
    tmp.replace(path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url)


def _copy_to(path: Path, url: str) -> None:
    if _is_local(url):
        target = _local_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return
    import fsspec  # type: ignore[import-untyped]

    with open(path, "rb") as src, fsspec.open(url, "wb") as dst:
        shutil.copyfileobj(src, dst, 4 * 1024 * 1024)


def _copy_from(url: str, path: Path) -> None:
    if _is_local(url):
        shutil.copyfile(_local_path(url), path)
        return
    import fsspec

    with fsspec.open(url, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 4 * 1024 * 1024)


def remove_spilled(spill_url: str | None, run_id: str) -> None:
    """Remove a run's files under ``spill_url`` (the run is over; nothing refers to them)."""
    if not spill_url or not run_id:
        return
    url = f"{spill_url.rstrip('/')}/{run_id}"
    try:
        if _is_local(url):
            shutil.rmtree(_local_path(url), ignore_errors=True)
            return
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
        if fs.exists(root):
            fs.rm(root, recursive=True)
    except Exception:  # noqa: BLE001 - leftovers in the user's bucket are not worth failing a finished run
        pass
