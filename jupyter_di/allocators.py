"""Allocator settings for a ``jupyter-di`` process, made before pyarrow or DuckDB is loaded.

Why: a run's peak resident memory is what a scheduler's memory limit sees, and the allocators of
both libraries keep memory the run has already freed.  Measured with ``benchmarks/cdc.py`` (LOG_BASED,
1,000,000 changes on a 5,000,000-row table into DuckDB; issue 18):

- Arrow's default pool (mimalloc) held 30-38 MB resident while Arrow's live allocations were 1-13 MB
  (a pool's ``release_unused`` reaches only the calling thread's pages); Arrow's jemalloc pool gives
  them back: the run's peak 10-20 MB lower, no slower.
- DuckDB's own jemalloc keeps freed pages about a second ("dirty decay") before it returns them, so
  what one change window freed stayed resident through the next windows; with decay 0 a checkpoint's
  60 MB go back at once (DuckDB alone) and the run's peak is 5-15 MB lower.

Both allocators read their setting once, at their first allocation, so the command line sets them as
its process starts; a value already in the environment (the user's) wins, and a library already
loaded is left alone.  The kernel is not changed: its libraries are usually loaded already, and its
allocators are the user's choice.  Linux only: Arrow's Linux wheels carry jemalloc (a build without it
warns once and keeps its default pool), and DuckDB uses jemalloc only there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Container, MutableMapping

ARROW_POOL = "ARROW_DEFAULT_MEMORY_POOL"
DUCKDB_JEMALLOC = "DUCKDB_JE_MALLOC_CONF"


def release_freed_memory(
    environ: MutableMapping[str, str] | None = None, platform: str = sys.platform, loaded: Container[str] = sys.modules
) -> None:
    """Ask Arrow and DuckDB (when not loaded yet) to return freed memory to the system promptly."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return
    if "pyarrow" not in loaded:
        env.setdefault(ARROW_POOL, "jemalloc")
    if "duckdb" not in loaded:
        env.setdefault(DUCKDB_JEMALLOC, "dirty_decay_ms:0")
