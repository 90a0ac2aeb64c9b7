"""Checking a block's rendered ``config:`` against its connector's declared fields.

Why before anything connects: a typo (``shema: x``) was ignored and the run wrote
into ``public``; ``port: 56100.7`` was cut to 56100; ``timeout: abc`` or
``port: .inf`` surfaced as raw ``ValueError``/``OverflowError`` deep in a driver.
Each connector declares its fields once (``ConfigField``: type, required,
range, choices); this module turns every mismatch into one ``ConfigError``
naming the field and what to write, and returns the config with values of the
declared types (a template renders ``"5432"`` as text; the field says integer).
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from ..errors import ConfigError
from .base import ConfigField, ConnectorSpec

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def check_config(spec: ConnectorSpec, config: Any, *, block: str | None = None) -> dict[str, Any]:
    """The config with each value of its field's type; one clear error for the first problem."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"`config:` must be a mapping of {spec.name} settings, not {type(config).__name__}.", block=block)
    fields = {f.name: f for f in spec.config_schema}
    if not fields:
        return dict(config)  # a plug-in that declares no fields: nothing to check against
    out: dict[str, Any] = {}
    for key, value in config.items():
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            raise ConfigError(
                f"unknown config key {_show(key)} for {spec.name}.",
                block=block,
                fix=f"did you mean {close[0]!r}?" if close else f"the keys are: {', '.join(fields)} (`jupyter-di connectors` lists them).",
            )
        out[key] = value if value is None else _typed(field, value, spec.name, block)
    missing = [f.name for f in spec.config_schema if f.required and out.get(f.name) in (None, "")]
    if missing:
        raise ConfigError(
            f"config {', '.join(repr(m) for m in missing)} {'is' if len(missing) == 1 else 'are'} required for {spec.name}.",
            block=block,
            fix=f"add {missing[0]}: ... under `config:`.",
        )
    for connector in (spec.source, spec.destination):
        extra = getattr(connector, "check_config", None)
        if extra is not None:
            try:
                extra(out)
            except ConfigError as exc:
                raise exc.with_context(block=block) from None
    return out


def _show(value: Any) -> str:
    """A value as the user wrote it, cut short: a 5,000-digit port must not flood the message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _typed(field: ConfigField, value: Any, connector: str, block: str | None) -> Any:
    def bad(what: str, fix: str) -> ConfigError:
        return ConfigError(f"config {field.name!r} of {connector} {what} (got {_show(value)}).", block=block, fix=fix)

    kind = field.type
    if kind == "integer":
        number = _number(value)
        if number is None or not math.isfinite(number) or number != int(number):
            raise bad("must be a whole number", f"write it like {field.name}: {field.default if field.default is not None else 10}.")
        value = int(number)
    elif kind == "number":
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise bad("must be a number", f"write it like {field.name}: {field.default if field.default is not None else 30}.")
        value = number
    elif kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
        elif not isinstance(value, bool):
            raise bad("must be true or false", f"write {field.name}: true or {field.name}: false.")
    elif kind in ("string", "path"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            hint = " (YAML reads yes/no/on/off as booleans: quote the value)" if isinstance(value, bool) else ""
            raise bad(f"must be text{hint}", f'write it as text, e.g. {field.name}: "...".')
        if isinstance(value, float) and not math.isfinite(value):
            raise bad("must be text", f'quote it: {field.name}: "...".')
        value = str(value)
        if "\x00" in value:
            raise bad("contains a NUL character", "remove it.")
    elif kind == "object":
        if not isinstance(value, dict):
            raise bad("must be a mapping", f"write it as {field.name}: {{key: value}}.")
    elif kind == "array":
        if not isinstance(value, list):
            raise bad("must be a list", f"write it as {field.name}: [a, b].")
    if field.choices and value not in field.choices:
        raise bad(f"must be one of {', '.join(map(str, field.choices))}", f"pick one of: {', '.join(map(str, field.choices))}.")
    if field.minimum is not None and value < field.minimum:
        raise bad(f"must be at least {_plain(field.minimum)}", f"use a value from {_range(field)}.")
    if field.maximum is not None and value > field.maximum:
        raise bad(f"must be at most {_plain(field.maximum)}", f"use a value from {_range(field)}.")
    return value


def _number(value: Any) -> float | None:
    """A YAML or rendered-template value as a float; None when it is not a number (booleans are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            return None
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _range(field: ConfigField) -> str:
    low = _plain(field.minimum) if field.minimum is not None else "..."
    high = _plain(field.maximum) if field.maximum is not None else "..."
    return f"{low} to {high}"


def int_option(config: dict[str, Any], key: str, default: int, system: str) -> int:
    """A whole-number option read from a config that may hold text (an env var or a secret rendered into YAML).

    Connectors call it for the values their own code needs as ``int`` (ports, sizes); ``system`` names the
    connector in the message (``PostgreSQL config port must be a whole number``)."""
    value = config.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{system} config {key} must be a whole number, got {value!r}.", fix=f"set {key} to a number.") from None
