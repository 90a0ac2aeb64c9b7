"""Which source blocks the run fuses with their one reader: the planner's pass-through decision.

Why: a source block spills each stream to an Arrow file because anything downstream may read its
output: a Python block, a ``block_output`` template, the kernel's preview, a later cell.  When the
plan shows that exactly one block reads it, a YAML destination that streams from it, and nothing
reads outputs after the run (``jupyter-di run``: ``Pipeline.keep_outputs`` is False), the spill
feeds no one but that destination; the pair is then *fused*: the destination may take the source's
FULL_TABLE streams straight from the source server (``integration/pass_through.py``: PostgreSQL ->
PostgreSQL binary COPY, the connectors decide per stream and fall back to the spill).

Not fused: a source read by a Python block, a template or a second destination; a destination with
another upstream block (it must start as soon as its source does); dynamic fan-outs; the kernel,
which keeps every output for the cells that come later and shows a preview of it (a sample would
need a second read).  On the Dask executor a fused pair runs as one task, in one worker process
(``dask_executor.run_pair_task``: a worker's death runs the pair again as a whole), and only when
its connectors can pass a stream through (``DaskBlockRunner.fusable``); other pairs keep a task each.
"""

from __future__ import annotations

from collections.abc import Callable

from ..block_kind import BlockKind
from .block import Block
from .graph import Graph


def fused_pairs(graph: Graph, plan: list[str], effective: Callable[[Block], Block]) -> dict[str, str]:
    """source block -> the destination block fused with it, for the blocks of ``plan``."""
    in_plan = set(plan)
    pairs: dict[str, str] = {}
    for name in plan:
        if name not in graph:
            continue
        source = effective(graph[name])
        readers = graph.downstream(name)
        if source.kind != BlockKind.SOURCE or source.dynamic or graph[name].output_var or len(readers) != 1:
            continue
        reader = readers[0]
        destination = effective(graph[reader])
        if (
            reader in in_plan
            and destination.kind == BlockKind.DESTINATION
            and destination.lang != "python"
            and "block_output" not in destination.body
            and list(graph[reader].upstream) == [name]
            and not destination.dynamic
            and not destination.reduce_output
        ):
            pairs[name] = reader
    return pairs
