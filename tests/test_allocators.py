"""The command line asks Arrow and DuckDB to return freed memory (``jupyter_di/allocators.py``):
only before they are loaded, only on Linux, never over the user's own setting."""

from __future__ import annotations

import os
import subprocess
import sys

from jupyter_di.allocators import ARROW_POOL, DUCKDB_JEMALLOC, release_freed_memory


def test_both_allocators_are_set_before_their_libraries_load():
    env: dict[str, str] = {}
    release_freed_memory(env, "linux", loaded=set())
    assert env == {ARROW_POOL: "jemalloc", DUCKDB_JEMALLOC: "dirty_decay_ms:0"}


def test_the_users_settings_win():
    env = {ARROW_POOL: "system", DUCKDB_JEMALLOC: "dirty_decay_ms:5000"}
    release_freed_memory(env, "linux", loaded=set())
    assert env == {ARROW_POOL: "system", DUCKDB_JEMALLOC: "dirty_decay_ms:5000"}


def test_a_loaded_library_and_other_systems_are_left_alone():
    env: dict[str, str] = {}
    release_freed_memory(env, "linux", loaded={"pyarrow"})
    assert env == {DUCKDB_JEMALLOC: "dirty_decay_ms:0"}
    env = {}
    release_freed_memory(env, "linux", loaded={"pyarrow", "duckdb"})
    assert env == {}
    for platform in ("darwin", "win32"):
        release_freed_memory(env, platform, loaded=set())
        assert env == {}


def test_the_command_line_process_uses_them():
    probe = (
        "import contextlib, io, os\n"
        "from jupyter_di.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "import pyarrow\n"
        f"print(pyarrow.default_memory_pool().backend_name, os.environ.get({DUCKDB_JEMALLOC!r}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (ARROW_POOL, DUCKDB_JEMALLOC)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    if sys.platform.startswith("linux"):
        assert done.stdout.split() == ["jemalloc", "dirty_decay_ms:0"]
