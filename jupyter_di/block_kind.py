"""The three kinds of pipeline block and the cell magic that declares each.

Why in the shared layer: the block model (``pipeline/``), resolution (``integration/``), the CLI and
the notebook surface all speak of a block's kind, and ``integration/`` cannot import ``pipeline/``.
"""

from __future__ import annotations

from .text_enum import TextEnum


class BlockKind(TextEnum):
    """A block's kind; as text (``"source"``) it is what YAML cells, JSON payloads and the CLI show."""

    SOURCE = "source"
    DESTINATION = "destination"
    PYTHON = "python"

    @property
    def magic(self) -> str:
        """The cell magic declaring a block of this kind (``di_source`` ...)."""
        return MAGIC_FOR_KIND[self]

    @property
    def is_data_integration(self) -> bool:
        """A source or destination block (a connector), as opposed to a Python block."""
        return self is not BlockKind.PYTHON


MAGIC_FOR_KIND: dict[BlockKind, str] = {
    BlockKind.SOURCE: "di_source",
    BlockKind.DESTINATION: "di_destination",
    BlockKind.PYTHON: "di_block",
}
KIND_FOR_MAGIC: dict[str, BlockKind] = {magic: kind for kind, magic in MAGIC_FOR_KIND.items()}
