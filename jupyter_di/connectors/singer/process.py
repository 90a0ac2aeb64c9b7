"""Running a Singer executable: private config files, redacted stderr, clean kills.

Why a module of its own: taps and targets are foreign processes that hold our
users' credentials.  Everything that touches them goes through here so that
the guarantees hold in one place:

- the config (with its secrets) reaches the process only as a path, never on
  the command line: a 0600 file in a private (0700) run folder of the temp
  folder (``run_dirs.RunDir``), removed when the process ends; if our process
  is killed, a watchdog process removes the folder at once, and the next run's
  sweep is the backstop.  A plain file, because real taps need one: Meltano
  SDK taps read the path whole (older SDKs first check it is a regular file),
  classic taps open it (some again later, some write refreshed tokens back),
  and a wrapper that starts the real tap as a subprocess hands on the path, not
  our descriptors.  A FIFO blocks a second open or a write-back forever, and an
  in-memory file behind ``/dev/fd/N`` failed behind such a wrapper (tried);
- catalog and state files live in the same folder;
- every stderr line is logged under ``jupyter_di.singer`` with the secrets
  masked (``redaction``: values under secret-looking config keys, every
  ``secret()`` value, in the forms a tap may print them), and the last lines are
  kept, masked, for error messages;
- a process is killed (with its whole process group) when we stop early.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from typing import Any

from ...errors import ConfigError, ConnectionFailed, DIError
from ...redaction import Redactor, secret_values
from ...run_dirs import RunDir

logger = logging.getLogger("jupyter_di.singer")

_CONNECTION_HINTS = re.compile(
    r"authentication failed|could not connect|connection refused|could not translate host|"
    r"timeout expired|no route to host|access denied|unauthori[sz]ed|invalid credentials|\b401\b|\b403\b",
    re.IGNORECASE,
)
STDERR_TAIL_LINES = 20


class SingerProcessFailed(DIError):
    """A Singer tap or target exited with a non-zero code."""


def resolve_executable(executable: str | None) -> str:
    """The absolute path of a tap/target executable, or a ConfigError naming the fix."""
    if not executable:
        raise ConfigError(
            "the Singer connector needs `executable`: the path of the tap or target to run.",
            fix="set config.executable, e.g. /path/to/venv/bin/tap-postgres.",
        )
    found = shutil.which(executable)
    if found is None:
        raise ConfigError(
            f"the Singer executable {executable!r} was not found or is not executable.",
            fix="install the tap/target (one virtualenv each: python -m venv v && v/bin/pip install <package>) "
            "and give the full path to v/bin/<name>.",
        )
    return os.path.abspath(found)


class SingerProcess:
    """One run of a tap or target, with its private files and stderr pump.

    Use as a context manager: leaving it kills a still-running process and
    removes its run folder (config, catalog and state files).
    """

    def __init__(self, executable: str | None, config: dict[str, Any], *, role: str) -> None:
        self.executable = resolve_executable(executable)
        self.name = os.path.basename(self.executable)
        self.role = role  # "tap" / "target", for messages
        # the values under secret-looking keys (redaction.secret_values, as the block's own mask guesses
        # them), for this process's lines only: the guess is not remembered for every message
        self.redact = Redactor(secret_values(config))
        self._run_dir = RunDir("singer", watch=True)  # 0700; removed at once if we are killed (run_dirs.py)
        self._dir = self._run_dir.path
        self.config_path = self.write_file("config.json", config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread: threading.Thread | None = None

    def write_file(self, name: str, content: Any) -> str:
        """Write JSON into a 0600 file in the private run folder; returns its path."""
        path = self._dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(content, fh)
        return str(path)

    def start(self, args: list[str], *, stdin: bool = False) -> subprocess.Popen[bytes]:
        """Start ``executable --config CFG *args`` with piped stdout/stderr (and stdin)."""
        cmd = [self.executable, "--config", self.config_path, *args]
        logger.info("running %s", " ".join(cmd))
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(self._dir),
            start_new_session=True,  # own process group, so kill() takes children too
        )
        self._stderr_thread = threading.Thread(target=self._pump_stderr, name=f"singer-stderr-{self.name}", daemon=True)
        self._stderr_thread.start()
        return self.proc

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = self.redact(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            if not line:
                continue
            self.stderr_tail.append(line)
            logger.info("%s: %s", self.name, line)

    def wait(self) -> int:
        """Wait for exit and for the stderr pump to drain; returns the exit code."""
        assert self.proc is not None
        code = self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=10)
        return code

    def kill(self) -> None:
        """Kill the process group if it still runs (early stop, errors)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()

    def snippet(self, line: bytes) -> str:
        """The start of a line the process printed, masked, for an error message or a debug log."""
        return self.redact(line.decode("utf-8", errors="replace").strip()[:200])

    def tail_text(self) -> str:
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        lines = list(self.stderr_tail)
        return "\n".join(lines) if lines else "(no stderr output)"

    def failure(self, what: str, code: int, stream: str | None = None) -> DIError:
        """The error for a non-zero exit: ConnectionFailed when stderr says so."""
        tail = self.tail_text()
        message = f"the Singer {self.role} {self.name} failed while {what} (exit code {code}). Last stderr lines:\n{tail}"
        if _CONNECTION_HINTS.search(tail):
            return ConnectionFailed(message, stream=stream, fix=f"check the host, port and credentials in the {self.role}'s config.")
        return SingerProcessFailed(message, stream=stream, fix=f"read the {self.role}'s stderr above; fix its config or catalog and rerun.")

    def close(self) -> None:
        self.kill()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr) if self.proc else ():
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        self._run_dir.close()

    def __enter__(self) -> SingerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
