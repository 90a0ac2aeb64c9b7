"""Plain-text summaries of a run (the CLI prints them; the kernel shows them as HTML)."""

from __future__ import annotations

from typing import Any

from ..block_kind import BlockKind
from ..redaction import redact
from .dynamic import template_of
from .graph import Graph
from .run_record import FAILED, RunReport


def stream_rows(graph: Graph, report: RunReport) -> list[tuple[str, str, str, int, str]]:
    """(block, kind, stream, rows, where) for every stream a source read or a destination wrote."""
    rows: list[tuple[str, str, str, int, str]] = []
    for name, run in report.runs.items():
        block = name if name in graph else template_of(name)  # a dynamic child: its block's kind
        if block not in graph:
            continue
        kind = graph[block].kind
        for stream, info in (run.summary.get("streams") or {}).items():
            where = info.get("table", "") if kind == BlockKind.DESTINATION else "read"
            if info.get("pass_through"):  # written by that block straight from the source server (fusion.py)
                where = f"read, passed through to {info['pass_through']}"
            rows.append((name, kind, stream, int(info.get("rows", 0)), where))
    return rows


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _note(run) -> str:  # noqa: ANN001 - BlockRun
    """A failed block's error is printed once, in full, below the tables; the table only points there."""
    if run.status == FAILED:
        return "see the error below"
    return run.reason or ""


def text_summary(graph: Graph, report: RunReport) -> str:
    blocks = [[r.name, r.status, f"{r.duration:.2f}s" if r.duration is not None else "", _note(r)] for r in report.runs.values()]
    parts = [format_table(["block", "status", "time", "note"], blocks)]
    streams = stream_rows(graph, report)
    if streams:
        parts.append(format_table(["block", "kind", "stream", "rows", "table"], [[b, k, s, f"{n:,}", w] for b, k, s, n, w in streams]))
    return "\n\n".join(parts)


def report_dict(graph: Graph, report: RunReport) -> dict[str, Any]:
    """The machine-readable report (``jupyter-di run --json``, the run history): JSON types only.

    Why one structure: a scheduler parsing ``--json`` and ``jupyter-di runs show`` read the same
    fields.  ``status`` is ``done`` (exit 0), ``incomplete`` (a stream may have missed changes,
    exit 3) or ``failed``; each error appears once, under its block.
    """
    blocks: list[dict[str, Any]] = []
    for name, run in report.runs.items():
        block = name if name in graph else template_of(name)
        streams = {
            stream: {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) or v is None}
            for stream, info in (run.summary.get("streams") or {}).items()
        }
        blocks.append(
            {
                "name": name,
                "kind": str(graph[block].kind) if block in graph else None,
                "status": str(run.status),
                "seconds": round(run.duration, 3) if run.duration is not None else None,
                "error": redact(run.error) if run.error else None,
                "reason": redact(run.reason) if run.reason else None,
                "streams": streams,
                "warnings": [dict(w) for w in run.summary.get("warnings") or []],
            }
        )
    status = "failed" if not report.ok else ("done" if report.complete else "incomplete")
    return {
        "status": status,
        "seconds": round(report.total_seconds, 3),
        "rows": sum(s.get("rows", 0) for b in blocks if b["kind"] == BlockKind.SOURCE for s in b["streams"].values()),
        "blocks": blocks,
    }
