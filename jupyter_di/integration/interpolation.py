"""Rendering ``{{ ... }}`` in a block's YAML values with a sandboxed Jinja2.

Why per value rather than the whole text: a password with a colon or a quote
rendered into raw YAML text would change the YAML's structure.  We parse the
YAML first and render each string that holds a template.  A value that is
exactly one expression keeps its native type (``port: "{{ block_output('c', 'port') }}"``
gives an int).  Nothing is ever passed to exec or eval.

What a template can reach is plain data only: ``block_output`` indexes into an
upstream output (dict keys, list indexes, dataclass and named-tuple fields,
DataFrame / Arrow columns and cells, a stream's ``stream``/``columns``/``rows``)
and hands back a copy made of str, int, float, bool, None, Decimal, dates and
times, lists and dicts (``plain``) — never an object with methods to call.
The sandbox itself is ``sandbox.py`` (what templates may call) and
``template_bounds.py`` (how big and how long); every problem is one ``ConfigError`` naming the config field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError, DIError
from ..secrets import SecretStore

if TYPE_CHECKING:  # imported lazily at run time: see _stream_types
    from .outputs import SourceOutput, StreamOutput

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
_MISSING = object()

MAX_PLAIN_SIZE = 1_000_000
"""Characters (and items: one each) of what ``block_output`` hands a template (same as the sandbox's values)."""
MAX_PLAIN_DEPTH = 100
MAX_DECIMAL_EXPONENT = 1_000
PLAIN_TYPES = "text, a number, true/false, null, a date or time, or a list or mapping of them"
FUNCTIONS_FIX = (
    "templates may use env_var('NAME'), secret('name'), variables('name'), block_output('block', 'field', ...) and plain values."
)


class NotPlain(ConfigError):
    """``block_output`` reached something that is not plain data."""


def _where(name: str, path: tuple[Any, ...]) -> str:
    return "block_output(" + ", ".join(repr(x) for x in (name, *path)) + ")"


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


# -- block_output: index into data, never call -----------------------------------------------
class _Rows:
    """A stream's ``rows``, read one row at a time from its spill file (the full list only on request)."""

    def __init__(self, output: Any) -> None:
        self.output = output

    def __len__(self) -> int:
        return self.output.num_rows

    def row(self, index: int) -> list[Any]:
        loaded = dict.get(self.output, "rows")
        if isinstance(loaded, list):
            return loaded[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        record = self.output.to_arrow().slice(index, 1).to_pylist()[0]
        return list(record.values())

    def all(self) -> list[list[Any]]:
        return self.output["rows"]


def _module(name: str) -> Any:
    """A library the value's type comes from, if it is loaded (never imported here)."""
    return sys.modules.get(name)


class _NoType:
    """Stands for a type whose module is not loaded: nothing is an instance of it."""


def _stream_types() -> tuple[type[StreamOutput], type[SourceOutput]]:
    """``(StreamOutput, SourceOutput)`` if ``outputs`` is loaded (else no value can be one): importing it
    here would load pyarrow into a run that has no source block (~0.1 s)."""
    outputs = sys.modules.get(__package__ + ".outputs")
    if outputs is None:  # _NoType stands in for both: isinstance() against it is always False
        return cast("tuple[type[StreamOutput], type[SourceOutput]]", (_NoType, _NoType))
    return outputs.StreamOutput, outputs.SourceOutput


def _is_index(step: Any) -> bool:
    return isinstance(step, int) or (isinstance(step, str) and step.lstrip("-").isdigit())


def _fields_of(value: Any) -> list[str] | None:
    """What a failed step could have named, for the error message."""
    StreamOutput = _stream_types()[0]

    if isinstance(value, (StreamOutput, _Rows)):
        return ["stream", "columns", "rows"] if isinstance(value, StreamOutput) else None
    if isinstance(value, Mapping):
        return [str(k) for k in list(value.keys())[:20]]
    named = getattr(type(value), "_fields", None) if isinstance(value, tuple) else None  # a namedtuple
    if named is not None:
        return list(named)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value)]
    pd, pa = _module("pandas"), _module("pyarrow")
    if pd is not None and isinstance(value, pd.DataFrame):
        return [str(c) for c in list(value.columns)[:20]]
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        return list(value.column_names)[:20]
    return None


