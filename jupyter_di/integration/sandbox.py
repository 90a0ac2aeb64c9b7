"""The Jinja2 sandbox a block's ``{{ ... }}`` templates run in: what they may reach, and for how long.

Jinja2's ``ImmutableSandboxedEnvironment`` already refuses ``_private`` and
internal attributes (``__class__``, ``gi_frame``, ``func_globals``...) and calls
that mutate lists and dicts.  This module adds what a config template needs on
top, in one place:

* **Reach.** The names are ``env_var``, ``secret``, ``variables``,
  ``block_output`` (which only ever returns plain data: see
  ``interpolation.plain``), ``range``, ``dict``, ``namespace``, ``cycler`` and
  ``joiner`` (functions, not classes: ``dict.mro()`` would hand out ``object``).
  No ``lipsum``, no loader (``{% include %}``, ``{% import %}``, ``{% extends %}``
  are refused when the template is compiled), no attribute whose value is a
  class, module, frame, code object or generator, and of ``str`` methods only
  the ones that cannot amplify (plus ``center``/``ljust``/``replace``/``join``...
  with their sizes checked first).  The filters ``urlize``, ``wordwrap``,
  ``xmlattr`` and ``pprint`` are gone (no use in a config value, all amplify).

* **Size.** Every value a template builds (operators, calls, filters, list and
  dict literals, ``~``, everything it writes, captured blocks and macros
  included) is measured *as written out* (a list holding one string 1000 times
  counts the string 1000 times) and refused beyond ``MAX_VALUE_SIZE``; the
  amplifiers (``'ab' * n``, ``2 ** n``, ``'%0999999999d'``, ``'{:>999999999}'``,
  ``center(n)``, ``replace``, ``join``, ``batch``/``slice``, ``tojson(indent)``)
  are checked *before* they run, so nothing large is ever allocated.  Integers
  stay under ``MAX_INT_BITS`` (about 1,000 digits), ``range()`` under
  ``MAX_RANGE``, everything one block's templates write under ``MAX_BLOCK_SIZE``.

* **Time.** Cooperative: every hook above, and every iteration of every
  ``{% for %}`` (the compiled template's loops are rewritten to go through a
  counter), checks the block's deadline (``TIME_LIMIT`` seconds) and counts
  toward ``MAX_LOOP_STEPS``.  Since no single step can work on more than
  ``MAX_VALUE_SIZE``, no step can run long between two checks.  Not a thread
  abandoned at the deadline: Python cannot stop a thread, so it would keep
  burning a CPU (and growing) in the kernel for ever; not ``sys.settrace``:
  it slows every line and breaks debuggers and coverage; not ``SIGALRM``: blocks
  render on worker threads, where signals cannot be delivered.

The compiled template is rewritten, not Jinja2's code generator: ``compile``
wraps ``For.iter``, every ``Output`` child, ``Concat`` (``~``) and list/dict/tuple
literals in internal ``jdi.*`` filters (context filters, so Jinja2 never folds
them into constants at compile time).
"""

from __future__ import annotations

import collections.abc
import datetime as dt
import decimal
import functools
import inspect
import re
import time
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Cycler, Joiner, Namespace, _PassArg, pass_context
from markupsafe import EscapeFormatter, Markup

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


def _too_big(what: str, size: int) -> TemplateLimit:
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
                raise _too_big(f"the format '%{number}...'", int(number))


def _check_format_spec(value: Any, spec: str) -> None:
    for number in _NUMBER.findall(spec):
        if int(number) > MAX_VALUE_SIZE:
            raise _too_big(f"the format spec {spec[:20]!r}", int(number))
    check_number(value)


class _BoundedFormatter(SandboxedFormatter):
    _env: Sandbox  # SandboxedFormatter keeps the environment it was made by; here always a Sandbox

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._env.budget.tick()
        _check_format_spec(value, format_spec)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


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
            raise _too_big("join()", size)
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
                raise _too_big(f"{name}({width})", width)
        elif name == "expandtabs":
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            size = len(owner) + tabs * max(_arg(args, kwargs, 0, "tabsize", 8), 0)
            if size > MAX_VALUE_SIZE:
                raise _too_big("expandtabs()", size)
        elif name == "replace":
            size = _replace_size(
                owner, _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""), _arg(args, kwargs, 2, "count", -1)
            )
            if size > MAX_VALUE_SIZE:
                raise _too_big("replace()", size)
        elif name == "join" and args:
            args = (_join_items(owner, args[0]), *args[1:])
    elif isinstance(owner, int) and name == "to_bytes":
        length = _arg(args, kwargs, 0, "length", 1)
        if isinstance(length, int) and length > MAX_VALUE_SIZE:
            raise _too_big(f"to_bytes({length})", length)
    return args, kwargs


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse operations whose result would be past the bounds, before computing them."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int) and times > 0:
                size = (len(seq) if isinstance(seq, (str, bytes)) else measure(seq)[0]) * times
                if size > MAX_VALUE_SIZE:
                    raise _too_big(f"a {type(seq).__name__} times {times:,}", size)
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise TemplateLimit(f"a product of more than {MAX_INT_BITS:,} bits (about 1,000 digits)")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
                raise TemplateLimit(f"{left} ** {right} has more than {MAX_INT_BITS:,} bits (about 1,000 digits)")
    elif operator == "%" and isinstance(left, (str, bytes)):
        check_percent_format(left)


