"""Rendering ``{{ ... }}`` in a block's YAML values with a sandboxed Jinja2.

Why per value rather than the whole text: a password with a colon or a quote
rendered into raw YAML text would change the YAML's structure.  We parse the
YAML first and render each string that holds a template.  A value that is
exactly one expression keeps its native type (``port: "{{ block_output('c', 'port') }}"``
gives an int).  Nothing is ever passed to exec or eval: field access in
``block_output`` is by key, attribute or index, never by code.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from ..secrets import SecretStore

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
_MISSING = object()


def pick(value: Any, path: tuple[Any, ...], *, label: str) -> Any:
    """Follow keys / attributes / indexes into ``value`` (a safe ``parse=``)."""
    for step in path:
        if isinstance(value, Mapping) and step in value:
            value = value[step]
            continue
        if isinstance(step, int) or (isinstance(step, str) and step.lstrip("-").isdigit()):
            try:
                value = value[int(step)]
                continue
            except (IndexError, KeyError, TypeError):
                pass
        if isinstance(step, str) and not step.startswith("_") and hasattr(value, step):
            value = getattr(value, step)
            continue
        available = list(value.keys())[:20] if isinstance(value, Mapping) else None
        hint = f" It has: {', '.join(map(str, available))}." if available else ""
        raise ConfigError(f"{label} has no field {step!r}.{hint}", fix="pick a field that the upstream block returns.")
    return value


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

    @property
    def _jinja(self) -> Any:
        """The sandboxed Jinja2 environment, made on the first template: most blocks have none,
        and importing Jinja2 is 15-45 ms of every CLI run's start-up."""
        if self._environment is None:
            from jinja2 import StrictUndefined
            from jinja2.sandbox import SandboxedEnvironment

            self._environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
            self._environment.globals.update(self._functions())
        return self._environment

    def _functions(self) -> dict[str, Callable[..., Any]]:
        def env_var(name: str, default: Any = _MISSING) -> Any:
            if name in self.env:
                return self.env[name]
            if default is not _MISSING:
                return default
            raise ConfigError(f"environment variable {name!r} is not set.", fix=f"export {name}=... before starting Jupyter or the CLI.")

        def secret(name: str) -> str:
            value = self.secrets.get(name)
            self.used_secrets.append(value)
            return value

        def variables(name: str, default: Any = _MISSING) -> Any:
            if name in self.variables:
                return self.variables[name]
            if default is not _MISSING:
                return default
            raise ConfigError(f"variable {name!r} is not defined.", fix=f"pass it with -p {name}=VALUE (or give variables('{name}', default)).")

        def block_output(name: str, *path: Any) -> Any:
            if name not in self.inputs:
                if name in self.upstream:
                    raise ConfigError(
                        f"upstream block {name!r} is not an input of this block.",
                        fix=f"set `upstream: {{{name}: {{use_output_as_input: true}}}}` in the cell.",
                    )
                raise ConfigError(f"block_output({name!r}): {name!r} is not an upstream block.", fix=f"add it with --upstream {name}.")
            return pick(self.inputs[name], path, label=f"the output of block {name!r}")

        return {"env_var": env_var, "secret": secret, "variables": variables, "block_output": block_output}

    def render_value(self, text: str) -> Any:
        if "{{" not in text and "{%" not in text:
            return text
        from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
        from jinja2.sandbox import SecurityError

        try:
            match = _SINGLE_EXPRESSION.match(text)
            if match and "}}" not in match.group("expr"):
                value = self._jinja.compile_expression(match.group("expr"), undefined_to_none=False)()
                if isinstance(value, StrictUndefined):
                    str(value)
                return value.strip() if isinstance(value, str) else value
            return self._jinja.from_string(text).render().strip()
        except ConfigError:
            raise
        except UndefinedError as exc:
            raise ConfigError(f"undefined name in {text.strip()!r}: {exc.message}", fix="use env_var(), secret(), variables() or block_output().") from None
        except (TemplateSyntaxError, SecurityError) as exc:
            raise ConfigError(f"cannot render {text.strip()!r}: {exc}", fix="check the {{ ... }} expression.") from None

    def render(self, value: Any) -> Any:
        """Render every string inside ``value`` (dicts and lists recursively)."""
        if isinstance(value, str):
            return self.render_value(value)
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value
