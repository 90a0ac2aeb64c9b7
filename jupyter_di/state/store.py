"""Bookmark storage: one JSON state per (pipeline, block, stream), in a local SQLite file.

Why SQLite: it is embedded (no server), atomic and durable per commit, and
safe for the several processes (kernel, CLI) that may touch one pipeline's
state.  By default the file is ``.jupyter_di/state.sqlite`` beside the
notebook.  Transactional destinations also keep the state in their own
``_jupyter_di_state`` table, committed with the rows; this store mirrors it
and is the only copy for non-transactional destinations.

Overrides: a *pinned* override (the panel's bookmark editor) replaces the
stored bookmark until the next successful sync; a one-run override is never
stored at all (the executor passes it in memory).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
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


def bookmark_order(bookmark: dict[str, Any], columns: list[str]) -> tuple:
    """A sort key for bookmarks of one stream (JSON values: numbers, ISO strings)."""
    return tuple((0, "") if bookmark.get(c) is None else (1, bookmark.get(c)) for c in columns)


def state_key(pipeline: str, block: str, stream: str) -> str:
    """The key a destination stores our state under (stable, human-readable)."""
    return json.dumps([pipeline, block, stream], ensure_ascii=False)


class StateStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def get(self, pipeline: str, block: str, stream: str) -> dict[str, Any] | None:
        with self._lock, self._connect() as conn:
            row = conn.execute(
                "SELECT state FROM stream_state WHERE pipeline = ? AND block = ? AND stream = ?",
                (pipeline, block, stream),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def set(self, pipeline: str, block: str, stream: str, state: dict[str, Any]) -> None:
        text = json.dumps(state, default=str, sort_keys=True)
        with self._lock, self._connect() as conn:
            conn.execute(
                "INSERT INTO stream_state (pipeline, block, stream, state, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (pipeline, block, stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (pipeline, block, stream, text, time.time()),
            )

    def commit_consumer(
        self,
        pipeline: str,
        block: str,
        stream: str,
        *,
        consumer: str,
        bookmark: dict[str, Any],
        consumers: list[str],
        columns: list[str] | None = None,
    ) -> dict[str, Any]:
        """Record what one destination committed; the stream's bookmark is the least advanced of its consumers.

        Why: one source may feed several destinations.  If one of them commits
        and another fails, the next read must start where the failed one stands,
        or it would never receive the rows in between.  Returns the new state.
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
            if columns is not None:
                state["columns"] = list(columns)
            candidates = [per_consumer[c] for c in consumers if c in per_consumer]
            lagging = any(c not in per_consumer for c in consumers)
            if lagging and state.get("bookmark") is None:
                state["bookmark"] = None  # a consumer has committed nothing yet: it still needs everything
            else:
                if lagging:
                    candidates.append(state["bookmark"])
                state["bookmark"] = min(candidates, key=lambda b: bookmark_order(b, list(bookmark)))
            conn.execute(
                "INSERT INTO stream_state (pipeline, block, stream, state, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (pipeline, block, stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (pipeline, block, stream, json.dumps(state, default=str, sort_keys=True), time.time()),
            )
            conn.execute("COMMIT")
        return state

    def reset(self, pipeline: str, block: str | None = None, stream: str | None = None) -> int:
        """Forget state; the next run of those streams is a full sync.  Returns rows removed."""
        sql = "DELETE FROM stream_state WHERE pipeline = ?"
        params: list[Any] = [pipeline]
        if block is not None:
            sql += " AND block = ?"
            params.append(block)
        if stream is not None:
            if block is None:
                raise ConfigError("a stream can only be reset together with its block.", fix="name the block too.")
            sql += " AND stream = ?"
            params.append(stream)
        with self._lock, self._connect() as conn:
            return conn.execute(sql, params).rowcount

    def items(self, pipeline: str, block: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        sql = "SELECT block, stream, state FROM stream_state WHERE pipeline = ?"
        params: list[Any] = [pipeline]
        if block is not None:
            sql += " AND block = ?"
            params.append(block)
        with self._lock, self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY block, stream", params).fetchall()
        return [(b, s, json.loads(v)) for b, s, v in rows]
