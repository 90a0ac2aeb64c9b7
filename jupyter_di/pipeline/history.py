"""Record a run in the history (``state/history.py``): the kernel and ``jupyter-di run`` both call this.

A ``RunRecorder`` is made before a run (it notes the start and every bookmark of the pipeline)
and finished with the run's report: the record gets per block and per stream rows and
durations, errors (redacted) and each stream's bookmark before and after.  A history that
cannot be written never fails the run; it says so on stderr once.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from ..redaction import redact
from ..state.history import RunHistory
from .report import report_dict
from .run_record import RunReport


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _bookmarks(pipeline: Any) -> dict[str, Any]:
    """``block.stream`` -> bookmark, for every stream the state holds for this pipeline."""
    try:
        return {f"{b}.{s}": v.get("bookmark") for b, s, v in pipeline.state.items(pipeline.name)}
    except Exception:  # noqa: BLE001 - a history detail, never a reason to fail a run
        return {}


class RunRecorder:
    def __init__(self, pipeline: Any, origin: str) -> None:
        self.pipeline = pipeline
        self.origin = origin
        self.started = _now()
        self.before = _bookmarks(pipeline)

    def finish(self, report: RunReport, extra: dict[str, Any] | None = None) -> int | None:
        """Write the record; its id (None when there was nothing to record or it could not be written)."""
        if not report.runs:
            return None
        try:
            doc = report_dict(self.pipeline.graph, report)
            after = _bookmarks(self.pipeline)
            for block in doc["blocks"]:
                for stream, info in block["streams"].items():
                    key = f"{block['name']}.{stream}"
                    if block["kind"] == "source" and (key in self.before or key in after):
                        info["bookmark_before"] = self.before.get(key)
                        info["bookmark_after"] = after.get(key)
            doc = {
                "pipeline": self.pipeline.name,
                "origin": self.origin,
                "started": self.started,
                "ended": _now(),
                **(extra or {}),
                **doc,
            }
            return RunHistory.beside(self.pipeline.state.path).add(doc)
        except Exception as exc:  # noqa: BLE001 - the run itself succeeded or failed on its own
            print(redact(f"jupyter-di: could not record this run in the run history: {exc}"), file=sys.stderr)
            return None


def runs_table(runs: list[dict[str, Any]]) -> str:
    """``jupyter-di runs NOTEBOOK``: one line per run, oldest first."""
    from .report import format_table

    rows = [[str(r["id"]), r["started"][:19].replace("T", " "), r["origin"], r["status"], f"{r['rows']:,}", _seconds(r)] for r in runs]
    return format_table(["id", "started (UTC)", "origin", "status", "rows read", "time"], rows)


def _seconds(run: dict[str, Any]) -> str:
    try:
        return f"{(dt.datetime.fromisoformat(run['ended']) - dt.datetime.fromisoformat(run['started'])).total_seconds():.2f}s"
    except (KeyError, TypeError, ValueError):
        return ""


def run_detail(doc: dict[str, Any]) -> str:
    """``jupyter-di runs show ID``: the run, its blocks, its streams with bookmarks, errors once below."""
    from .report import format_table

    head = f"run {doc['id']} of {doc['pipeline']} ({doc['origin']}): {doc['status']}, started {doc['started']}, ended {doc['ended']}"
    blocks = [
        [b["name"], b["kind"] or "", b["status"], f"{b['seconds']:.2f}s" if b["seconds"] is not None else "", b["reason"] or ""]
        for b in doc["blocks"]
    ]
    parts = [head, format_table(["block", "kind", "status", "time", "note"], blocks)]
    streams = [
        [
            b["name"],
            s,
            f"{i.get('rows', 0):,}",
            str(i.get("table", "")),
            *([_short(i["bookmark_before"]), _short(i["bookmark_after"])] if "bookmark_before" in i else ["", ""]),
        ]
        for b in doc["blocks"]
        for s, i in b["streams"].items()
    ]
    if streams:
        parts.append(format_table(["block", "stream", "rows", "table", "bookmark before", "bookmark after"], streams))
    errors = [f"block '{b['name']}': {b['error']}" for b in doc["blocks"] if b.get("error")]
    errors += [
        f"warning: block '{b['name']}', stream '{w.get('stream', '')}': {w.get('message', '')}"
        for b in doc["blocks"]
        for w in b["warnings"]
    ]
    if errors:
        parts.append("\n".join(errors))
    return "\n\n".join(parts)


def _short(bookmark: Any) -> str:
    """A bookmark readably: ``updated_at=2024-03-26T16:40:00+00:00``; none yet: ``-``."""
    if bookmark is None:
        return "-"
    if isinstance(bookmark, dict):
        return ", ".join(f"{k}={v}" for k, v in bookmark.items())
    return str(bookmark)


def run_record(pipeline: Any, run_id: int) -> dict[str, Any] | None:
    """One run of ``pipeline`` (the Runs view's details of a clicked run); None for a run of another
    notebook sharing the state folder, an unknown id, or a history that cannot be read."""
    try:
        doc = RunHistory.beside(pipeline.state.path).get(run_id)
    except Exception:  # noqa: BLE001 - the Runs view is a convenience, never a failed request
        return None
    return doc if doc is not None and doc.get("pipeline") == pipeline.name else None


def recent_runs(pipeline: Any, last: int = 20) -> list[dict[str, Any]]:
    """The newest runs of ``pipeline``, newest first, each with its first error (the side panel's list)."""
    try:
        history = RunHistory.beside(pipeline.state.path)
        runs = list(reversed(history.list(pipeline.name, last)))
        for run in runs:
            run["error"] = None
            if run["status"] == "failed":
                doc = history.get(run["id"]) or {}
                run["error"] = next((f"{b['name']}: {b['error']}" for b in doc.get("blocks", []) if b.get("error")), None)
        return runs
    except Exception:  # noqa: BLE001 - the Runs view is a convenience, never a failed cell
        return []
