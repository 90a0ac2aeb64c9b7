"""The cell and line magics: ``%%di_source``, ``%%di_destination``, ``%%di_block``, ``%di_run``, ``%di_graph``.

Flags are declared once (``pipeline.magic_line.ARGUMENTS``) and applied here as
IPython ``magic_arguments`` (so ``%%di_source?`` prints generated help) and in
the headless CLI's parser.  Every user error is a one-line ``UsageError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..block_kind import BlockKind
from ..errors import DIError
from ..pipeline.magic_line import ARGUMENTS, block_from_args
from ..pipeline.params import parse_bookmarks, parse_params
from .session import KernelSession


def _block_arguments(kind: BlockKind) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for flags, kwargs, kinds in reversed(ARGUMENTS):
            if kind in kinds:
                fn = argument(*flags, **kwargs)(fn)
        return magic_arguments()(fn)

    return apply


@magics_class
class DIMagics(Magics):
    def __init__(self, shell: Any, session: KernelSession) -> None:
        super().__init__(shell)
        self.session = session

    def _block(self, kind: BlockKind, magic: Callable[..., Any], line: str, cell: str) -> None:
        if not line.strip():
            raise UsageError(f"%%{magic.__name__} needs a block name, e.g. %%{magic.__name__} orders.")
        args = parse_argstring(magic, line)
        try:
            block = block_from_args(kind, args, cell, self.session.cell_id())
        except DIError as exc:
            raise UsageError(str(exc)) from None
        self.session.define_and_run(block)

    @_block_arguments(BlockKind.SOURCE)
    @cell_magic
    def di_source(self, line: str, cell: str) -> None:
        """Declare and run a data integration source block (YAML by default)."""
        self._block(BlockKind.SOURCE, self.di_source, line, cell)

    @_block_arguments(BlockKind.DESTINATION)
    @cell_magic
    def di_destination(self, line: str, cell: str) -> None:
        """Declare and run a data integration destination block (YAML by default)."""
        self._block(BlockKind.DESTINATION, self.di_destination, line, cell)

    @_block_arguments(BlockKind.PYTHON)
    @cell_magic
    def di_block(self, line: str, cell: str) -> None:
        """Declare and run a Python block (@data_loader, @transformer, @custom, @data_exporter)."""
        self._block(BlockKind.PYTHON, self.di_block, line, cell)

    @magic_arguments()
    @argument("--blocks", nargs="+", default=None, metavar="BLOCK", help="run only these blocks and what they need")
    @argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a runtime variable")
    @argument("--bookmark", action="append", default=[], metavar="BLOCK.STREAM.COLUMN=VALUE", help="a bookmark for this run only")
    @line_magic
    def di_run(self, line: str) -> None:
        """Run the notebook's whole pipeline (or --blocks) with a live progress table."""
        args = parse_argstring(self.di_run, line)
        try:
            params = parse_params(args.param)
            bookmarks = parse_bookmarks(args.bookmark)
        except DIError as exc:
            raise UsageError(str(exc)) from None
        self.session.run_pipeline(args.blocks, params, bookmarks)

    @magic_arguments()
    @argument("--format", choices=["mermaid", "text"], default="mermaid")
    @line_magic
    def di_graph(self, line: str) -> Any:
        """Show the block graph (a mermaid diagram coloured by last status)."""
        from IPython.display import Markdown, display

        args = parse_argstring(self.di_graph, line)
        graph = self.session.pipeline.graph
        try:
            graph.validate()
        except DIError as exc:
            raise UsageError(str(exc)) from None
        statuses = {n: r.status for n, r in self.session.pipeline.last_status.items()}
        text = graph.to_mermaid(statuses)
        if args.format == "text":
            print(text)
            return None
        display(Markdown(f"```mermaid\n{text}\n```"))
        return None

    @line_magic
    def di_panel(self, line: str) -> None:
        """Show a source or destination block's panel here, in any client (e.g. one that shows no panels by itself)."""
        name = line.strip()
        if name not in self.session.pipeline.graph:
            raise UsageError(f"no block named {name!r}; run its cell first.")
        block = self.session.pipeline.graph[name]
        if not block.is_data_integration:
            raise UsageError(f"{name!r} is a Python block; panels are for source and destination blocks.")
        self.session.panels.show(block, force=True)

    @line_magic
    def di_remove(self, line: str) -> None:
        """Remove a block from the pipeline (when its cell was deleted)."""
        name = line.strip()
        if name not in self.session.pipeline.graph:
            raise UsageError(f"no block named {name!r}.")
        self.session.pipeline.forget(name)
        self.session.publish_graph()
