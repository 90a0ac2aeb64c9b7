"""What a run tells whoever shows it: the terminal progress, the kernel's live table, the lab extension.

Why a base class with methods that do nothing, not attribute look-ups: an observer
overrides what it shows, the executor calls every method directly, and a type
checker sees a misspelt method.  Observers are called on the thread that runs the
pipeline (``tick``, ``block_changed``) or on a block's thread (``stream_progress``):
they must be quick and must not raise (the executor ignores what they raise).
"""

from __future__ import annotations

from .run_record import BlockRun


class RunObserver:
    def block_changed(self, run: BlockRun) -> None:
        """A block's status changed (pending, running, done, failed, skipped)."""

    def stream_progress(self, block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
        """Rows read (``phase`` 'read') or written ('write') so far for one stream of a block."""

    def tick(self) -> None:
        """Twice a second while blocks run, on the calling thread: redraw live displays here."""

    def run_waiting(self, message: str) -> bool:
        """Another run of the notebook holds its run lock; return True when this observer showed
        ``message`` (otherwise it is printed on stderr)."""
        return False
