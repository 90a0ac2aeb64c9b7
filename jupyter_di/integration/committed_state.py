"""Where a destination already stands for a stream, when the local state file says less.

Why: a transactional destination (PostgreSQL, DuckDB, SQLite) commits its rows and the stream's
state in one transaction, and only then is the state recorded in the local state file
(``.jupyter_di/state.sqlite``).  A run killed between the two leaves the file one commit behind,
and the next run reads that commit's rows again.  Rows upserted on a key (and a LOG_BASED
stream's changes, re-applied in commit order) make that harmless; rows *appended* to a table
without keys would be there twice.  The same holds for a destination whose own progress is ahead
of the stream's bookmark because another destination of the same source lags (the source reads
from the least advanced one).

So for an INCREMENTAL stream written without unique constraints, the destination block asks the
destination for its committed state: as in Singer and Meltano, the destination's committed state
wins when it is ahead of the file.  The file is caught up at once, and the rows of this read
before the destination's bookmark (already in its table) are left out; the rows tied with it are
appended again, as in any run from that bookmark (``append_only`` accepts ties).  A one-run
``--bookmark`` override commits no state anywhere, so there is nothing to read back.

Each destination block has its own state row in its destination (``destination_state_key``: the
source stream and the block), so two blocks writing one stream into one database each read back
their own, never the other's bookmark (which would leave out rows this block never wrote).
Destinations written before that hold one row per source stream (``state_key``); it is read only
by a block that alone reads the stream, per the notebook and per the state file (which remembers
every block that ever committed the stream), when the block has no row of its own yet.  The old
row is left where it is; the block's own row is written from its next commit on.

A reset (or a bookmark a user pinned: ``state set``, the panel) asks for rows again, so a
destination's state from before it must not undo it, yet the commits after it should be read back
like any other.  Each reset and pin draws a new random epoch for the stream (``StateStore.epoch``);
every state a destination commits carries the stream's epoch (``stamped``), and a destination's state
is trusted only when its epoch is the current one (no epoch on either side: neither ever happened,
or the states of older versions).

LOG_BASED streams are left as they are: the source has already read from the file's position
(and, on a first run, made a new slot), and re-applying changes from there is exact; moving the
file past what the source did could point it at changes the slot no longer holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ..connectors._shared.arrow_rows import at_or_after
from ..connectors.base import INCREMENTAL, Destination, StreamSettings
from ..state.store import bookmark_order

log = logging.getLogger(__name__)

EPOCH = "epoch"
"""The key of a committed state that names the stream's epoch it was committed in (``StateStore.epoch``)."""


def appends(settings: StreamSettings) -> bool:
    """Whether the destination appends this stream's rows (an INCREMENTAL stream without unique
    constraints): the only kind a re-read would duplicate."""
    return settings.replication_method == INCREMENTAL and not settings.unique_constraints


def ahead(bookmark: dict[str, Any] | None, than: dict[str, Any] | None, columns: list[str]) -> bool:
    """Whether ``bookmark`` is past ``than`` (None: nothing committed, behind everything)."""
    if not bookmark:
        return False
    if not than:
        return True
    return bookmark_order(bookmark, columns) > bookmark_order(than, columns)


def catch_up(
    destination: Destination,
    settings: StreamSettings,
    reader: pa.RecordBatchReader,
    *,
    keys: list[str],
    recorded: dict[str, Any] | None,
    read_from: dict[str, Any] | None,
    epoch: str | None,
    save: Any,
) -> pa.RecordBatchReader:
    """The rows of an appended stream this destination does not have yet (see the module docstring).

    ``keys`` are where the destination may hold this block's committed state: its own row first,
    then (only for a block that alone reads the stream) the row of a version that kept one per source
    stream.  ``recorded`` is what the state file holds for this destination, ``read_from`` the
    bookmark the source read from, ``epoch`` the stream's epoch (of its last reset or pin; only a state
    committed in it is trusted); ``save`` records a state in the file."""
    columns = list(settings.bookmark_properties)
    done = recorded
    committed = next((state for state in map(destination.load_state, keys) if isinstance(state, dict)), None)
    bookmark = committed.get("bookmark") if committed is not None else None
    if committed is not None and committed.get(EPOCH) == epoch and isinstance(bookmark, dict) and ahead(bookmark, recorded, columns):
        log.warning(
            "stream %s: destination %s committed up to %s, the state file only to %s (a run stopped between the two); "
            "the destination's state is kept",
            settings.stream,
            destination.name,
            bookmark,
            recorded,
        )
        save(committed)
        done = bookmark
    if done and ahead(done, read_from, columns):
        return skip_committed(reader, settings, done)
    return reader


def stamped(states: Iterable[dict[str, Any] | None] | None, epoch: str | None) -> Iterable[dict[str, Any] | None] | None:
    """The batches' states, each with the stream's epoch, for the destination to commit with
    the rows (read lazily: a running source's list still grows)."""
    if states is None or epoch is None:
        return states
    return (None if state is None else {**state, EPOCH: epoch} for state in states)


def skip_committed(reader: pa.RecordBatchReader, settings: StreamSettings, done: dict[str, Any]) -> pa.RecordBatchReader:
    """``reader`` without the rows before ``done`` (the destination has them); every batch stays,
    emptied or not, so each still carries its state to the destination."""
    values = [(p, done[p]) for p in settings.bookmark_properties if done.get(p) is not None]

    def batches():
        for batch in reader:
            yield batch.filter(at_or_after(batch, values, settings.stream)) if values and batch.num_rows else batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
