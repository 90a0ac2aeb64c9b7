"""The Singer SDK's standard target test streams, taken from the installed ``singer-sdk`` wheel, and
what a target must make of them.

Why from the wheel: they are the streams every Singer target is expected to handle, and the SDK
changes them as it finds new cases; copying them would freeze an old set.

``expected_tables`` is an oracle built from the messages themselves: per stream, the columns every
SCHEMA declared, and the rows the records make when the last record of a key wins (every record when
the stream has no key).  ``ERRORS`` lists the streams a target must refuse, with what the error says.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ERRORS = {
    "invalid_schema": "declares no properties",
    "record_before_schema": "before its SCHEMA",
    "record_missing_key_property": "no value for its key property 'id'",
}
"""Streams the SDK's own target tests expect to fail, and a part of our message for each."""


def streams_dir() -> Path:
    """``singer_sdk/testing/target_test_streams`` of the installed singer-sdk (a test extra)."""
    return Path(str(importlib.metadata.distribution("singer-sdk").locate_file("singer_sdk/testing/target_test_streams")))


def stream_file(name: str) -> Path:
    return streams_dir() / f"{name}.singer"


def all_names() -> list[str]:
    return sorted(p.stem for p in streams_dir().glob("*.singer"))


def messages(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def expected_tables(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """``{stream: {"columns": [...], "keys": [...], "rows": [record, ...]}}`` after loading ``paths`` in
    order into one destination that upserts on the keys (rows with every column, missing ones None)."""
    tables: dict[str, dict[str, Any]] = {}
    for path in paths:
        for msg in messages(path):
            if msg["type"] == "SCHEMA":
                t = tables.setdefault(msg["stream"], {"columns": [], "keys": [], "by_key": {}, "rows": []})
                t["columns"] += [c for c in msg["schema"].get("properties", {}) if c not in t["columns"]]
                t["keys"] = list(msg.get("key_properties") or [])
            elif msg["type"] == "RECORD":
                t = tables[msg["stream"]]
                if t["keys"]:
                    t["by_key"][tuple(msg["record"][k] for k in t["keys"])] = msg["record"]
                else:
                    t["rows"].append(msg["record"])
    for t in tables.values():
        rows = t["rows"] + list(t.pop("by_key").values())
        t["rows"] = [{c: r.get(c) for c in t["columns"]} for r in rows]
    return tables


def last_state(path: Path) -> Any:
    states = [m["value"] for m in messages(path) if m["type"] == "STATE"]
    return states[-1] if states else None


def normalized(rows: Iterable[dict[str, Any]], like: dict[str, Any] | None = None, *, strip_nul: bool = False) -> list[str]:
    """Rows as sorted JSON texts, comparable between the oracle and a destination: JSON text parsed
    where the oracle has an object or array, NUL characters removed when the destination cannot
    store them (PostgreSQL), numbers compared as numbers."""
    out = []
    for row in rows:
        fixed = {}
        for column, value in row.items():
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            fixed[column] = _clean(value, strip_nul)
        out.append(json.dumps(fixed, sort_keys=True, ensure_ascii=False))
    return sorted(out)


def _clean(value: Any, strip_nul: bool) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "") if strip_nul else value
    if isinstance(value, list):
        return [_clean(v, strip_nul) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v, strip_nul) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def cat_tap(folder: Path) -> Path:
    """An executable running tests/support/cat_tap.py with this interpreter."""
    script = Path(__file__).with_name("cat_tap.py")
    exe = folder / "cat-tap"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    exe.chmod(0o755)
    return exe
