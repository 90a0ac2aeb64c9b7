"""The block model: one notebook cell that is one node of the pipeline graph.

Why its own module: the kernel (magics) and the CLI (notebook files) both turn
cells into ``Block``s, and everything downstream (graph, executor, staleness)
speaks only this type.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from ..block_kind import KIND_FOR_MAGIC, MAGIC_FOR_KIND, BlockKind

__all__ = ["KIND_FOR_MAGIC", "MAGIC_FOR_KIND", "Block", "BlockKind", "BlockLang"]

BlockLang = Literal["yaml", "python"]


@dataclass
class Block:
    """A named pipeline block with its body (YAML or Python) and upstream blocks."""

    name: str
    kind: BlockKind
    body: str
    upstream: list[str] = field(default_factory=list)
    lang: BlockLang = "python"
    cell_id: str | None = None
    output_var: str | None = None
    replicate: str | None = None
    """``--replicate OTHER``: run OTHER's body (a YAML body here is an override merged over it)."""
    dynamic: bool = False
    """``--dynamic``: the output is a list; every direct downstream block runs once per item."""
    reduce_output: bool = False
    """``--reduce-output``: downstream of dynamic children, run once with all their outputs in a list."""

    def __post_init__(self) -> None:
        self.kind = BlockKind(self.kind)  # callers may name it as text ("source"); it is always the enum

    @property
    def is_data_integration(self) -> bool:
        return self.kind.is_data_integration

    def source_hash(self) -> str:
        """Changes whenever what the block would do changes (body, kind, language, upstream)."""
        digest = hashlib.sha1()
        for part in (self.kind, self.lang, self.body, "\x00".join(self.upstream)):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x01")
        if self.replicate or self.dynamic or self.reduce_output:
            digest.update(f"{self.replicate}|{self.dynamic}|{self.reduce_output}".encode())
        return digest.hexdigest()

    def magic_line(self) -> str:
        """The first line of the cell that declares this block (canonical form)."""
        parts = [f"%%{self.kind.magic}", self.name]
        if self.upstream:
            parts += ["--upstream", *self.upstream]
        if self.is_data_integration and self.lang != "yaml":
            parts += ["--lang", self.lang]
        if self.output_var:
            parts += ["-o", self.output_var]
        if self.replicate:
            parts += ["--replicate", self.replicate]
        if self.dynamic:
            parts.append("--dynamic")
        if self.reduce_output:
            parts.append("--reduce-output")
        return " ".join(parts)

    def cell_source(self) -> str:
        return f"{self.magic_line()}\n{self.body}"
