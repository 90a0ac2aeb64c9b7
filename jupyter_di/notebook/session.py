"""One notebook's jupyter-di state inside the kernel: its pipeline, settings and front-end bridge.

The magics are thin: they parse their line and hand the work to the session,
which defines blocks, plans runs (stale ancestors first), shows outputs and
keeps the lab extension's pipeline view up to date.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ..errors import DIError
from ..pipeline.block import Block
from ..pipeline.history import RunRecorder, recent_runs, run_record
from ..pipeline.observer import RunObserver
from ..pipeline.pipeline import Pipeline
from ..pipeline.run_record import DONE, FAILED, SKIPPED, BlockRun, RunReport
from ..redaction import redact
from ..state.store import StateStore
from .comm import get_bridge
from .config import JupyterDI
from .display import RunDisplay, show_output
from .identity import Identity, identify
from .panels import PanelManager


class KernelSession:
    def __init__(self, ip: Any) -> None:
        self.ip = ip
        self.config = JupyterDI(parent=ip)
        if self.config not in ip.configurables:
            ip.configurables.append(self.config)
        self.identity = self._identify()
        self._enter_workdir()
        self.pipeline = Pipeline(
            self.identity.name, state_path=self.identity.state_path, namespace=ip.user_ns, identified=self.identity.identified
        )
        self.config.observe(lambda _change: self.refresh_identity(force=True), names=["pipeline_name", "state_path"])
        # Only a notebook front end gets a comm offer: nbclient logs a warning for one (issue 21).
        self.bridge = get_bridge(getattr(ip, "kernel", None), offer=self.interactive)
        self.bridge.on_request("run_pipeline", lambda msg: self.run_pipeline(msg.get("blocks") or None))
        self.bridge.on_request("run_block", lambda msg: self.run_block(msg["name"]))
        self.bridge.on_request("request_graph", lambda msg: self.publish_all())
        self.bridge.on_request("request_run", lambda msg: self.bridge.send_run(int(msg["id"]), run_record(self.pipeline, int(msg["id"]))))
        # Issue 6: source/destination panels (shown after a cell runs; they write edits into its YAML).
        self.panels = PanelManager(self.pipeline, self.bridge, ip, can_show=lambda: self.bridge.connected or self.interactive)
        self.publish_runs()  # the side panel's Runs view shows earlier runs (the CLI's too) at once

    def close(self) -> None:
        self.panels.close()  # issue 6
        self.pipeline.close()

    # -- which notebook this is -------------------------------------------------------------
    @property
    def notebook_file(self) -> Path | None:
        return self.identity.notebook

    def _identify(self) -> Identity:
        history = getattr(getattr(self.ip, "history_manager", None), "input_hist_raw", None) or []
        return identify(
            user_ns=self.ip.user_ns,
            pipeline_name_setting=self.config.pipeline_name,
            state_path_setting=self.config.state_path,
            cell_id=self.cell_id(),
            executed=list(history),
        )

    def _enter_workdir(self) -> None:
        """Work in the notebook's folder when the client started the kernel elsewhere (papermill
        without ``--cwd``), so a relative ``path: data`` means what it means in JupyterLab,
        nbconvert, ``jupyter execute`` and ``jupyter-di run`` (issue 21)."""
        workdir = self.identity.workdir
        if workdir is not None and workdir.is_dir() and Path.cwd().resolve() != workdir.resolve():
            os.chdir(workdir)

    def refresh_identity(self, force: bool = False) -> None:
        """Ask again which notebook this is, before a run, while the answer may still change.

        Why: a batch client naming several notebooks (``jupyter execute a.ipynb b.ipynb``) is
        told apart by the cells this kernel has executed, which grow as the notebook runs; and
        ``%config JupyterDI.pipeline_name = ...`` usually comes after ``%load_ext``.
        """
        if self.identity.settled and not force:
            return
        self.identity = self._identify()
        self._enter_workdir()
        if str(self.identity.state_path) != str(self.pipeline.state.path):
            self.pipeline.state = StateStore(self.identity.state_path)
        self.pipeline.name = self.identity.name
        self.pipeline.identified = self.identity.identified

    # -- helpers ----------------------------------------------------------------------------
    def cell_id(self) -> str | None:
        kernel = getattr(self.ip, "kernel", None)
        if kernel is None:
            return None
        try:
            parent = kernel.get_parent("shell") if "channel" in kernel.get_parent.__code__.co_varnames else kernel.get_parent()
        except Exception:  # noqa: BLE001 - older ipykernels
            parent = getattr(kernel, "_parent_header", {}) or {}
        return (parent or {}).get("metadata", {}).get("cellId")

    @property
    def interactive(self) -> bool:
        """False when a batch client (nbconvert, papermill, ``jupyter execute``) runs this kernel.

        Why: those show no widgets but save every widget's state into the executed notebook
        (panels made a quickstart 395 KB), and log a warning for a comm the kernel opens (issue
        21).  A cell id in the execute request (JupyterLab, Notebook 7, VS Code; nbclient sends
        none) wins over the parent process: a notebook front end is running this cell.
        """
        return self.cell_id() is not None or self.identity.client is None

    def publish_graph(self) -> None:
        blocks = []
        for block in self.pipeline.graph.blocks.values():
            last = self.pipeline.last_status.get(block.name)
            status = str(last.status) if last and last.status in (DONE, FAILED, SKIPPED) else "idle"
            blocks.append(
                {
                    "name": block.name,
                    "kind": block.kind,
                    "upstream": block.upstream,
                    "cell_id": block.cell_id,
                    "status": status,
                    "duration_s": last.duration if last else None,
                    "message": (last.error or last.reason) if last else None,
                }
            )
        self.bridge.publish_graph(blocks)

    def publish_all(self) -> None:
        self.publish_graph()
        self.publish_runs()

    def publish_runs(self) -> None:
        """The newest runs of this notebook (CLI and kernel) to the side panel's Runs view."""
        self.bridge.publish_runs(recent_runs(self.pipeline))

    def _raise_for(self, report: RunReport) -> None:
        if report.ok:
            return
        failed = report.by_status(FAILED)
        if failed and not self.config.short_errors:
            exc = failed[0].exception
            if exc is not None:
                raise exc
        raise UsageError(redact(report.failure_message()))

    # -- what the magics do -----------------------------------------------------------------
    def adopt_missing_upstreams(self, block: Block) -> list[str]:
        """Define upstream blocks this kernel has not seen from the saved notebook file.

        Why: after a kernel restart (or when a user runs a cell in the middle of
        the notebook first) the upstream cells have not run in this kernel yet.
        The saved notebook has their definitions, so running a cell still runs
        its ancestors.  Returns the names adopted.
        """
        needed = [*block.upstream, *([block.replicate] if block.replicate else [])]  # a replica needs its original
        missing = [u for u in needed if u not in self.pipeline.graph]
        if not missing or self.notebook_file is None or not self.notebook_file.exists():
            return []
        from ..pipeline.notebook_file import load_notebook

        try:
            saved = {b.name: b for b in load_notebook(self.notebook_file).blocks}
        except DIError:
            return []
        adopted: list[str] = []
        todo = list(missing)
        while todo:
            name = todo.pop()
            if name in self.pipeline.graph or name not in saved or name == block.name:
                continue
            self.pipeline.graph.add(saved[name])
            adopted.append(name)
            other = saved[name].replicate
            todo.extend([*saved[name].upstream, *([other] if other else [])])
        return adopted

    def define_and_run(self, block: Block) -> Any:
        # Issue 6: a panel edit not yet in the cell runs now and rewrites the cell (set_next_input).
        block = self.panels.before_run(block)
        self.refresh_identity()
        self.adopt_missing_upstreams(block)
        try:
            self.pipeline.define(block)
        except DIError as exc:
            raise UsageError(redact(str(exc))) from None
        self.publish_graph()
        try:
            plan = self.pipeline.plan([block.name], {}, only_stale_ancestors=True)
        except DIError as exc:
            raise UsageError(redact(str(exc))) from None
        display = RunDisplay(plan, self.bridge) if len(plan) > 1 else _Quiet(self.bridge)
        recorder = RunRecorder(self.pipeline, "kernel")
        report = self.pipeline.run(plan, observers=[display])
        recorder.finish(report)
        self.publish_runs()
        display.tick(force=True)
        run = report.runs[block.name]
        if run.status == DONE:
            output = self.pipeline.outputs.get(block.name)
            if block.output_var:
                self.ip.user_ns[block.output_var] = output
            show_output(block.kind, output, run.summary)
        # Issue 6: the block's panel, also after a failed run (that is where credentials get fixed).
        self.panels.show(block, ok=report.ok)
        self._raise_for(report)
        return None

    def run_pipeline(
        self, blocks: list[str] | None = None, params: dict[str, Any] | None = None, bookmarks: dict | None = None
    ) -> RunReport:
        self.refresh_identity()
        try:
            plan = self.pipeline.plan(blocks or list(self.pipeline.graph.blocks), params or {}, only_stale_ancestors=False)
        except DIError as exc:
            raise UsageError(redact(str(exc))) from None
        display = RunDisplay(plan, self.bridge)
        recorder = RunRecorder(self.pipeline, "kernel")
        report = self.pipeline.run(plan, params=params, bookmark_overrides=bookmarks, observers=[display])
        recorder.finish(report)
        self.publish_runs()
        display.tick(force=True)
        for name in plan:
            block = self.pipeline.graph[name]
            if block.output_var and name in self.pipeline.outputs:
                self.ip.user_ns[block.output_var] = self.pipeline.outputs[name]
        self._raise_for(report)
        return report

    def run_block(self, name: str) -> None:
        if name not in self.pipeline.graph:
            raise UsageError(f"no block named {name!r}.")
        block = self.pipeline.graph[name]
        self.define_and_run(block)


class _Quiet(RunObserver):
    """A single-block run: no progress table, but the lab extension still hears about it."""

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge

    def tick(self, force: bool = False) -> None:
        pass

    def block_changed(self, run: BlockRun) -> None:
        self.bridge.publish_status(run.name, str(run.status), run.duration, run.error or run.reason)
