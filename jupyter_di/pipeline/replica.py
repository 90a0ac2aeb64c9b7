"""Replica blocks (``--replicate OTHER``): the block a replica runs, checked against the graph.

Why here and not in the block model: what a replica runs depends on another
block of the graph.  It is looked up whenever the replica is planned or run, so
editing the original makes every replica stale (its fingerprint includes the
original's body) and the next run uses the new body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..errors import GraphError
from ..integration.replica import replica_body
from .block import MAGIC_FOR_KIND, Block


def effective_block(blocks: Mapping[str, Block], block: Block) -> Block:
    """``block`` as it runs: itself, or for a replica its original's body (the YAML override merged
    over it) under the replica's own name, upstream blocks, flags and state."""
    other_name = block.replicate
    if other_name is None:
        return block
    other = blocks.get(other_name)
    if other is None:
        raise GraphError(
            f"block {block.name!r} is a replica of {other_name!r}, which is not defined.",
            block=block.name,
            fix=f"run the cell that defines {other_name!r} first, or fix the name in --replicate.",
        )
    if other.replicate is not None:
        raise GraphError(
            f"block {block.name!r} is a replica of {other_name!r}, which is itself a replica of {other.replicate!r}.",
            block=block.name,
            fix=f"replicate the original: --replicate {other.replicate}.",
        )
    if other.kind != block.kind:
        raise GraphError(
            f"block {block.name!r} is a {block.kind} block but {other_name!r} is a {other.kind} block.",
            block=block.name,
            fix=f"declare the replica with %%{MAGIC_FOR_KIND[other.kind]}.",
        )
    body = replica_body(other.body, block.body, lang=other.lang, block=block.name, other=other_name)
    return dataclasses.replace(block, body=body, lang=other.lang)


def replicas_of(blocks: Mapping[str, Block], name: str) -> list[str]:
    """The replicas of block ``name`` (they are stale when it changes)."""
    return [b.name for b in blocks.values() if b.replicate == name]
