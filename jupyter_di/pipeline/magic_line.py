"""Parsing a block cell's magic line (``%%di_source NAME --upstream A B ...``).

Why not in the notebook layer: the headless CLI reads the same cells from the
notebook file and must parse them identically without importing IPython.  The
magics build IPython ``magic_arguments`` from ``ARGUMENTS`` so both share one
definition of the flags.

The grammar is the kernel's: ``parse_cell`` finds the magic line and splits its
arguments the way IPython does before it calls a cell magic (leading blank lines
dropped, a leading indent removed, ``%%NAME`` ended by the first space, arguments
split by ``arg_split``: shlex in non-POSIX mode, so quotes stay in the token), then
argparse with ``ARGUMENTS``.  The JupyterLab extension (``labextension/src/magic.ts``)
implements the same grammar; ``tests/magic_line_cases.json`` is the shared set of
cases both test suites run.
"""

from __future__ import annotations

import argparse
import re
import shlex
from typing import Any, NoReturn

from ..errors import GraphError
from .block import KIND_FOR_MAGIC, Block, BlockKind, BlockLang

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDENT = re.compile(r"[ \t]+")

ALL_KINDS = tuple(BlockKind)
DATA_INTEGRATION = (BlockKind.SOURCE, BlockKind.DESTINATION)

# (flags, argparse keyword arguments, kinds the flag applies to)
ARGUMENTS: list[tuple[tuple[str, ...], dict[str, Any], tuple[BlockKind, ...]]] = [
    (("name",), {"help": "the block's name (a Python identifier, unique in the notebook)"}, ALL_KINDS),
    (
        ("-u", "--upstream"),
        {"nargs": "+", "default": [], "metavar": "BLOCK", "help": "blocks whose outputs this block takes, in argument order"},
        ALL_KINDS,
    ),
    (
        ("--lang",),
        {"choices": ["yaml", "python"], "default": "yaml", "help": "the language of the cell body (default yaml)"},
        DATA_INTEGRATION,
    ),
    (
        ("-o", "--output"),
        {"default": None, "metavar": "VAR", "help": "bind the block's output to this notebook variable"},
        ALL_KINDS,
    ),
    (
        ("--replicate",),
        {"default": None, "metavar": "BLOCK", "help": "run BLOCK's cell body as this block (a YAML body is merged over BLOCK's)"},
        ALL_KINDS,
    ),
    (
        ("--dynamic",),
        {"action": "store_true", "help": "the output is a list: every direct downstream block runs once per item"},
        ALL_KINDS,
    ),
    (
        ("--reduce-output",),
        {"action": "store_true", "help": "downstream of dynamic children: run once, with all their outputs in one list"},
        ALL_KINDS,
    ),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit the process
        raise GraphError(message)


def build_parser(kind: BlockKind) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"%%{BlockKind(kind).magic}", add_help=False)
    for flags, kwargs, kinds in ARGUMENTS:
        if kind in kinds:
            parser.add_argument(*flags, **kwargs)
    return parser


def validate_name(name: str, what: str = "block name") -> None:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise GraphError(
            f"{what} {name!r} is not a valid name.",
            fix="use letters, digits and underscores, starting with a letter (e.g. orders_source).",
        )


def block_from_args(kind: BlockKind, args: argparse.Namespace, body: str, cell_id: str | None = None) -> Block:
    validate_name(args.name)
    for up in args.upstream:
        validate_name(up, "upstream block name")
    if args.output is not None:  # `-o ""` or `-o=` names no variable: an error, not "no binding"
        validate_name(args.output, "output variable")
    replicate = getattr(args, "replicate", None)
    if replicate is not None:
        validate_name(replicate, "replicated block name")
        if replicate == args.name:
            raise GraphError("a block cannot be a replica of itself.", block=args.name, fix="name another block in --replicate.")
    lang: BlockLang = getattr(args, "lang", "python") if kind != BlockKind.PYTHON else "python"
    return Block(
        name=args.name,
        kind=kind,
        body=body,
        upstream=list(dict.fromkeys(args.upstream)),
        lang=lang,
        cell_id=cell_id,
        output_var=args.output,
        replicate=replicate,
        dynamic=bool(getattr(args, "dynamic", False)),
        reduce_output=bool(getattr(args, "reduce_output", False)),
    )


def split_arguments(line: str) -> list[str]:
    """The magic line's arguments as IPython's ``arg_split`` splits them for a cell magic."""
    lexer = shlex.shlex(line, posix=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _magic_line(source: str) -> tuple[str, str, str] | None:
    """(magic name, argument line, body) as IPython's input transformers see a cell, or None."""
    lines = source.splitlines(keepends=True)
    # IPython drops leading empty or whitespace-only lines, then the first line's indent
    # (from every line that starts with it).
    start = next((i for i, text in enumerate(lines) if text and not text.isspace()), None)
    if start is None:
        return None
    lines = lines[start:]
    indent = _INDENT.match(lines[0])
    if indent:
        lines = [text[indent.end() :] if text.startswith(indent.group(0)) else text for text in lines]
    if not lines[0].startswith("%%"):
        return None
    magic, _, line = lines[0][2:].rstrip().partition(" ")
    return magic, line, "".join(lines[1:])


def parse_cell(source: str, cell_id: str | None = None) -> Block | None:
    """The block a cell declares, or None when the cell is not a block cell."""
    found = _magic_line(source)
    if found is None:
        return None
    magic, line, body = found
    kind = KIND_FOR_MAGIC.get(magic)
    if kind is None:
        return None
    first = f"%%{magic} {line}".strip()
    try:
        tokens = split_arguments(line)
    except ValueError as exc:
        raise GraphError(f"cannot parse the magic line {first!r}: {exc}") from None
    if not tokens:
        raise GraphError(f"{first!r} needs a block name.", fix=f"write %%{magic} NAME.")
    try:
        args = build_parser(kind).parse_args(tokens)
    except GraphError as exc:
        raise GraphError(f"{first!r}: {exc.message}", block=tokens[0], fix="see %%" + magic + "? for the flags.") from None
    return block_from_args(kind, args, body, cell_id)
