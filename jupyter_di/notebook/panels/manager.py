"""The session's panels: built after a source/destination cell runs, pending rewrites applied before.

Why a manager: the kernel session stays thin (two calls), and the panel
machinery (catalog cache, write-back, one panel per block, closing the old
panel when a cell re-runs) lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.display import HTML, display

from ...errors import DIError
from ...pipeline.block import Block
from ...pipeline.pipeline import Pipeline
from ...secrets import SecretStore
from .catalog_cache import CatalogCache
from .context import PanelContext
from .panel import BlockPanel, error_panel
from .readonly import PythonBlockPanel
from .writeback import APPLIED, WriteBack


class PanelManager:
    def __init__(
        self,
        pipeline: Pipeline,
        bridge: Any,
        shell: Any = None,
        secrets: SecretStore | None = None,
        can_show: Callable[[], bool] | None = None,
    ) -> None:
        self.shell = shell
        self.can_show = can_show or (lambda: True)
        """Whether a front end can show a panel now; False in batch clients, which save widget
        state but show nothing (an executed quickstart was 395 KB of it)."""
        folder = Path(pipeline.state.path).parent / "catalogs"
        self.ctx = PanelContext(
            pipeline=pipeline, writeback=WriteBack(bridge), catalogs=CatalogCache(folder), secrets=secrets or SecretStore()
        )
        self.panels: dict[str, Any] = {}
        self._applied: dict[str, tuple[Block, str]] = {}  # block -> (what the cell held, source it gets)

    def before_run(self, block: Block) -> Block:
        """Apply a pending panel edit of this cell: run its YAML and rewrite the cell's source."""
        if not block.is_data_integration:
            return block
        new_block, source, dropped = self.ctx.writeback.take(block)
        if source is not None:
            self._applied[new_block.name] = (block, source)
            if self.shell is not None:
                self.shell.set_next_input(source, replace=True)
        if dropped:
            display(
                HTML(
                    "<small>jupyter-di: the cell was edited by hand after the panel changed it; the panel's unsaved changes were dropped.</small>"
                )
            )
        return new_block

    def build(self, block: Block, base: Block | None = None) -> Any:
        """The panel object for ``block`` (closing the previous one of that block).

        ``base`` is what the cell holds when that differs from ``block``.
        """
        old = self.panels.pop(block.name, None)
        if old is not None:
            old.close()
        panel: BlockPanel | PythonBlockPanel
        if self.ctx.pipeline.effective(block).lang == "python":  # a replica: its original's language
            panel = PythonBlockPanel(block, self.ctx)
        else:
            panel = BlockPanel(block, self.ctx)
            if base is not None:
                panel.editor.base = base
            editor = panel.editor
            editor.on_change(lambda result: self._follow_cell(editor, result))
        self.panels[block.name] = panel
        return panel

    def _follow_cell(self, editor: Any, result: Any) -> None:
        """An edit that changed the cell also redefines the block, so Run pipeline runs what the cell says.

        A pending edit (cell not changed yet) waits for the cell's next run, as the panel tells the user.
        """
        if result.status == APPLIED:
            self.ctx.pipeline.define(editor.current_block())

    def show(self, block: Block, ok: bool = True, force: bool = False) -> Any:
        """Display the block's panel under the cell's output; errors become one line, never a traceback.

        ``ok`` is False when the run failed: front ends drop ``set_next_input``
        from a failed cell, so a rewrite applied by ``before_run`` stays pending.
        Without a front end that can show it (``can_show``) no panel is built unless
        ``force`` (``%di_panel NAME``: the user asked for one).
        """
        if not block.is_data_integration:
            return None
        base = None
        applied = self._applied.pop(block.name, None)
        if applied is not None and not ok:
            base, source = applied
            self.ctx.writeback.rearm(base, source)
        if not force and not self.can_show():
            return None
        try:
            panel = self.build(block, base)
        except DIError as exc:
            display(error_panel(block, exc))
            return None
        display(panel.widget)
        return panel

    def close(self) -> None:
        for panel in self.panels.values():
            panel.close()
        self.panels.clear()
