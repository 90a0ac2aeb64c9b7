"""One run of a notebook's pipeline at a time: an OS file lock beside the state file.

Why: two runs of one notebook at once (a scheduler's ``jupyter-di run`` and a
shell's, or the kernel and the CLI) would read the same bookmarks and write the
same rows side by side; upserts keep keyed tables right, but FULL_TABLE
replaces, appends and the local state's "least advanced consumer" would race.
So a run holds ``<state dir>/<pipeline>.lock`` (``fcntl.flock``, exclusive) for
the whole of ``Pipeline.run``; a second run waits for it, and says so once
("waiting for another run of notebook 'x' (pid N) to finish"), then runs from
the bookmarks the first one left.  The holder writes its pid into the file
(only for that message).  ``flock`` locks belong to the open file and the
kernel drops them when the process dies, so a run killed with SIGKILL never
leaves a stale lock; the file itself is never deleted (deleting a lock file
lets two processes lock two different files of one name).

The lock is re-entrant within a thread (a run started from inside a run does
not wait for itself); two threads of one process serialize like two processes.
A child forked during a run (user code, ``multiprocessing``) closes its copy of
the lock file at once: it would otherwise keep the lock after its parent ended.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..processes import process_exists

_held = threading.local()
_open_fds: set[int] = set()
PID_WAIT_SECONDS = 1.0
"""How long a waiting run looks for the holder's pid (written just after it locks)."""


def lock_path(state_path: Path | str, pipeline: str) -> Path:
    """``<state dir>/<pipeline>.lock``; a name that is not a safe file name gets a hash suffix."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", pipeline).lstrip(".")[:80] or "pipeline"
    if safe != pipeline:
        safe += "-" + hashlib.sha1(pipeline.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return Path(state_path).parent / f"{safe}.lock"


def waiting_message(pipeline: str, holder: int | None) -> str:
    who = f" (pid {holder})" if holder else ""
    return f"waiting for another run of notebook {pipeline!r}{who} to finish"


def _holder_pid(fd: int) -> int | None:
    """The pid the holder wrote, or None when it has not written it yet (or it is not alive)."""
    deadline = time.monotonic() + PID_WAIT_SECONDS
    while True:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            pid = int(text) if text else None
        except (OSError, ValueError):
            pid = None
        if pid is not None and process_exists(pid):
            return pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


@contextmanager
def run_lock(state_path: Path | str, pipeline: str, on_wait: Callable[[int | None], None] | None = None) -> Iterator[Path]:
    """Hold the pipeline's run lock; if another run holds it, call ``on_wait(holder_pid)`` once and wait."""
    path = lock_path(state_path, pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    held: dict[str, int] = getattr(_held, "paths", None) or {}
    _held.paths = held
    key = str(path.resolve())
    if held.get(key):
        held[key] += 1
        try:
            yield path
        finally:
            held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(_holder_pid(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        held[key] = 1
        _open_fds.add(fd)
        try:
            yield path
        finally:
            held.pop(key, None)
            _open_fds.discard(fd)
            try:
                os.ftruncate(fd, 0)  # while still locked: a waiter never reads a finished run's pid
            except OSError:
                pass
    finally:
        os.close(fd)  # releases the lock


def _forget_in_child() -> None:
    for fd in list(_open_fds):
        try:
            os.close(fd)  # only this process's copy: the parent keeps its lock
        except OSError:
            pass
    _open_fds.clear()
    _held.paths = {}


os.register_at_fork(after_in_child=_forget_in_child)
