"""A real IPython shell with jupyter_di loaded fresh for each test (JupySQL-style)."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell


class ShellRunner:
    def __init__(self, ip: Any) -> None:
        self.ip = ip
        self.cell_ids: list[str | None] = []

    @property
    def session(self):
        from jupyter_di.notebook.extension import session_for

        return session_for(self.ip)

    def run(self, source: str, cell_id: str | None = None):
        """Run a cell; returns IPython's ExecutionResult.  ``cell_id`` mimics JupyterLab's."""
        self.session.cell_id = lambda: cell_id
        return self.ip.run_cell(source, store_history=False)

    def ok(self, source: str, cell_id: str | None = None):
        result = self.run(source, cell_id)
        assert result.success, f"cell failed: {result.error_in_exec or result.error_before_exec}"
        return result

    def error(self, source: str, cell_id: str | None = None) -> str:
        result = self.run(source, cell_id)
        assert not result.success, "cell was expected to fail"
        return str(result.error_in_exec or result.error_before_exec)


def fresh_shell() -> ShellRunner:
    ip = InteractiveShell.instance()
    manager = ip.extension_manager
    if "jupyter_di" in manager.loaded:
        manager.unload_extension("jupyter_di")
    manager.load_extension("jupyter_di")
    return ShellRunner(ip)
