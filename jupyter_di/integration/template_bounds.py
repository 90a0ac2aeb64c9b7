"""How big and how long a block's templates may get: the limits and the checks that enforce them.

The limits, one block's ``Budget`` (time, loop steps, characters written), measuring a value as
written out, and the checks that run *before* an operator, a ``str`` method, a format or a filter
could make something too large.

Why apart from ``sandbox.py``: that module decides what a template may reach and hooks these checks
into Jinja2; this one is plain Python with no Jinja2 environment in it, so the rules on sizes can be
read (and tested) on their own. ``docs/architecture.md`` ("The template sandbox") gives the numbers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Cycler, Namespace

TIME_LIMIT = 5.0
"""Seconds one block may spend rendering all its templates."""
MAX_VALUE_SIZE = 1_000_000
"""Characters (and items: one each) a single value may hold, written out."""
MAX_BLOCK_SIZE = 10_000_000
"""Characters one block's templates may write in all (every rendered value, captures and macros included)."""
MAX_LOOP_STEPS = 1_000_000
"""``{% for %}`` iterations per block, all loops together."""
MAX_RANGE = 100_000
"""Numbers one ``range()`` may give."""
MAX_INT_BITS = 3_322
"""Bits of an integer a template computes (about 1,000 decimal digits)."""
MAX_DECIMAL_EXPONENT = 1_000
MAX_TEMPLATE_CHARS = 100_000
"""Characters of one template's source."""
MAX_DEPTH = 100
"""Nesting of lists and mappings."""

BOUNDS_FIX = (
    "keep templates to short config values; compute anything large in a Python block (%%di_block) and pick from it with block_output()."
)


class TemplateLimit(Exception):
    """A template went past one of the sandbox's bounds (the message says which)."""


class Budget:
    """One block's rendering: its deadline, its loop iterations, what it has written."""

    def __init__(self, seconds: float = TIME_LIMIT) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.steps = 0
        self.written = 0  # this block, all values
        self.value_written = 0  # the value being rendered

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took longer than {self.seconds:g} s (a loop, recursion or macro that runs too long)")

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise TemplateLimit(f"the templates ran more than {MAX_LOOP_STEPS:,} loop iterations")
        self.tick()

    def write(self, chars: int) -> None:
        self.value_written += chars
        self.written += chars
        if self.value_written > MAX_VALUE_SIZE:
            raise TemplateLimit(f"the template writes more than {MAX_VALUE_SIZE:,} characters")
        if self.written > MAX_BLOCK_SIZE:
            raise TemplateLimit(f"the block's templates write more than {MAX_BLOCK_SIZE:,} characters in all")
        self.tick()

    def add_value(self, size: int) -> None:
        """A rendered value kept in the block's config (counts toward ``MAX_BLOCK_SIZE``)."""
        self.written += size
        if self.written > MAX_BLOCK_SIZE:
            raise TemplateLimit(f"the block's templates make more than {MAX_BLOCK_SIZE:,} characters of values in all")


# -- measuring values as written out --------------------------------------------------------
_SCALAR_SIZE: dict[type, int] = {type(None): 4, bool: 5, float: 24, dt.date: 10, dt.datetime: 32, dt.time: 21, dt.timedelta: 30}


def _scalar_size(value: Any) -> int | None:
    """About the length of ``str(value)`` for a scalar; None for containers and other objects."""
    if isinstance(value, (str, bytes)):
        return len(value) + 2
    if isinstance(value, int):
        return value.bit_length() * 30103 // 100000 + 2  # bits -> decimal digits
    if isinstance(value, decimal.Decimal):
        return len(value.as_tuple().digits) + 10
    for kind, size in _SCALAR_SIZE.items():
        if isinstance(value, kind):
            return size
    return None