def _step(value: Any, step: Any) -> Any:
    """One step of a ``block_output`` path; ``LookupError`` when ``value`` has no such field or item."""
    StreamOutput, SourceOutput = _stream_types()

    if isinstance(value, StreamOutput):  # the spec's dict: its three keys, rows read lazily
        if step == "rows":
            return _Rows(value)
        if step in ("stream", "columns"):
            return dict.__getitem__(value, step)
        raise KeyError(step)
    if isinstance(value, _Rows):
        if _is_index(step):
            return value.row(int(step))
        raise KeyError(step)
    if isinstance(value, Mapping):
        if step in value:
            return value[step]
        if _is_index(step) and int(step) in value:
            return value[int(step)]
        raise KeyError(step)
    if isinstance(value, SourceOutput) and isinstance(step, str) and not _is_index(step):
        return value.stream(step)  # KeyError when there is no such stream
    if isinstance(value, tuple) and isinstance(step, str) and step in getattr(type(value), "_fields", ()):
        return getattr(value, step)
    if isinstance(value, (list, tuple)):
        if _is_index(step):
            return value[int(step)]
        raise KeyError(step)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(step, str) and step in {f.name for f in dataclasses.fields(value)}:
            return getattr(value, step)
        raise KeyError(step)
    pd, pa, np = _module("pandas"), _module("pyarrow"), _module("numpy")
    if pd is not None and isinstance(value, pd.DataFrame):
        if step in value.columns:
            return value[step]
        if _is_index(step):
            row = value.iloc[int(step)]
            return dict(zip(value.columns, row.tolist()))
        raise KeyError(step)
    if pd is not None and isinstance(value, pd.Series):
        if not _is_index(step) and step in value.index:
            return value[step]
        if _is_index(step):
            return value.iloc[int(step)]
        raise KeyError(step)
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        if isinstance(step, str) and step in value.column_names:
            return value.column(step)
        if _is_index(step):
            index = int(step) + (value.num_rows if int(step) < 0 else 0)
            if not 0 <= index < value.num_rows:
                raise IndexError(step)
            return value.slice(index, 1).to_pylist()[0]  # the row as {column: value}
        raise KeyError(step)
    if pa is not None and isinstance(value, (pa.Array, pa.ChunkedArray)):
        if _is_index(step):
            index = int(step) + (len(value) if int(step) < 0 else 0)
            if not 0 <= index < len(value):
                raise IndexError(step)
            return value[index]
        raise KeyError(step)
    if np is not None and isinstance(value, np.ndarray):
        if _is_index(step):
            return value[int(step)]
        raise KeyError(step)
    raise KeyError(step)


def pick(value: Any, path: tuple[Any, ...], *, label: str, where: str | None = None) -> Any:
    """Follow a ``block_output`` path into ``value`` (data only) and return it as plain data."""
    where = where or "block_output(...)"
    for step in path:
        if isinstance(step, bool) or not isinstance(step, (str, int)):
            raise ConfigError(
                f"{where}: a path step must be a field name or an index, not {step!r}.",
                fix="e.g. block_output('creds', 'host') or block_output('b', 'column', 0).",
            )
        try:
            value = _step(value, step)
        except (LookupError, TypeError, ValueError):
            available = _fields_of(value)
            hint = f" It has: {', '.join(available)}." if available else ""
            if _is_index(step) and not isinstance(value, Mapping) and hasattr(value, "__len__"):
                count = len(value)
                hint = f" It has {count} item{'' if count == 1 else 's'}."
            raise ConfigError(f"{label} has no field {step!r}.{hint}", fix="pick a field that the upstream block returns.") from None
    return plain(value, where=where)