# -- filters: which ones, and their sizes ---------------------------------------------------------
REMOVED_FILTERS = frozenset({"urlize", "wordwrap", "xmlattr", "pprint"})


def _lines(text: Any) -> int:
    return str(text).count("\n") + 1


def _pre_center(a: Mapping[str, Any]) -> None:
    width = a.get("width", 80)
    if isinstance(width, int) and width > MAX_VALUE_SIZE:
        raise _too_big(f"center({width})", width)


def _pre_indent(a: Mapping[str, Any]) -> None:
    width = a.get("width", 4)
    per_line = width if isinstance(width, int) else len(str(width))
    size = len(str(a["s"])) + _lines(a["s"]) * max(per_line, 0)
    if size > MAX_VALUE_SIZE:
        raise _too_big("indent()", size)


def _pre_replace(a: Mapping[str, Any]) -> None:
    count = a.get("count")
    size = _replace_size(str(a["s"]), str(a["old"]), str(a["new"]), -1 if count is None else count)
    if size > MAX_VALUE_SIZE:
        raise _too_big("replace()", size)


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
            raise _too_big(f"tojson(indent={indent!r})", size * (1 + per_level * depth))


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


@functools.cache
def _filter_signature(name: str, func: Callable[..., Any]) -> tuple[bool, inspect.Signature | None]:
    """Whether Jinja2 passes ``func`` a context argument first, and (for checked filters) its other parameters."""
    passes_context = _PassArg.from_obj(func) is not None
    if name not in FILTER_CHECKS:
        return passes_context, None
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    if passes_context and params and params[0].name in ("eval_ctx", "context", "environment", "env"):
        signature = signature.replace(parameters=params[1:])
    return passes_context, signature


_UNSAFE_VALUES = (
    type,
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
)


