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
times, lists and dicts — never an object with methods to call (``block_output.py``).
The sandbox itself is ``sandbox.py`` (what templates may call) and
``template_bounds.py`` (how big and how long); every problem is one ``ConfigError`` naming the config field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DIError
from ..secrets import SecretStore
from .block_output import describe_path, pick, plain, sentence

if TYPE_CHECKING:  # imported lazily at run time: see _stream_types
    pass

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
_MISSING = object()
FUNCTIONS_FIX = (
    "templates may use env_var('NAME'), secret('name'), variables('name'), block_output('block', 'field', ...) and plain values."
)


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
            return pick(self.inputs[name], path, label=f"the output of block {name!r}", where=describe_path(name, path))

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
                raise ConfigError(sentence(f"{where}{shown!r} is not allowed: {problem}"), fix=FUNCTIONS_FIX) from None
            raise ConfigError(sentence(f"{where}cannot render {shown!r}: {problem}"), fix=FUNCTIONS_FIX) from None
        except TemplateSyntaxError as exc:
            raise ConfigError(
                sentence(f"{where}cannot render {shown!r}: {exc.message} (line {exc.lineno})"), fix="check the {{ ... }} expression."
            ) from None
        except SecurityError as exc:
            raise ConfigError(sentence(f"{where}{shown!r} is not allowed: {exc}"), fix=FUNCTIONS_FIX) from None
        except TemplateLimit as exc:
            from .template_bounds import BOUNDS_FIX

            raise ConfigError(sentence(f"{where}{shown!r} goes past the template sandbox's bounds: {exc}."), fix=BOUNDS_FIX) from None
        except RecursionError:
            raise ConfigError(
                sentence(f"{where}cannot render {shown!r}: it nests or recurses too deeply."),
                fix="check the nesting of the expression, the macros and recursive loops.",
            ) from None
        except Exception as exc:  # noqa: BLE001 - the user's expression raised: 1/0, 'a' + 1, ...
            raise ConfigError(
                sentence(f"{where}cannot render {shown!r}: {type(exc).__name__}: {exc}"), fix="check the {{ ... }} expression."
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
