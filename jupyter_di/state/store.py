"""Bookmark storage: one JSON state per (pipeline, block, stream), in a local SQLite file.

Why SQLite: it is embedded (no server), atomic and durable per commit, and
safe for the several processes (kernel, CLI) that may touch one pipeline's
state.  By default the file is ``.jupyter_di/state.sqlite`` beside the
notebook.  Transactional destinations also keep the state in their own
``_jupyter_di_state`` table, committed with the rows (a row per destination
block: ``destination_state_key``); this store mirrors it and is the only copy
for non-transactional destinations.

Overrides: a *pinned* override (the panel's bookmark editor) replaces the
stored bookmark until the next successful sync; a one-run override is never
stored at all (the executor passes it in memory).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_state (
    pipeline TEXT NOT NULL,
    block TEXT NOT NULL,
    stream TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (pipeline, block, stream)
)
"""

EPOCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_epoch (
    pipeline TEXT NOT NULL,
    block TEXT NOT NULL,
    stream TEXT NOT NULL,
    epoch TEXT NOT NULL,
    PRIMARY KEY (pipeline, block, stream)
)
"""
"""Each stream's epoch: a random id drawn by every reset and every pinned bookmark (both ask for rows
again), written into the state a destination commits with the rows.  A destination's state is
trusted only when it carries the stream's current epoch (none: neither ever happened), so an old one
cannot undo a reset or a pin and the commits after it can still be read back
(``integration/committed_state.py``).  Random, not a counter: a new state file would count again
and match a state from before.  Kept for good (one short row per stream): a state file that lost it
would trust a destination's state from before the reset."""


BUSY_SECONDS = 30
"""How long a state write waits for another process's (a kernel's and the CLI's, two CLI runs)."""


def bookmark_order(bookmark: dict[str, Any], columns: list[str]) -> tuple:
    """A sort key for bookmarks of one stream (JSON values: numbers, ISO strings)."""
    return tuple((0, "") if bookmark.get(c) is None else (1, bookmark.get(c)) for c in columns)


def state_key(pipeline: str, block: str, stream: str) -> str:
    """A source stream's key (stable, human-readable): a source that keeps state on its server (a
    replication slot) names it after this.  Destinations written before each destination block had
    a key of its own hold their state under it (``integration/committed_state.py`` reads them back)."""
    return json.dumps([pipeline, block, stream], ensure_ascii=False)


def destination_state_key(pipeline: str, block: str, stream: str, consumer: str) -> str:
    """The key a destination block (``consumer``) stores the state of a source stream under, in its
    destination's own state table: one row per destination block, so two blocks writing one stream
    into one database each keep their own."""
    return json.dumps([pipeline, block, stream, consumer], ensure_ascii=False)


