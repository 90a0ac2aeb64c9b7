"""Running a Python block: the Mage-style decorators and how upstream outputs arrive.

A block's cell defines one function decorated with ``@data_loader``,
``@transformer``, ``@custom`` or ``@data_exporter`` (available without an
import).  Upstream outputs arrive as positional arguments in ``--upstream``
order, and by keyword where the function names a parameter after an upstream
block; runtime variables arrive in ``**kwargs``.  The cell's code runs in a
fresh namespace layered over the notebook's, so helper functions and imports
from plain cells are visible but a block does not leak its names back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BlockFailed, ConfigError

BLOCK_DECORATORS = ("data_loader", "transformer", "custom", "data_exporter")


class _Collector:
    """Collects the functions a block's decorators mark, per decorator name."""

    def __init__(self) -> None:
        self.functions: dict[str, list[Callable[..., Any]]] = {}

    def decorator(self, kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.functions.setdefault(kind, []).append(fn)
            return fn

        mark.__name__ = kind
        return mark


def execute_cell_code(body: str, *, block: str, base_namespace: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Compile and run a block's own cell code in a fresh namespace; returns the namespace."""
    namespace: dict[str, Any] = dict(base_namespace)
    namespace.update(extra)
    namespace["__name__"] = f"jupyter_di_block_{block}"
    try:
        code = compile(body, f"<block {block}>", "exec")
    except SyntaxError as exc:
        raise ConfigError(f"syntax error on line {exc.lineno}: {exc.msg}.", block=block, fix="fix the Python code in the cell.") from None
    try:
        exec(code, namespace)  # noqa: S102 - the notebook's own cell code, as the kernel would run it
    except Exception as exc:
        raise BlockFailed(f"the cell's code raised {type(exc).__name__}: {exc}", block=block) from exc
    return namespace


def bind_arguments(
    fn: Callable[..., Any], upstream: list[str], outputs: list[Any], variables: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Positional args and kwargs for ``fn``: outputs by name where a parameter is named after an upstream."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    by_name = dict(zip(upstream, outputs))
    positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    named = {p.name for p in params if p.name in by_name and p.kind != inspect.Parameter.POSITIONAL_ONLY}
    remaining = [out for name, out in zip(upstream, outputs) if name not in named]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in params:
        if p.kind in positional_kinds:
            if p.name in named:
                args.append(by_name[p.name])
            elif remaining:
                args.append(remaining.pop(0))
            else:
                break
        elif p.kind == inspect.Parameter.VAR_POSITIONAL:
            args.extend(remaining)
            remaining = []
        elif p.kind == inspect.Parameter.KEYWORD_ONLY and p.name in named:
            kwargs[p.name] = by_name[p.name]
    bound = {p.name for p in params[: len(args)]} | set(kwargs)
    accepts_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)
    for key, value in variables.items():
        if key in bound:
            continue
        if accepts_any or (key in sig.parameters and sig.parameters[key].kind != inspect.Parameter.POSITIONAL_ONLY):
            kwargs[key] = value
    return args, kwargs


def call_with_upstream(fn: Callable[..., Any], *, block: str, upstream: list[str], outputs: list[Any], variables: Mapping[str, Any]) -> Any:
    args, kwargs = bind_arguments(fn, upstream, outputs, variables)
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise BlockFailed(f"{fn.__name__}() raised {type(exc).__name__}: {exc}", block=block) from exc


def run_python_block(
    body: str,
    *,
    block: str,
    upstream: list[str],
    outputs: list[Any],
    variables: Mapping[str, Any],
    base_namespace: Mapping[str, Any],
) -> Any:
    """Run a ``%%di_block`` cell and return its block function's result."""
    collector = _Collector()
    decorators = {name: collector.decorator(name) for name in BLOCK_DECORATORS}
    decorators["test"] = collector.decorator("test")
    execute_cell_code(body, block=block, base_namespace=base_namespace, extra=decorators)
    main = [fn for kind in BLOCK_DECORATORS for fn in collector.functions.get(kind, [])]
    if not main:
        raise ConfigError(
            "the cell defines no block function.",
            block=block,
            fix="decorate one function with @data_loader, @transformer, @custom or @data_exporter.",
        )
    if len(main) > 1:
        names = ", ".join(fn.__name__ for fn in main)
        raise ConfigError(
            f"the cell defines {len(main)} block functions ({names}).", block=block, fix="keep one decorated function per block."
        )
    result = call_with_upstream(main[0], block=block, upstream=upstream, outputs=outputs, variables=variables)
    for check in collector.functions.get("test", []):
        try:
            check(result)
        except AssertionError as exc:
            raise BlockFailed(f"test {check.__name__}() failed: {exc or 'assertion failed'}", block=block) from exc
    return result
