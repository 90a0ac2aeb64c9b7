"""Getting a panel edit into the cell's YAML: at once through the lab extension, else on the next run.

Why two paths: the kernel cannot edit a notebook cell by itself.  With the
jupyter-di lab extension connected, ``FrontendBridge.replace_cell_source``
rewrites the cell immediately.  Without it (classic front ends, VS Code, no
cell id) the new source waits here as a *pending rewrite*; the next run of that
cell runs the pending YAML and rewrites its own source with IPython's
``set_next_input(..., replace=True)``.  A pending rewrite is dropped when the
cell was edited by hand since the panel was built: the user's text wins.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

from ...pipeline.block import Block
from ...pipeline.magic_line import parse_cell

APPLIED = "applied"  # the cell's source changed in the front end
PENDING = "pending"  # waits for the next run of the cell


@dataclass
class Pending:
    base: str  # the canonical cell source the panel was built from
    source: str  # the cell source the panel wants


def _key(block: Block) -> str:
    return f"cell:{block.cell_id}" if block.cell_id else f"block:{block.name}"


def _canonical(block: Block) -> str:
    return block.cell_source().rstrip()


class WriteBack:
    """Delivers new cell sources; keeps the ones that could not be delivered yet."""

    def __init__(self, bridge: Any = None) -> None:
        self.bridge = bridge
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def save(self, block: Block, body: str, base: Block) -> str:
        """Write ``body`` as the YAML of ``block``'s cell; returns APPLIED or PENDING."""
        source = block.magic_line() + "\n" + body
        if block.cell_id and self.bridge is not None and self.bridge.replace_cell_source(block.cell_id, source):
            with self._lock:
                self._pending.pop(_key(block), None)
            return APPLIED
        with self._lock:
            self._pending[_key(block)] = Pending(base=_canonical(base), source=source)
        return PENDING

    def rearm(self, cell: Block, source: str) -> None:
        """Keep ``source`` pending again (the run that should have rewritten the cell failed)."""
        with self._lock:
            self._pending[_key(cell)] = Pending(base=_canonical(cell), source=source)

    def pending_source(self, block: Block) -> str | None:
        with self._lock:
            entry = self._pending.get(_key(block))
        return entry.source if entry else None

    def take(self, block: Block) -> tuple[Block, str | None, bool]:
        """For a cell about to run: (block to run, source to write into the cell, dropped?).

        When a pending rewrite exists and the cell still holds what the panel
        was built from, the block runs with the pending YAML and the caller
        rewrites the cell with the returned source.  When the cell was edited
        by hand meanwhile, the pending rewrite is dropped (third item True).
        """
        with self._lock:
            entry = self._pending.pop(_key(block), None)
        if entry is None:
            return block, None, False
        if _canonical(block) != entry.base:
            return block, None, True
        parsed = parse_cell(entry.source, block.cell_id)
        if parsed is None:  # pragma: no cover - we wrote it ourselves
            return block, None, True
        return dataclasses.replace(parsed, cell_id=block.cell_id), entry.source, False
