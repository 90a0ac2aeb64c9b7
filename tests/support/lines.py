"""A child process's output lines, read on a thread, so a test can wait for one without blocking forever."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO


class Lines:
    """Collects the lines of ``pipe`` (text mode) as they come."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str | None:
        """The first line matching ``predicate``, waiting up to ``timeout`` seconds; None at the end or the timeout."""
        with self._changed:
            found = self._changed.wait_for(lambda: any(map(predicate, self.lines)) or self.closed, timeout)
            return next((line for line in self.lines if predicate(line)), None) if found else None

    def find(self, predicate: Callable[[str], bool]) -> str | None:
        """The first line read so far that matches ``predicate`` (no waiting)."""
        with self._changed:
            return next((line for line in self.lines if predicate(line)), None)

    def text(self) -> str:
        """Everything read (waits for the end of the pipe)."""
        self._thread.join(timeout=60)
        return "\n".join(self.lines)
