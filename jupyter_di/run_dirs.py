"""Scratch folders (spill files, a Singer process's files) that a killed run never leaves behind for long.

Why: a run killed with SIGKILL runs no cleanup, and every such kill used to
leave a ``jupyter-di-*`` spill folder in the temp folder (245 folders, 4.3 GB
after one test session).  So each folder says whether its owner still lives:

- it is ``<temp>/jupyter-di-<kind>-<pid>-<random>/`` and holds ``.lock``, which
  its process keeps locked (``fcntl.flock``) for as long as it uses the folder;
  the kernel drops a ``flock`` when the process dies, however it dies;
- the folder is made under a staging name and renamed once its lock is held,
  so a folder under its final name is never seen unlocked while its owner lives;
- a process making one first removes (on a thread) the folders whose lock is
  free, at most once every ``SWEEP_SECONDS``: their process died without cleaning up;
- a folder made with ``watch=True`` (one holding credentials: a Singer config)
  is also watched by a small helper process, started once per process: it
  waits on a pipe only its parent holds, and when the parent dies (kill -9
  included) it removes the parent's folders at once, instead of at the next run.

Why the temp folder and not beside the notebook: spills are scratch data, and
the temp folder is where the system (and ``TMPDIR``) puts scratch data, usually
on a local disk, while a notebook folder may be a network or synced folder where
gigabytes of spill would be slow or uploaded, and where ``flock`` may not hold.
It also serves Singer processes started outside a notebook.

Folders of older versions (``jupyter-di-XXXXXXXX``, ``jdi-singer-XXXXXXXX``, no
lock file: nothing tells whether their process lives) are removed once they are
``LEGACY_AGE`` seconds old.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PREFIX = "jupyter-di-"
LOCK_NAME = ".lock"
SWEEP_SECONDS = 300.0
LEGACY_AGE = 24 * 3600.0
STAGING_AGE = 3600.0

_NAME = re.compile(r"^jupyter-di-[a-z]+-(\d+)-[0-9a-f]{8}$")
_STAGING = re.compile(r"^\.jupyter-di-new-\d+-[0-9a-f]{8}$")
_LEGACY = re.compile(r"^(jupyter-di-|jdi-singer-)[a-z0-9_]{8}$")

_lock = threading.Lock()
_last_sweep: dict[str, float] = {}
_watching: dict[str, tuple[int, int]] = {}
"""base folder -> (our pid, the write end of the pipe the helper waits on)"""


def root() -> Path:
    """Where run folders live: the temp folder (``TMPDIR``)."""
    return Path(tempfile.gettempdir())


class RunDir:
    """A private (0700) folder whose lock this process holds until ``close()``."""

    def __init__(self, kind: str, base: Path | str | None = None, *, watch: bool = False) -> None:
        if not re.fullmatch(r"[a-z]+", kind):
            raise ValueError(f"run folder kind must be lower-case letters, got {kind!r}")
        base = Path(base) if base is not None else root()
        maybe_sweep(base)
        if watch:
            start_watchdog(base)
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = base / f".{PREFIX}new-{tag}"
        os.mkdir(staging, 0o700)
        try:
            self._fd: int | None = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(self._fd, f"{os.getpid()}\n".encode())
            self.path = base / f"{PREFIX}{kind}-{tag}"
            os.rename(staging, self.path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def close(self) -> None:
        """Remove the folder (still holding its lock), then let the lock go."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(fd)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def maybe_sweep(base: Path | str | None = None) -> threading.Thread | None:
    """``sweep`` on a thread if this process has not swept ``base`` in the last ``SWEEP_SECONDS``.

    On a thread: scanning a busy temp folder takes milliseconds and removing a killed run's
    gigabytes of spill takes longer, neither of which a run should wait for.  Not a daemon thread,
    so a short run still finishes the removal before its process exits."""
    base = Path(base) if base is not None else root()
    key = str(base)
    now = time.monotonic()
    with _lock:
        if key in _last_sweep and now - _last_sweep[key] < SWEEP_SECONDS:
            return None
        _last_sweep[key] = now
    thread = threading.Thread(target=sweep, args=(base,), name="jupyter-di-sweep")
    thread.start()
    return thread


def sweep(base: Path | str | None = None, *, pid: int | None = None) -> list[Path]:
    """Remove the run folders in ``base`` whose process died (their lock is free); returns them.

    With ``pid``: only that process's folders, and no folders of older versions."""
    base = Path(base) if base is not None else root()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        name = entry.name
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            match = _NAME.match(name)
            if match:
                if (pid is None or int(match.group(1)) == pid) and _stale(Path(entry.path)):
                    removed.append(Path(entry.path))
            elif pid is None and (_STAGING.match(name) or _LEGACY.match(name)):
                age = STAGING_AGE if name.startswith(".") else LEGACY_AGE
                if not os.path.exists(os.path.join(entry.path, LOCK_NAME)) and now - entry.stat(follow_symlinks=False).st_mtime > age:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(Path(entry.path))
        except OSError:
            continue  # another user's folder, or one removed meanwhile
    return removed


def _stale(path: Path) -> bool:
    """Remove ``path`` if nobody holds its lock; True if it was removed."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        # a final-named folder always has its lock from birth: this is one being removed
        shutil.rmtree(path, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False  # its process is alive
            raise
        shutil.rmtree(path, ignore_errors=True)  # while holding the lock: no other sweeper races us
        return True
    finally:
        os.close(fd)


def start_watchdog(base: Path | str | None = None) -> None:
    """Start (once per process and base folder) the helper that removes this process's folders
    in ``base`` as soon as this process dies.

    The helper is this file run by the same Python (stdlib only, ``-I -S``: a few milliseconds,
    in the background).  It reads a pipe whose write end only this process holds (not inherited
    by taps: close-on-exec); end of file means this process is gone, however it ended.  It runs
    in a session of its own, so a kill of our process group leaves it to do its work.
    """
    base = str(Path(base) if base is not None else root())
    with _lock:
        known = _watching.get(base)
        if known is not None and known[0] == os.getpid():
            return
        read_end, write_end = os.pipe()
        try:
            subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), "--watch", base, str(os.getpid())],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            os.close(write_end)  # no helper: the next run's sweep still removes our folders
            return
        finally:
            os.close(read_end)
        _watching[base] = (os.getpid(), write_end)


WATCH_PATIENCE = 10.0
"""Seconds the helper keeps trying: a dying process closes its descriptors one by one (the pipe
may close before a folder's lock), and a child forked from it may still hold a lock a while."""


def _watch(base: str, pid: int) -> None:
    """The helper's life: wait until ``pid`` (our parent) is gone, then remove its folders."""
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    deadline, delay = time.monotonic() + WATCH_PATIENCE, 0.005
    while True:
        sweep(base, pid=pid)
        left = [e for e in os.scandir(base) if (m := _NAME.match(e.name)) and int(m.group(1)) == pid]
        if not left or time.monotonic() > deadline:
            return  # what is left (a forked child still runs) goes at the next run's sweep
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    _watch(sys.argv[2], int(sys.argv[3]))