def plain(value: Any, *, where: str, limit: int = MAX_PLAIN_SIZE) -> Any:
    """A copy of ``value`` made of plain data only, or a ``NotPlain`` naming ``where``.

    Plain: str, int, float, bool, None, Decimal, date, datetime, time, timedelta,
    and lists and dicts of them (tuples become lists).  NumPy, pandas and Arrow
    scalars become their Python values, a pandas Series or an Arrow array a list,
    a stream output the spec's dict, a dataclass a dict; anything else is refused.
    """
    StreamOutput = _stream_types()[0]
    size = 0

    def grow(amount: int) -> None:
        nonlocal size
        size += amount
        if size > limit:
            raise NotPlain(
                f"{where} is too large for a template (more than {limit:,} characters and items).",
                fix="pick a smaller part with more path steps, e.g. block_output('b', 'column', 0).",
            )

    def refuse(item: Any, hint: str = "") -> NotPlain:
        return NotPlain(
            f"{where} is a {_type_name(item)}, which a template cannot use: a config value is {PLAIN_TYPES}.{hint}",
            fix="pick a field with more path steps (e.g. block_output('b', 'column', 0)), or return plain data from the upstream block.",
        )

    def convert(item: Any, depth: int) -> Any:
        if depth > MAX_PLAIN_DEPTH:
            raise NotPlain(f"{where} is nested more than {MAX_PLAIN_DEPTH} levels deep.", fix="pick a part of it.")
        kind = type(item)
        if item is None or kind is bool or kind is float:
            grow(1)
            return item
        if kind is str:
            grow(len(item) + 1)
            return item
        if kind is int:
            if item.bit_length() > 3322:
                raise NotPlain(f"{where} is a number of more than 1,000 digits.", fix="pick a smaller number.")
            grow(1)
            return item
        np, pd, pa = _module("numpy"), _module("pandas"), _module("pyarrow")
        # missing values of pandas (NaT is a datetime, NA is not a bool)
        if pd is not None and (item is pd.NaT or item is pd.NA):
            grow(1)
            return None
        if isinstance(item, bool):
            return convert(bool(item), depth)
        if isinstance(item, str):
            return convert(str(item), depth)
        if isinstance(item, int):
            return convert(int(item), depth)
        if isinstance(item, float):
            return convert(float(item), depth)
        if isinstance(item, decimal.Decimal):
            if item.is_finite() and abs(item.adjusted()) > MAX_DECIMAL_EXPONENT:
                raise NotPlain(f"{where} is a decimal with an exponent beyond ±{MAX_DECIMAL_EXPONENT:,}.", fix="pick a smaller number.")
            grow(len(item.as_tuple().digits) + 1)
            return decimal.Decimal(item) if kind is not decimal.Decimal else item
        if isinstance(item, dt.datetime):
            grow(1)
            offset = item.utcoffset()
            tz = None if offset is None else (item.tzinfo if type(item.tzinfo) is dt.timezone else dt.timezone(offset))
            return dt.datetime(item.year, item.month, item.day, item.hour, item.minute, item.second, item.microsecond, tz, fold=item.fold)
        if isinstance(item, dt.date):
            grow(1)
            return dt.date(item.year, item.month, item.day)
        if isinstance(item, dt.time):
            grow(1)
            offset = item.utcoffset()
            tz = None if offset is None else dt.timezone(offset)
            return dt.time(item.hour, item.minute, item.second, item.microsecond, tz, fold=item.fold)
        if isinstance(item, dt.timedelta):
            grow(1)
            return dt.timedelta(days=item.days, seconds=item.seconds, microseconds=item.microseconds)
        uuid = _module("uuid")
        if uuid is not None and isinstance(item, uuid.UUID):
            return convert(str(item), depth)
        if isinstance(item, StreamOutput):
            grow(item.num_rows * max(len(item.schema), 1))
            return {
                "stream": convert(dict.__getitem__(item, "stream"), depth + 1),
                "columns": convert(dict.__getitem__(item, "columns"), depth + 1),
                "rows": convert(item["rows"], depth + 1),
            }
        if isinstance(item, _Rows):
            grow(len(item) * max(len(item.output.schema), 1))
            return convert(item.all(), depth)
        if isinstance(item, Mapping):
            grow(1)
            out = {}
            for key, val in item.items():
                key = convert(key, depth + 1)
                if isinstance(key, (list, dict)):
                    raise refuse(key, " (a mapping key must be text or a number)")
                out[key] = convert(val, depth + 1)
            return out
        if isinstance(item, (list, tuple)):
            grow(1 + len(item))
            return [convert(x, depth + 1) for x in item]
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            grow(1)
            return {f.name: convert(getattr(item, f.name), depth + 1) for f in dataclasses.fields(item)}
        if np is not None and isinstance(item, np.generic):
            return convert(item.item(), depth)
        if pd is not None and isinstance(item, pd.Series):
            grow(len(item))
            return [convert(x, depth + 1) for x in item.tolist()]
        if pd is not None and isinstance(item, pd.DataFrame):
            raise refuse(item, " Pick a column and a row: block_output('b', 'column', 0).")
        if pa is not None and isinstance(item, pa.Scalar):
            return convert(item.as_py(), depth)
        if pa is not None and isinstance(item, (pa.Array, pa.ChunkedArray)):
            grow(len(item))
            return [convert(x, depth + 1) for x in item.to_pylist()]
        if pa is not None and isinstance(item, (pa.Table, pa.RecordBatch)):
            raise refuse(item, " Pick a column and a row: block_output('b', 'column', 0).")
        if np is not None and isinstance(item, np.ndarray):
            grow(item.size)
            return convert(item.tolist(), depth)
        runtime = _module("jinja2.runtime")
        if runtime is not None and isinstance(item, runtime.Undefined):
            item._fail_with_undefined_error()  # the template's own error: undefined name, unsafe attribute
        raise refuse(item)

    return convert(value, 0)


