"""Parsing a block cell's magic line (``%%di_source NAME --upstream A B ...``).

Why not in the notebook layer: the headless CLI reads the same cells from the
notebook file and must parse them identically without importing IPython.  The
magics build IPython ``magic_arguments`` from ``ARGUMENTS`` so both share one
definition of the flags.
"""
from __future__ import annotations

import argparse
import re
import shlex
from typing import Any

from ..errors import GraphError
from .block import KIND_FOR_MAGIC, Block, BlockKind

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# (flags, argparse keyword arguments, kinds the flag applies to)
ARGUMENTS: list[tuple[tuple[str, ...], dict[str, Any], tuple[str, ...]]] = [
    (("name",), {"help": "the block's name (a Python identifier, unique in the notebook)"}, ("source", "destination", "python")),
    (
        ("-u", "--upstream"),
        {"nargs": "+", "default": [], "metavar": "BLOCK", "help": "blocks whose outputs this block takes, in argument order"},
        ("source", "destination", "python"),
    ),
    (
        ("--lang",),
        {"choices": ["yaml", "python"], "default": "yaml", "help": "the language of the cell body (default yaml)"},
        ("source", "destination"),
    ),
    (("-o", "--output"), {"default": None, "metavar": "VAR", "help": "bind the block's output to this notebook variable"}, ("source", "destination", "python")),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the process
        raise GraphError(message)


def build_parser(kind: BlockKind) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"%%di_{'block' if kind == 'python' else kind}", add_help=False)
    for flags, kwargs, kinds in ARGUMENTS:
        if kind in kinds:
            parser.add_argument(*flags, **kwargs)
    return parser


def validate_name(name: str, what: str = "block name") -> None:
    if not NAME_PATTERN.match(name or ""):
        raise GraphError(
            f"{what} {name!r} is not a valid name.",
            fix="use letters, digits and underscores, starting with a letter (e.g. orders_source).",
        )


def block_from_args(kind: BlockKind, args: argparse.Namespace, body: str, cell_id: str | None = None) -> Block:
    validate_name(args.name)
    for up in args.upstream:
        validate_name(up, "upstream block name")
    if args.output:
        validate_name(args.output, "output variable")
    lang = getattr(args, "lang", "python") if kind != "python" else "python"
    return Block(name=args.name, kind=kind, body=body, upstream=list(dict.fromkeys(args.upstream)), lang=lang, cell_id=cell_id, output_var=args.output)


def parse_cell(source: str, cell_id: str | None = None) -> Block | None:
    """The block a cell declares, or None when the cell is not a block cell."""
    stripped = source.lstrip("\n")
    if not stripped.startswith("%%"):
        return None
    first, _, body = stripped.partition("\n")
    magic, _, line = first[2:].partition(" ")
    kind = KIND_FOR_MAGIC.get(magic.strip())
    if kind is None:
        return None
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise GraphError(f"cannot parse the magic line {first!r}: {exc}") from None
    if not tokens:
        raise GraphError(f"{first.strip()!r} needs a block name.", fix=f"write %%{magic} NAME.")
    try:
        args = build_parser(kind).parse_args(tokens)  # type: ignore[arg-type]
    except GraphError as exc:
        raise GraphError(f"{first.strip()!r}: {exc.message}", block=tokens[0], fix="see %%" + magic + "? for the flags.") from None
    return block_from_args(kind, args, body, cell_id)  # type: ignore[arg-type]