class StateStore:
    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        """Open (with ``create``, make) the state file.  A path that is a folder, cannot be created or
        is not a state file is one ConfigError; ``create=False`` (``state show``) never makes a folder
        or a file: a missing file simply holds no state."""
        self.path = Path(path).absolute()  # a headless run changes into the notebook's folder
        self._lock = threading.Lock()
        self.missing = False
        if self.path.is_dir():
            raise ConfigError(f"the state path {str(self.path)!r} is a folder.", fix="give a file path, e.g. .jupyter_di/state.sqlite.")
        if not create and not self.path.exists():
            self.missing = True
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute(SCHEMA)
                conn.execute(EPOCH_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot use {str(self.path)!r} as the state file: {exc}.",
                fix="give a writable file path with --state-path (or JupyterDI.state_path / JUPYTER_DI_STATE_PATH).",
            ) from None

    def _connect(self) -> sqlite3.Connection:
        """A connection in WAL mode.  Switching a new file to WAL needs the file to itself and does
        not wait for the busy timeout: two runs starting at once on a fresh notebook got "database is
        locked" (one exited 2); so the switch is retried for as long as the busy timeout."""
        conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.02)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def get(self, pipeline: str, block: str, stream: str) -> dict[str, Any] | None:
        if self.missing:
            return None
        with self._lock, self._connect() as conn:
            row = conn.execute(
                "SELECT state FROM stream_state WHERE pipeline = ? AND block = ? AND stream = ?",
                (pipeline, block, stream),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def set(self, pipeline: str, block: str, stream: str, state: dict[str, Any]) -> None:
        """Replace the stream's state.  A pinned one (a bookmark typed by a user) asks for the rows
        from it again, like a reset: it gets a new epoch too."""
        text = json.dumps(state, default=str, sort_keys=True)
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO stream_state (pipeline, block, stream, state, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (pipeline, block, stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (pipeline, block, stream, text, time.time()),
            )
            if state.get("pinned"):
                _new_epochs(conn, [(pipeline, block, stream)])
            conn.execute("COMMIT")

    def commit_consumer(
        self,
        pipeline: str,
        block: str,
        stream: str,
        *,
        consumer: str,
        bookmark: dict[str, Any] | None,
        consumers: list[str],
        columns: list[str] | None = None,
        source_state: Any = None,
    ) -> dict[str, Any]:
        """Record what one destination committed; the stream's bookmark is the least advanced of its consumers.

        Why: one source may feed several destinations.  If one of them commits
        and another fails, the next read must start where the failed one stands,
        or it would never receive the rows in between.  The source's own state
        (a Singer tap's STATE) goes with the bookmark it was committed with.
        Returns the new state.
        """
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT state FROM stream_state WHERE pipeline = ? AND block = ? AND stream = ?", (pipeline, block, stream)
            ).fetchone()
            state = json.loads(row[0]) if row else {}
            state.pop("pinned", None)  # a committed sync replaces a value the user pinned
            per_consumer = state.setdefault("consumers", {})
            per_consumer[consumer] = bookmark
            source_states = state.setdefault("consumer_source_states", {})
            if source_state is not None:
                source_states[consumer] = source_state
            if columns is not None:
                state["columns"] = list(columns)
            _settle(state, consumers, list(bookmark or {}))
            conn.execute(
                "INSERT INTO stream_state (pipeline, block, stream, state, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (pipeline, block, stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (pipeline, block, stream, json.dumps(state, default=str, sort_keys=True), time.time()),
            )
            conn.execute("COMMIT")
        return state

    def settle(self, pipeline: str, block: str, stream: str, consumers: list[str]) -> None:
        """Recompute the stream's bookmark from the destinations that really consume it.

        Why: which destinations take a stream is known only once they resolved
        their settings (``selected: false`` excludes it); a destination that
        declined the stream must not hold its bookmark back forever.
        """
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT state FROM stream_state WHERE pipeline = ? AND block = ? AND stream = ?", (pipeline, block, stream)
            ).fetchone()
            if row is None:
                conn.execute("COMMIT")
                return
            state = json.loads(row[0])
            committed = state.get("consumers") or {}
            columns = next((list(b) for b in committed.values() if b), [])
            if committed and columns and not state.get("pinned"):
                _settle(state, consumers, columns)
                conn.execute(
                    "UPDATE stream_state SET state = ?, updated_at = ? WHERE pipeline = ? AND block = ? AND stream = ?",
                    (json.dumps(state, default=str, sort_keys=True), time.time(), pipeline, block, stream),
                )
            conn.execute("COMMIT")

    def reset(self, pipeline: str, block: str | None = None, stream: str | None = None) -> int:
        """Forget state; the next run of those streams is a full sync.  Returns rows removed.

        Each stream reset gets a new epoch (``stream_epoch``): those with a saved state, those reset
        before (a run killed after a reset may have committed at a destination and nowhere else), and
        the stream named."""
        where = "pipeline = ?"
        params: list[Any] = [pipeline]
        if block is not None:
            where += " AND block = ?"
            params.append(block)
        if stream is not None:
            if block is None:
                raise ConfigError("a stream can only be reset together with its block.", fix="name the block too.")
            where += " AND stream = ?"
            params.append(stream)
        if self.missing:
            return 0
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            streams = set(conn.execute(f"SELECT pipeline, block, stream FROM stream_state WHERE {where}", params).fetchall())
            streams |= set(conn.execute(f"SELECT pipeline, block, stream FROM stream_epoch WHERE {where}", params).fetchall())
            if block is not None and stream is not None:
                streams.add((pipeline, block, stream))
            _new_epochs(conn, sorted(streams))
            removed = conn.execute(f"DELETE FROM stream_state WHERE {where}", params).rowcount
            conn.execute("COMMIT")
            return removed

    def epoch(self, pipeline: str, block: str, stream: str) -> str | None:
        """The stream's epoch: drawn by its last reset or pinned bookmark (None: neither ever)."""
        if self.missing:
            return None
        with self._lock, self._connect() as conn:
            row = conn.execute(
                "SELECT epoch FROM stream_epoch WHERE pipeline = ? AND block = ? AND stream = ?", (pipeline, block, stream)
            ).fetchone()
        return row[0] if row else None

    def items(self, pipeline: str, block: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        if self.missing:
            return []
        sql = "SELECT block, stream, state FROM stream_state WHERE pipeline = ?"
        params: list[Any] = [pipeline]
        if block is not None:
            sql += " AND block = ?"
            params.append(block)
        with self._lock, self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY block, stream", params).fetchall()
        return [(b, s, json.loads(v)) for b, s, v in rows]


def _new_epochs(conn: sqlite3.Connection, streams: list[tuple[str, str, str]]) -> None:
    """Give each (pipeline, block, stream) a new random epoch (``stream_epoch``)."""
    conn.executemany(
        "INSERT OR REPLACE INTO stream_epoch (pipeline, block, stream, epoch) VALUES (?, ?, ?, ?)",
        [(*s, uuid.uuid4().hex) for s in streams],
    )


def _settle(state: dict[str, Any], consumers: list[str], columns: list[str]) -> None:
    """The stream's bookmark (and source state) = the least advanced of its consumers'.

    A consumer that has committed nothing yet keeps the stream at a full sync.
    """
    per_consumer = state.get("consumers") or {}
    source_states = state.get("consumer_source_states") or {}
    lagging = any(c not in per_consumer for c in consumers)
    if lagging and state.get("bookmark") is None:
        state["bookmark"] = None  # a consumer has committed nothing yet: it still needs everything
        state.pop("source_state", None)
        return
    candidates = [(per_consumer[c], source_states.get(c)) for c in consumers if c in per_consumer]
    if lagging:
        candidates.append((state["bookmark"], state.get("source_state")))
    if not candidates:
        return
    bookmark, source_state = min(candidates, key=lambda pair: bookmark_order(pair[0] or {}, columns))
    state["bookmark"] = bookmark
    if source_state is not None:
        state["source_state"] = source_state
    else:
        state.pop("source_state", None)