# -- the template functions ------------------------------------------------------------------
def _name_argument(function: str, args: tuple[Any, ...], *, takes_default: bool) -> tuple[str, Any]:
    usage = f"{function}('NAME'" + (", DEFAULT)" if takes_default else ")")
    if not args:
        raise ConfigError(f"{function}() needs a name: {usage}.", fix=f"write {usage}.")
    if len(args) > (2 if takes_default else 1):
        raise ConfigError(
            f"{function}() takes {'a name and a default' if takes_default else 'one name'}, not {len(args)} arguments.",
            fix=f"write {usage}.",
        )
    name = args[0]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{function}() needs a name as text, not {name!r}.", fix=f"write {usage} with the name in quotes.")
    return name, (args[1] if len(args) > 1 else _MISSING)


class Interpolator:
    """Renders templates with env_var, secret, variables and block_output."""

    def __init__(
        self,
        *,
        variables: Mapping[str, Any],
        inputs: Mapping[str, Any],
        upstream: list[str],
        secrets: SecretStore | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.variables = variables
        self.inputs = inputs
        self.upstream = upstream
        self.secrets = secrets or SecretStore()
        self.env = env if env is not None else os.environ
        self.used_secrets: list[str] = []
        self._environment: Any = None
        self._templates: dict[str, Any] = {}
        self._budget: Any = None  # one block's rendering: template_bounds.Budget, from its first template on
        self._rendering = 0

    @property
    def _jinja(self) -> Any:
        """The sandboxed Jinja2 environment, made on the first template: most blocks have none,
        and importing Jinja2 is 15-45 ms of every CLI run's start-up."""
        if self._environment is None:
            from .sandbox import Sandbox

            self._environment = Sandbox(self._functions())
        return self._environment

    def _functions(self) -> dict[str, Callable[..., Any]]:
        def env_var(*args: Any) -> Any:
            name, default = _name_argument("env_var", args, takes_default=True)
            if name in self.env:
                return self.env[name]
            if default is not _MISSING:
                return default
            raise ConfigError(f"environment variable {name!r} is not set.", fix=f"export {name}=... before starting Jupyter or the CLI.")

        def secret(*args: Any) -> str:
            name, _ = _name_argument("secret", args, takes_default=False)
            value = self.secrets.get(name)
            self.used_secrets.append(value)
            return value

        def variables(*args: Any) -> Any:
            name, default = _name_argument("variables", args, takes_default=True)
            if name in self.variables:
                return plain(self.variables[name], where=f"variables({name!r})")
            if default is not _MISSING:
                return default
            raise ConfigError(
                f"variable {name!r} is not defined.", fix=f"pass it with -p {name}=VALUE (or give variables('{name}', default))."
            )

        def block_output(*args: Any) -> Any:
            if not args or not isinstance(args[0], str):
                raise ConfigError(
                    "block_output() needs an upstream block's name: block_output('block', 'field', ...)."
                    if not args
                    else f"block_output() needs an upstream block's name as text, not {args[0]!r}.",
                    fix="write block_output('block', 'field', ...) with the block's name in quotes.",
                )
            name, path = args[0], args[1:]
            if name not in self.inputs:
                if name in self.upstream:
                    raise ConfigError(
                        f"upstream block {name!r} is not an input of this block.",
                        fix=f"set `upstream: {{{name}: {{use_output_as_input: true}}}}` in the cell.",
                    )
                raise ConfigError(f"block_output({name!r}): {name!r} is not an upstream block.", fix=f"add it with --upstream {name}.")
            return pick(self.inputs[name], path, label=f"the output of block {name!r}", where=_where(name, path))

        return {"env_var": env_var, "secret": secret, "variables": variables, "block_output": block_output}

    # -- rendering ----------------------------------------------------------------------------
    def render(self, value: Any, field: str = "") -> Any:
        """Render every string inside ``value`` (dicts and lists recursively).

        One call is one block's rendering: the sandbox's time limit and total
        size bound (``template_bounds.TIME_LIMIT``, ``MAX_BLOCK_SIZE``) cover all of it.
        """
        self._rendering += 1
        try:
            return self._render(value, field)
        finally:
            self._rendering -= 1
            if not self._rendering:
                self._budget = None

    def _render(self, value: Any, field: str) -> Any:
        if isinstance(value, str):
            return self.render_value(value, field=field)
        if isinstance(value, dict):
            return {k: self._render(v, f"{field}.{k}" if field else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, f"{field}[{i}]") for i, v in enumerate(value)]
        return value

    def render_value(self, text: str, *, field: str = "") -> Any:
        if "{{" not in text and "{%" not in text:
            return text
        from jinja2 import TemplateSyntaxError, UndefinedError
        from jinja2.sandbox import SecurityError

        from .template_bounds import Budget, TemplateLimit, measure

        env = self._jinja
        if self._budget is None or not self._rendering:
            self._budget = Budget()
        env.budget = self._budget
        env.budget.value_written = 0
        shown = text.strip() if len(text.strip()) <= 80 else text.strip()[:77] + "..."
        where = f"config field {field!r}: " if field else ""
        try:
            env.budget.tick()
            value = self._evaluate(env, text)
            if type(value) is not str:
                value = plain(value, where=f"the value of {shown!r}")
            env.budget.add_value(measure(value)[0])
            return value
        except DIError as exc:
            raise ConfigError(f"{where}{exc.message}", block=exc.block, stream=exc.stream, fix=exc.fix) from None
        except UndefinedError as exc:
            problem = str(exc.message)
            if "is unsafe" in problem:
                raise ConfigError(_sentence(f"{where}{shown!r} is not allowed: {problem}"), fix=FUNCTIONS_FIX) from None
            raise ConfigError(_sentence(f"{where}cannot render {shown!r}: {problem}"), fix=FUNCTIONS_FIX) from None
        except TemplateSyntaxError as exc:
            raise ConfigError(
                _sentence(f"{where}cannot render {shown!r}: {exc.message} (line {exc.lineno})"), fix="check the {{ ... }} expression."
            ) from None
        except SecurityError as exc:
            raise ConfigError(_sentence(f"{where}{shown!r} is not allowed: {exc}"), fix=FUNCTIONS_FIX) from None
        except TemplateLimit as exc:
            from .template_bounds import BOUNDS_FIX

            raise ConfigError(_sentence(f"{where}{shown!r} goes past the template sandbox's bounds: {exc}."), fix=BOUNDS_FIX) from None
        except RecursionError:
            raise ConfigError(
                _sentence(f"{where}cannot render {shown!r}: it nests or recurses too deeply."),
                fix="check the nesting of the expression, the macros and recursive loops.",
            ) from None
        except Exception as exc:  # noqa: BLE001 - the user's expression raised: 1/0, 'a' + 1, ...
            raise ConfigError(
                _sentence(f"{where}cannot render {shown!r}: {type(exc).__name__}: {exc}"), fix="check the {{ ... }} expression."
            ) from None

    def _evaluate(self, env: Any, text: str) -> Any:
        from jinja2 import StrictUndefined

        compiled = self._templates.get(text)
        if compiled is None:
            match = _SINGLE_EXPRESSION.match(text)
            if match and "}}" not in match.group("expr"):
                compiled = ("expression", env.compile_expression(match.group("expr"), undefined_to_none=False))
            else:
                compiled = ("template", env.from_string(text))
            self._templates[text] = compiled
        kind, template = compiled
        if kind == "expression":
            value = template()
            if isinstance(value, StrictUndefined):
                str(value)
            return value.strip() if isinstance(value, str) else value
        return "".join(template.generate()).strip()
