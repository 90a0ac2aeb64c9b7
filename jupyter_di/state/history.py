"""The run history: one row per run (kernel or CLI), in ``runs.sqlite`` beside the state file.

Why beside the state and not in it: the state file holds what the next run needs and is written
inside the sync's transactions; the history is for people and schedulers, only appended to, and
may be deleted at any time without changing what the next run reads.  Each row keeps the run's
machine-readable report (``pipeline.report.report_dict`` plus bookmarks before and after), the
same document ``jupyter-di run --json`` prints.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

FILE_NAME = "runs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    origin TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    status TEXT NOT NULL,
    rows INTEGER NOT NULL,
    report TEXT NOT NULL
)
"""

SUMMARY_FIELDS = ("id", "pipeline", "origin", "started", "ended", "status", "rows")


class RunHistory:
    """Append and read runs; one file per folder of state files (several notebooks may share it)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @classmethod
    def beside(cls, state_path: Path | str) -> RunHistory:
        return cls(Path(state_path).parent / FILE_NAME)

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.exists():
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute(_SCHEMA)
        return con

    def add(self, doc: dict[str, Any]) -> int:
        """Record one run (``doc`` has pipeline, origin, started, ended, status, rows); its id."""
        con = self._connect(create=True)
        assert con is not None
        with closing(con), con:
            cur = con.execute(
                "INSERT INTO runs (pipeline, origin, started, ended, status, rows, report) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["pipeline"],
                    doc["origin"],
                    doc["started"],
                    doc["ended"],
                    doc["status"],
                    int(doc.get("rows") or 0),
                    json.dumps(doc, default=str),
                ),
            )
            return int(cur.lastrowid or 0)

    def list(self, pipeline: str | None = None, last: int = 20) -> list[dict[str, Any]]:
        """The newest ``last`` runs (of ``pipeline``), oldest first, without their reports."""
        con = self._connect(create=False)
        if con is None:
            return []
        where, args = ("WHERE pipeline = ?", [pipeline]) if pipeline else ("", [])
        with closing(con):
            rows = con.execute(f"SELECT {', '.join(SUMMARY_FIELDS)} FROM runs {where} ORDER BY id DESC LIMIT ?", [*args, last]).fetchall()  # noqa: S608 - fixed column names
        return [dict(zip(SUMMARY_FIELDS, r)) for r in reversed(rows)]

    def get(self, run_id: int) -> dict[str, Any] | None:
        """One run's whole record (its report with blocks, streams, bookmarks and errors)."""
        con = self._connect(create=False)
        if con is None:
            return None
        with closing(con):
            row = con.execute("SELECT id, report FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return {"id": row[0], **json.loads(row[1])}
