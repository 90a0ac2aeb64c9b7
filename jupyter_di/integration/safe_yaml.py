"""The one YAML loader for a block cell's body: safe, strict and bounded.

PyYAML's ``safe_load`` builds no Python objects beyond plain data, but it is
neither strict nor bounded: it keeps the last of two equal mapping keys without
a word, composes 5000-deep nesting until ``RecursionError``, and lets aliases
share nodes so that a "billion laughs" cell of a few lines stands for billions
of values (each later copy, e.g. while rendering templates, makes them real:
3.5 GB). ``load`` refuses all three with a ``yaml.YAMLError`` that has a line
and a column, and turns a scalar Python cannot convert (``2024-13-01``, an int
of 5000 digits) into one too, instead of a bare ``ValueError``.

Bounds (aliases counted as if written out in full):

- ``MAX_DEPTH`` levels of nesting,
- ``MAX_NODES`` values (scalars, lists and mappings),
- ``MAX_CHARS`` characters of scalar text.
"""

from __future__ import annotations

from typing import Any, cast

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from ..errors import ConfigError

MAX_DEPTH = 100
MAX_NODES = 100_000
MAX_CHARS = 1_000_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLLimitError(ComposerError):
    """A cell's YAML goes past one of the loader's bounds."""

    fix = "write the values out plainly: a block cell's YAML is a short configuration."


class DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice."""

    fix = "keep one of the two (YAML would silently use the last one)."


class CellLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with duplicate keys refused and depth and alias expansion bounded."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._chars = 0
        self._expanded: dict[int, tuple[int, int]] = {}  # anchored node -> (nodes, chars), written out

    # -- composing: depth and expanded size -----------------------------------------------
    def _count(self, nodes: int, chars: int, mark: Any) -> None:
        self._nodes += nodes
        self._chars += chars
        if self._nodes > MAX_NODES:
            raise YAMLLimitError(None, None, f"the YAML holds more than {MAX_NODES:,} values (aliases counted as written out)", mark)
        if self._chars > MAX_CHARS:
            raise YAMLLimitError(
                None, None, f"the YAML holds more than {MAX_CHARS:,} characters of text (aliases counted as written out)", mark
            )

    def compose_document(self) -> Any:
        self._expanded = {}
        try:
            return super().compose_document()
        finally:
            self._expanded = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._expanded.get(id(target))
                if size is None:  # the anchor's own node is still being composed
                    # cast: types-PyYAML gives events libyaml's Mark too; this pure-Python loader's are yaml.Mark
                    mark = cast("yaml.Mark | None", event.start_mark)
                    raise YAMLLimitError(None, None, f"the alias *{event.anchor} refers to a value that contains it", mark)
                self._count(*size, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimitError(None, None, f"the YAML is nested more than {MAX_DEPTH} levels deep", event.start_mark)
        before = (self._nodes, self._chars)
        try:
            if not isinstance(event, yaml.ScalarEvent):
                self._count(1, 0, event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._expanded[id(node)] = (self._nodes - before[0], self._chars - before[1])
        return node

    def compose_scalar_node(self, anchor: Any) -> Any:
        event = self.peek_event()
        self._count(1, len(event.value), event.start_mark)
        return super().compose_scalar_node(anchor)

    # -- constructing: duplicate keys, scalars Python refuses ---------------------------------
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *defaults` may be overridden by the keys beside it
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: SafeConstructor says so
                if duplicate:
                    raise DuplicateKeyError("while reading a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(None, None, f"cannot read the value {str(node.value)[:40]!r}: {exc}", node.start_mark) from None


def load(text: str) -> Any:
    """Parse one YAML document with ``CellLoader``; every problem is a ``yaml.YAMLError``."""
    loader = CellLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # not reachable with MAX_DEPTH, kept as a guard
        raise YAMLLimitError(None, None, "the YAML is nested too deeply", None) from None
    finally:
        loader.dispose()


def load_cell(text: str, *, block: str, whose: str = "the cell's") -> Any:
    """``load`` of a cell's body, a YAML problem being one ``ConfigError`` naming the block, the line
    and the column."""
    try:
        return load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        fix = getattr(exc, "fix", "fix the YAML indentation or quoting.")
        raise ConfigError(f"{whose} YAML is invalid{where}: {problem}.", block=block, fix=fix) from None
