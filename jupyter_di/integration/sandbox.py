"""The Jinja2 sandbox a block's ``{{ ... }}`` templates run in: what they may reach, and for how long.

Jinja2's ``ImmutableSandboxedEnvironment`` already refuses ``_private`` and
internal attributes (``__class__``, ``gi_frame``, ``func_globals``...) and calls
that mutate lists and dicts.  This module adds what a config template needs on
top, and hooks into Jinja2 the size and time checks of ``template_bounds.py``
(the numbers, the ``Budget`` and the checks themselves live there):

* **Reach.** The names are ``env_var``, ``secret``, ``variables``,
  ``block_output`` (which only ever returns plain data: see
  ``block_output.plain``), ``range``, ``dict``, ``namespace``, ``cycler`` and
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
import decimal
import functools
import inspect
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Cycler, Joiner, Namespace, _PassArg, pass_context
from markupsafe import EscapeFormatter, Markup

from .template_bounds import (
    FILTER_CHECKS,
    MAX_RANGE,
    MAX_TEMPLATE_CHARS,
    MAX_VALUE_SIZE,
    Budget,
    TemplateLimit,
    check_binop,
    check_call,
    check_format_spec,
    check_number,
    measure,
    too_big,
)


class _BoundedFormatter(SandboxedFormatter):
    _env: Sandbox  # SandboxedFormatter keeps the environment it was made by; here always a Sandbox

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._env.budget.tick()
        check_format_spec(value, format_spec)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


# -- filters: which ones ---------------------------------------------------------
REMOVED_FILTERS = frozenset({"urlize", "wordwrap", "xmlattr", "pprint"})


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
                raise too_big("the value", len(value))
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
                    raise too_big("'~'", size)
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
