"""Per-block run status and the report of a whole run (papermill-style life cycle).

pending -> running -> done | failed, or pending -> skipped (with the reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..text_enum import TextEnum


class BlockStatus(TextEnum):
    """A block's place in one run.  Text, so it travels as JSON text (the comm, the report)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


PENDING, RUNNING, DONE, FAILED, SKIPPED = (
    BlockStatus.PENDING,
    BlockStatus.RUNNING,
    BlockStatus.DONE,
    BlockStatus.FAILED,
    BlockStatus.SKIPPED,
)


@dataclass
class BlockRun:
    name: str
    status: BlockStatus = PENDING
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    reason: str | None = None
    cached: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    on_publish: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    """Set by the executor: lets downstream blocks that stream from this one start."""
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    """What a failed block raised (secrets masked in place): the kernel re-raises it when
    ``JupyterDI.short_errors`` is off, so the user gets the real traceback."""

    def publish(self) -> None:
        """The block's outputs are readable while it still runs (a source block's live streams)."""
        if self.on_publish is not None:
            self.on_publish()

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def start(self) -> None:
        self.status, self.started = RUNNING, time.perf_counter()

    def finish(self, status: BlockStatus, error: str | None = None) -> None:
        self.status, self.ended, self.error = status, time.perf_counter(), error


@dataclass
class RunReport:
    """What happened to every block of one run, in plan order."""

    runs: dict[str, BlockRun] = field(default_factory=dict)
    planning_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status in (DONE, PENDING) for r in self.runs.values())

    def warnings(self) -> list[tuple[str, str, str, bool]]:
        """(block, stream, message, skipped) for every warning a block reported; ``skipped``: the run
        cannot be sure it synced every change of that stream (so it must not look clean)."""
        return [
            (run.name, w.get("stream", ""), w["message"], bool(w.get("skipped")))
            for run in self.runs.values()
            for w in run.summary.get("warnings") or []
        ]

    @property
    def complete(self) -> bool:
        """Every block done and nothing possibly skipped: what exit status 0 means."""
        return self.ok and not any(skipped for *_, skipped in self.warnings())

    def warning_lines(self) -> list[str]:
        return [f"warning: block '{b}', stream '{s}': {m}" if s else f"warning: block '{b}': {m}" for b, s, m, _ in self.warnings()]

    def by_status(self, status: str) -> list[BlockRun]:
        return [r for r in self.runs.values() if r.status == status]

    def failure_message(self) -> str:
        """One short paragraph: which blocks failed, and which were skipped because of them."""
        lines = []
        for run in self.by_status(FAILED):
            error = run.error or "failed"
            lines.append(error if error.startswith(f"block '{run.name}'") else f"block '{run.name}' failed: {error}")
        skipped = self.by_status(SKIPPED)
        if skipped:
            lines.append("skipped: " + ", ".join(f"'{r.name}' ({r.reason})" for r in skipped))
        return "\n".join(lines)
