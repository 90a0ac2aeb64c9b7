"""What a block run needs from its surroundings (kernel or CLI), in one object."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..block_kind import BlockKind
from ..secrets import SecretStore
from ..state.store import StateStore


class BlockCell(Protocol):
    """What the integration layer needs of a source/destination block (the pipeline's ``Block``).

    A protocol rather than an import: the pipeline layer sits above this one.
    """

    # Read-only members, so the pipeline's Block (whose lang is a Literal) matches.
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> BlockKind: ...
    @property
    def body(self) -> str: ...
    @property
    def upstream(self) -> list[str]: ...
    @property
    def lang(self) -> str: ...


ProgressFn = Callable[[str, str, str, int, float], None]
"""(block, stream, phase 'read'|'write', rows, seconds)"""


@dataclass
class RunContext:
    pipeline: str
    state: StateStore
    work_dir: Path
    variables: dict[str, Any] = field(default_factory=dict)
    namespace: Mapping[str, Any] = field(default_factory=dict)
    bookmark_overrides: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: SecretStore = field(default_factory=SecretStore)
    on_progress: ProgressFn | None = None
    consumers: dict[str, list[str]] = field(default_factory=dict)
    """source block -> the destination blocks that read it (for multi-destination bookmarks)"""
    max_parallel_streams: int = 4
    batch_size: int = 65_536
    identified: bool = True
    """False when the pipeline's name is a stand-in (a kernel that cannot tell its notebook): no bookmarks."""
    publish: Callable[[str, Any], None] | None = None
    """(block, live output): a running source block's streams, readable before it ends."""
    pass_through: dict[str, str] = field(default_factory=dict)
    """source block -> the one destination block that reads its output, when nothing else does (the
    planner's ``pipeline/fusion.py``): that block may write its FULL_TABLE streams straight from the
    source server (``pass_through.py``), never spilled."""

    declined: dict[tuple[str, str | None], set[str]] = field(default_factory=dict)
    """(source block, stream or None for all) -> destination blocks that do not take it (``selected:
    false``, ``only_as_input``): they must not hold that stream's bookmark back."""

    def decline(self, source: str, stream: str | None, destination: str) -> None:
        """``destination`` does not write ``stream`` of ``source`` (None: any of its streams)."""
        self.declined.setdefault((source, stream), set()).add(destination)

    def consumers_of(self, source: str, stream: str) -> list[str]:
        """The destination blocks whose commits a stream's bookmark waits for."""
        skip = self.declined.get((source, None), set()) | self.declined.get((source, stream), set())
        return [d for d in self.consumers.get(source, []) if d not in skip]

    def progress(self, block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
        if self.on_progress is not None:
            self.on_progress(block, stream, phase, rows, seconds)
