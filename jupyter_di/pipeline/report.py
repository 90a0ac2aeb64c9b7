"""Plain-text summaries of a run (the CLI prints them; the kernel shows them as HTML)."""

from __future__ import annotations

from ..block_kind import BlockKind
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