class Sandbox(ImmutableSandboxedEnvironment):
    """The environment of one block's templates (see the module's docstring)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        self.budget = Budget()
        self.globals.clear()
        self.globals.update(
            {
                "range": self._range,
                "dict": _dict,
                "namespace": _namespace,
                "cycler": _cycler,
                "joiner": _joiner,
                **functions,
            }
        )
        self.filters = {name: self._guard_filter(name, func) for name, func in FILTERS.items() if name not in REMOVED_FILTERS}
        self.filters.update(self._internal_filters())

    # -- compiling: no loader, and the rewrite that lets every loop and write be counted ------
    def compile(
        self, source: Any, name: str | None = None, filename: str | None = None, raw: bool = False, defer_init: bool = False
    ) -> Any:
        if isinstance(source, str):
            if len(source) > MAX_TEMPLATE_CHARS:
                raise TemplateLimit(f"the template is longer than {MAX_TEMPLATE_CHARS:,} characters")
            source = self.parse(source, name, filename)
        source = _rewrite(source)
        source.set_environment(self)
        if raw:  # Environment.compile is overloaded on Literal values of raw
            return super().compile(source, name, filename, True, defer_init)
        return super().compile(source, name, filename, False, defer_init)

    def compile_expression(self, source: str, undefined_to_none: bool = True) -> Any:
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateLimit(f"the template is longer than {MAX_TEMPLATE_CHARS:,} characters")
        return super().compile_expression(source, undefined_to_none)

    # -- the sandbox's hooks ----------------------------------------------------------------------
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not isinstance(value, _UNSAFE_VALUES)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.budget.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.budget.tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja2's signature
        __self.budget.tick()
        args, kwargs = check_call(__obj, args, kwargs)
        return __self.checked(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.tick()
        check_binop(operator, left, right)
        return self.checked(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        self.budget.tick()
        return super().call_unop(context, operator, arg)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2's ``str.format`` wrapper, with a formatter that checks widths first."""
        if super().wrap_str_format(value) is None:
            return None
        f_self = value.__self__
        is_format_map = value.__name__ == "format_map"
        formatter = _BoundedEscapeFormatter(self, escape=f_self.escape) if isinstance(f_self, Markup) else _BoundedFormatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs = args[0]
                args = ()
            return type(f_self)(formatter.vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    # -- values -------------------------------------------------------------------------------------
    def checked(self, value: Any) -> Any:
        """A value a template made: within the bounds, or refused; iterators bounded as they go."""
        if isinstance(value, (int, decimal.Decimal)):
            check_number(value)
        elif isinstance(value, (str, bytes)):
            if len(value) > MAX_VALUE_SIZE:
                raise _too_big("the value", len(value))
        elif isinstance(value, (list, tuple, dict, set, frozenset, Namespace)):
            measure(value)
        elif isinstance(value, types.GeneratorType) or (
            type(value).__module__ == "builtins" and isinstance(value, collections.abc.Iterator)
        ):
            return self._bounded(value)
        return value

    def _bounded(self, iterator: Iterator[Any]) -> Iterator[Any]:
        total = 0
        for item in iterator:
            self.budget.tick()
            total += measure(item, MAX_VALUE_SIZE)[0]
            if total > MAX_VALUE_SIZE:
                raise TemplateLimit(f"a filter's result would hold more than {MAX_VALUE_SIZE:,} characters written out")
            yield item

    def _range(self, *args: Any) -> range:
        try:
            numbers = range(*args)
            count = len(numbers)
        except OverflowError:
            count = MAX_RANGE + 1
        if count > MAX_RANGE:
            raise TemplateLimit(f"range() would give more than {MAX_RANGE:,} numbers")
        return numbers

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        passes_context, signature = _filter_signature(name, func)
        check = FILTER_CHECKS.get(name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.budget.tick()
            if check is not None and signature is not None:  # both or neither (_filter_signature)
                lead = args[:1] if passes_context else ()
                bound = signature.bind(*args[len(lead) :], **kwargs)
                check(bound.arguments)
                args, kwargs = (*lead, *bound.args), bound.kwargs
            return self.checked(func(*args, **kwargs))

        if passes_context:  # Jinja2 then passes the same eval_ctx/context/environment argument
            guarded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
        guarded.__name__ = guarded.__qualname__ = getattr(func, "__name__", name)
        return guarded

    # -- the internal filters the rewrite inserts (context filters: never folded at compile time) -------
    def _internal_filters(self) -> dict[str, Callable[..., Any]]:
        budget = lambda: self.budget  # noqa: E731 - the budget is replaced per block rendering

        @pass_context
        def loop(context: Any, iterable: Any) -> Iterator[Any]:
            for item in iterable:
                budget().step()
                yield item

        @pass_context
        def out(context: Any, value: Any) -> str:
            if not isinstance(value, str):
                measure(value, what="a value the template writes")
                value = str(value)  # a StrictUndefined raises here
            budget().write(len(value))
            return value

        @pass_context
        def concat(context: Any, values: list[Any]) -> str:
            budget().tick()
            parts, size = [], 0
            for value in values:
                if not isinstance(value, str):
                    measure(value, what="a value joined with ~")
                    value = str(value)
                size += len(value)
                if size > MAX_VALUE_SIZE:
                    raise _too_big("'~'", size)
                parts.append(value)
            return "".join(parts)

        @pass_context
        def data(context: Any, value: Any) -> Any:
            budget().tick()
            measure(value, what="a list or mapping the template writes")
            return value

        return {"jdi.loop": loop, "jdi.out": out, "jdi.concat": concat, "jdi.data": data}


def _dict(*args: Any, **kwargs: Any) -> dict:
    return dict(*args, **kwargs)


def _namespace(*args: Any, **kwargs: Any) -> Namespace:
    return Namespace(*args, **kwargs)


def _cycler(*items: Any) -> Cycler:
    return Cycler(*items)


def _joiner(sep: str = ", ") -> Joiner:
    return Joiner(sep)


_NO_LOADER = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
}


def _wrap(node: nodes.Node, filter_name: str) -> nodes.Filter:
    return nodes.Filter(node, filter_name, [], [], None, None, lineno=node.lineno)


def _rewrite(node: nodes.Node) -> nodes.Node:
    """Route loops, writes, ``~`` and literals through the counting ``jdi.*`` filters."""
    for kind, tag in _NO_LOADER.items():
        if isinstance(node, kind):
            raise SecurityError(f"{tag} is not available: a block's templates cannot read other templates or files")
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, nodes.Node):
            setattr(node, field, _rewrite(value))
        elif isinstance(value, list):
            setattr(node, field, [_rewrite(item) if isinstance(item, nodes.Node) else item for item in value])
    if isinstance(node, nodes.For):
        node.iter = _wrap(node.iter, "jdi.loop")
    elif isinstance(node, nodes.Output):
        node.nodes = [_wrap(child, "jdi.out") for child in node.nodes]
    elif isinstance(node, nodes.Concat):
        return _wrap(nodes.List(list(node.nodes), lineno=node.lineno), "jdi.concat")
    elif isinstance(node, (nodes.List, nodes.Dict)) or (isinstance(node, nodes.Tuple) and node.ctx == "load"):
        return _wrap(node, "jdi.data")
    return node
