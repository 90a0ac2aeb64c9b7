"""Running one block's body, wherever the block runs (this process, or a Dask worker).

Why its own module: the pipeline runs blocks on its threads and the Dask executor on workers; both
must run a block the same way, so the choice of runner by kind is written once.
"""

from __future__ import annotations

from typing import Any

from ..block_kind import BlockKind
from ..integration.context import RunContext
from ..integration.python_block import run_python_block
from ..integration.runner import BlockResult, run_destination, run_source
from .block import Block


def run_block_body(block: Block, upstream_outputs: dict[str, Any], ctx: RunContext) -> BlockResult:
    """A source or destination through the integration layer; a Python block in a namespace layered
    over the notebook's (``ctx.namespace``)."""
    if block.kind == BlockKind.SOURCE:
        return run_source(block, upstream_outputs, ctx)
    if block.kind == BlockKind.DESTINATION:
        return run_destination(block, upstream_outputs, ctx)
    output = run_python_block(
        block.body,
        block=block.name,
        upstream=block.upstream,
        outputs=[upstream_outputs[u] for u in block.upstream],
        variables=ctx.variables,
        base_namespace=ctx.namespace,
    )
    return BlockResult(output=output)