def measure(value: Any, limit: int = MAX_VALUE_SIZE, *, what: str = "a value") -> tuple[int, int]:
    """``(size, depth)`` of ``value`` written out: shared parts count every time they appear.

    Linear in the distinct objects (sizes are remembered by identity); raises
    ``TemplateLimit`` as soon as the size passes ``limit`` or the nesting ``MAX_DEPTH``.
    """
    sizes: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()

    def walk(item: Any, level: int) -> tuple[int, int]:
        size = _scalar_size(item)
        if size is not None:
            return size, 0
        key = id(item)
        if key in sizes:
            return sizes[key]
        if isinstance(item, Mapping) and not isinstance(item, Namespace):
            children: Any = (x for pair in item.items() for x in pair)
        elif isinstance(item, (list, tuple, set, frozenset, range)):
            children = item
        elif isinstance(item, Namespace):
            children = (x for pair in object.__getattribute__(item, "_Namespace__attrs").items() for x in pair)
        elif isinstance(item, Cycler):
            children = item.items
        else:
            return 16, 0  # functions, undefined values, loop objects, iterators: written as a short repr
        if key in open_:
            raise TemplateLimit(f"{what} contains itself")
        if level >= MAX_DEPTH:
            raise TemplateLimit(f"{what} is nested more than {MAX_DEPTH} levels deep")
        open_.add(key)
        total, depth = 2, 0
        for child in children:
            child_size, child_depth = walk(child, level + 1)
            total += child_size + 2
            depth = max(depth, child_depth)
            if total > limit:
                raise TemplateLimit(f"{what} would hold more than {limit:,} characters written out")
        open_.discard(key)
        sizes[key] = (total, depth + 1)
        return total, depth + 1

    size, depth = walk(value, 0)
    if size > limit:
        raise TemplateLimit(f"{what} would hold more than {limit:,} characters written out")
    return size, depth


def check_number(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"a number of more than {MAX_INT_BITS:,} bits (about 1,000 digits)")
    if isinstance(value, decimal.Decimal) and value.is_finite() and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise TemplateLimit(f"a decimal with an exponent beyond ±{MAX_DECIMAL_EXPONENT:,}")


def too_big(what: str, size: int) -> TemplateLimit:
    return TemplateLimit(f"{what} would make {size:,} characters (at most {MAX_VALUE_SIZE:,})")


# -- format strings -------------------------------------------------------------------------
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_NUMBER = re.compile(r"\d+")


def check_percent_format(fmt: str | bytes) -> None:
    """``'%0999999999d' % 1`` allocates a gigabyte: refuse widths and precisions past the bound, and ``*``."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*":
                raise TemplateLimit("a '%*d' width taken from the arguments")
            if number and int(number) > MAX_VALUE_SIZE:
                raise too_big(f"the format '%{number}...'", int(number))


def check_format_spec(value: Any, spec: str) -> None:
    """A ``format`` field's widths and precision within the bound, its number within ``MAX_INT_BITS``."""
    for number in _NUMBER.findall(spec):
        if int(number) > MAX_VALUE_SIZE:
            raise too_big(f"the format spec {spec[:20]!r}", int(number))
    check_number(value)


# -- calls: which str methods, and their sizes --------------------------------------------------
STR_METHODS = frozenset(
    """capitalize casefold count encode decode endswith find index isalnum isalpha isascii isdecimal isdigit
    isidentifier islower isnumeric isprintable isspace istitle isupper lower lstrip partition removeprefix
    removesuffix rfind rindex rpartition rsplit rstrip split splitlines startswith strip swapcase title upper hex
    center ljust rjust zfill expandtabs replace join format format_map""".split()
)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(text, (str, bytes)) or not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return 0
    if isinstance(text, str) and isinstance(old, str):
        found = text.count(old) if old else len(text) + 1
    elif isinstance(text, bytes) and isinstance(old, bytes):
        found = text.count(old) if old else len(text) + 1
    else:
        return 0  # str.count(bytes) and bytes.count(str) raise TypeError
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _join_items(separator: Any, items: Any) -> list:
    """Materialise what ``sep.join(items)`` joins and check the result's size first."""
    items = list(items)
    size = len(separator) * max(len(items) - 1, 0) if isinstance(separator, (str, bytes)) else 0
    for item in items:
        size += len(item) if isinstance(item, (str, bytes)) else measure(item)[0]
        if size > MAX_VALUE_SIZE:
            raise too_big("join()", size)
    return items


