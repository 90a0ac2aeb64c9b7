"""How runs and block outputs look in the notebook.

``RunDisplay`` is a live HTML table (one display, updated in place) of block
statuses and per-stream row counts; it updates only from the kernel's main
thread (executor ticks), because output sent from worker threads can land in
the wrong cell.  ``show_output`` renders a block's output as a preview limited
to ``JupyterDI.preview_rows`` rows, so large outputs never bloat the notebook.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from IPython.display import HTML, display

from ..block_kind import BlockKind
from ..pipeline.dynamic import grouped
from ..pipeline.observer import RunObserver
from ..pipeline.run_record import FAILED, RUNNING, BlockRun
from ..settings import SETTINGS

COLOURS = {"pending": "#9e9e9e", "running": "#f9a825", "done": "#2e7d32", "failed": "#c62828", "skipped": "#757575"}


class RunDisplay(RunObserver):
    def __init__(self, names: list[str], bridge: Any = None) -> None:
        self.runs: dict[str, BlockRun] = {n: BlockRun(n) for n in names}
        self.streams: dict[tuple[str, str, str], tuple[int, float]] = {}
        self.bridge = bridge
        self._lock = threading.Lock()
        self._dirty = True
        self._last_render = 0.0
        self.handle = display(HTML(self.render()), display_id=True)

    # -- observer protocol ------------------------------------------------------------------
    def block_changed(self, run: BlockRun) -> None:
        self.runs[run.name] = run
        if self.bridge is not None:
            status = str(run.status)
            self.bridge.publish_status(run.name, status, run.duration, run.error or run.reason)
        self._dirty = True
        self.tick(force=run.status == RUNNING and self._last_render == 0.0)

    def run_waiting(self, message: str) -> bool:
        display(HTML(f"<div class='jupyter-di-waiting'>⏳ {html.escape(message)}</div>"))
        return True

    def stream_progress(self, block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
        with self._lock:
            self.streams[(block, stream, phase)] = (rows, seconds)
            self._dirty = True

    min_interval = 0.2
    """Seconds between two renders: a 200-block run must not re-render 400 times."""

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._dirty or self.handle is None or (not force and now - self._last_render < self.min_interval):
            return
        self._dirty = False
        self._last_render = now
        self.handle.update(HTML(self.render()))

    # -- rendering --------------------------------------------------------------------------
    def render(self) -> str:
        rows = []
        with self._lock:
            streams = dict(self.streams)
        for name, run in grouped(dict(self.runs)).items():  # a dynamic block's children under it
            colour = COLOURS.get(run.status, "#000")
            duration = f"{run.duration:.2f}s" if run.duration is not None else ""
            note = "see the error below" if run.status == FAILED else html.escape(run.reason or "")  # the error shows once
            details = []
            for (block, stream, phase), (count, secs) in streams.items():
                if block == name:
                    rate = f" ({count / secs:,.0f} rows/s)" if secs > 0 else ""
                    details.append(f"{html.escape(stream)} {phase}: {count:,} rows{rate}")
            details += [f"⚠ {html.escape(w.get('stream', ''))}: {html.escape(w['message'])}" for w in run.summary.get("warnings") or []]
            detail = "<br>".join(details)
            rows.append(
                f"<tr data-block='{html.escape(name)}' data-status='{run.status}'><td>{'&nbsp;&nbsp;↳ ' if ':' in name else ''}<code>{html.escape(name)}</code></td>"
                f"<td style='color:{colour};font-weight:600'>{run.status}</td><td>{duration}</td>"
                f"<td>{detail}{'<br>' if detail and note else ''}{note}</td></tr>"
            )
        return (
            "<table class='jupyter-di-run'><thead><tr><th>block</th><th>status</th><th>time</th><th>details</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )


def preview(value: Any) -> Any:
    """What to display for a block output: a bounded preview, never the whole thing."""
    n = SETTINGS.preview_rows
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame):
        if len(value) <= n:
            return value
        note = f"<small>showing {n} of {len(value):,} rows</small>"
        return HTML(value.head(n).to_html(max_rows=n) + note)
    if type(value).__module__.startswith("pyarrow") and hasattr(value, "num_rows"):
        return preview(value.slice(0, n).to_pandas()) if value.num_rows > n else value.to_pandas()
    if type(value).__module__.startswith("polars") and hasattr(value, "head"):
        return value.head(n)
    return value


def warnings_html(summary: dict[str, Any]) -> str:
    """A block's warnings (e.g. rows with a NULL bookmark column) where the user looks: the cell."""
    items = "".join(
        f"<li><code>{html.escape(w.get('stream', ''))}</code>: {html.escape(w['message'])}</li>" for w in summary.get("warnings") or []
    )
    return f"<div class='jupyter-di-warnings' style='color:#8a6d00'>⚠ warnings<ul>{items}</ul></div>" if items else ""


def show_output(kind: BlockKind, value: Any, summary: dict[str, Any]) -> None:
    warnings = warnings_html(summary)
    if warnings:
        display(HTML(warnings))
    if kind == BlockKind.DESTINATION:
        streams = summary.get("streams") or {}
        rows = "".join(
            f"<tr><td><code>{html.escape(s)}</code></td><td>{html.escape(str(info.get('table', '')))}</td><td>{info.get('rows', 0):,}</td><td>{info.get('seconds', 0)}s</td></tr>"
            for s, info in streams.items()
        )
        display(
            HTML(
                f"<table class='jupyter-di-export'><thead><tr><th>stream</th><th>table</th><th>rows</th><th>time</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        )
        return
    if value is None:
        return
    display(preview(value))
