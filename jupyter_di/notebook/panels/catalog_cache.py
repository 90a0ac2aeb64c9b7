"""Discovered catalogs, cached per block: in memory and in ``.jupyter_di/catalogs/`` beside the state file.

Why not in the cell: the cell's YAML holds only the user's choices; a
discovered schema (hundreds of streams, thousands of columns) would bury them
and go stale.  The cache survives a kernel restart, so a panel shows streams
and column types without connecting again; the Discover button refreshes it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CatalogCache:
    def __init__(self, folder: Path | str | None) -> None:
        self.folder = Path(folder) if folder else None
        self._memory: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _file(self, pipeline: str, block: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{_UNSAFE.sub('_', pipeline)}.{_UNSAFE.sub('_', block)}.json"

    def get(self, pipeline: str, block: str, connector: str) -> dict[str, Any] | None:
        """``{"catalog": ..., "discovered_at": epoch seconds}`` when cached for this connector."""
        with self._lock:
            entry = self._memory.get((pipeline, block))
        if entry is None:
            path = self._file(pipeline, block)
            if path is None or not path.is_file():
                return None
            try:
                entry = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                return None  # a corrupt cache is only a cache: discover again
            with self._lock:
                self._memory[(pipeline, block)] = entry
        return entry if entry.get("connector") == connector else None

    def put(self, pipeline: str, block: str, connector: str, catalog: dict[str, Any]) -> dict[str, Any]:
        entry = {"connector": connector, "discovered_at": time.time(), "catalog": catalog}
        with self._lock:
            self._memory[(pipeline, block)] = entry
        path = self._file(pipeline, block)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".catalog-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, default=str))  # dumps uses the C encoder; dump(fh) does not
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return entry