def check_call(obj: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Refuse str methods off the list and amplifying arguments; may return materialised args."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    text_static = isinstance(obj, types.BuiltinFunctionType) and getattr(obj, "__qualname__", "").split(".")[0] in ("str", "bytes")
    if isinstance(owner, (str, bytes)) or owner in (str, bytes) or text_static:
        if name not in STR_METHODS:
            kind = type(owner).__name__ if isinstance(owner, (str, bytes)) else obj.__qualname__.split(".")[0]
            raise SecurityError(f"{kind}.{name}() is not available in templates")
        if not isinstance(owner, (str, bytes)):
            return args, kwargs
        if name in ("center", "ljust", "rjust", "zfill"):
            width = _arg(args, kwargs, 0, "width", 0)
            if isinstance(width, int) and width > MAX_VALUE_SIZE:
                raise too_big(f"{name}({width})", width)
        elif name == "expandtabs":
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            size = len(owner) + tabs * max(_arg(args, kwargs, 0, "tabsize", 8), 0)
            if size > MAX_VALUE_SIZE:
                raise too_big("expandtabs()", size)
        elif name == "replace":
            size = _replace_size(
                owner, _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""), _arg(args, kwargs, 2, "count", -1)
            )
            if size > MAX_VALUE_SIZE:
                raise too_big("replace()", size)
        elif name == "join" and args:
            args = (_join_items(owner, args[0]), *args[1:])
    elif isinstance(owner, int) and name == "to_bytes":
        length = _arg(args, kwargs, 0, "length", 1)
        if isinstance(length, int) and length > MAX_VALUE_SIZE:
            raise too_big(f"to_bytes({length})", length)
    return args, kwargs


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse operations whose result would be past the bounds, before computing them."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int) and times > 0:
                size = (len(seq) if isinstance(seq, (str, bytes)) else measure(seq)[0]) * times
                if size > MAX_VALUE_SIZE:
                    raise too_big(f"a {type(seq).__name__} times {times:,}", size)
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise TemplateLimit(f"a product of more than {MAX_INT_BITS:,} bits (about 1,000 digits)")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
                raise TemplateLimit(f"{left} ** {right} has more than {MAX_INT_BITS:,} bits (about 1,000 digits)")
    elif operator == "%" and isinstance(left, (str, bytes)):
        check_percent_format(left)


# -- filters: their sizes -------------------------------------------------------------------------
def _lines(text: Any) -> int:
    return str(text).count("\n") + 1


def _pre_center(a: Mapping[str, Any]) -> None:
    width = a.get("width", 80)
    if isinstance(width, int) and width > MAX_VALUE_SIZE:
        raise too_big(f"center({width})", width)


def _pre_indent(a: Mapping[str, Any]) -> None:
    width = a.get("width", 4)
    per_line = width if isinstance(width, int) else len(str(width))
    size = len(str(a["s"])) + _lines(a["s"]) * max(per_line, 0)
    if size > MAX_VALUE_SIZE:
        raise too_big("indent()", size)


def _pre_replace(a: Mapping[str, Any]) -> None:
    count = a.get("count")
    size = _replace_size(str(a["s"]), str(a["old"]), str(a["new"]), -1 if count is None else count)
    if size > MAX_VALUE_SIZE:
        raise too_big("replace()", size)


def _pre_join(a: dict[str, Any]) -> None:
    if a.get("attribute") is None:
        a["value"] = _join_items(str(a.get("d", "")), a["value"])


def _pre_format(a: Mapping[str, Any]) -> None:
    check_percent_format(str(a["value"]))


def _pre_count(name: str, key: str) -> Callable[[Mapping[str, Any]], None]:
    def check(a: Mapping[str, Any]) -> None:
        number = a.get(key)
        if isinstance(number, int) and number > MAX_RANGE:
            raise TemplateLimit(f"{name}({number:,}) is over {MAX_RANGE:,}")

    return check


def _pre_sum(a: Mapping[str, Any]) -> None:
    start = a.get("start", 0)
    if not isinstance(start, (int, float, decimal.Decimal)):
        raise SecurityError("sum() adds numbers only (start must be a number)")


def _pre_tojson(a: Mapping[str, Any]) -> None:
    indent = a.get("indent")
    if indent:
        per_level = indent if isinstance(indent, int) else len(str(indent))
        size, depth = measure(a["value"])
        if size * (1 + per_level * depth) > MAX_VALUE_SIZE:
            raise too_big(f"tojson(indent={indent!r})", size * (1 + per_level * depth))


def _pre_int(a: Mapping[str, Any]) -> None:
    check_number(a["value"])


FILTER_CHECKS: dict[str, Callable[[Any], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "replace": _pre_replace,
    "join": _pre_join,
    "format": _pre_format,
    "batch": _pre_count("batch", "linecount"),
    "slice": _pre_count("slice", "slices"),
    "sum": _pre_sum,
    "tojson": _pre_tojson,
    "int": _pre_int,
    "round": _pre_int,
}
