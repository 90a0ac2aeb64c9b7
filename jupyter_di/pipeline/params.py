"""Parsing ``-p key=value`` variables and ``--bookmark BLOCK.STREAM.COLUMN=VALUE`` overrides.

Shared by ``%di_run`` and ``jupyter-di run`` so both accept exactly the same text.
Values are JSON when they parse as JSON (numbers, booleans, quoted strings),
else plain strings; nothing is evaluated as code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError


def parse_value(text: str) -> Any:
    """JSON when it parses as JSON, else the text.  A number too long for Python's int parsing
    (over 4300 digits) or beyond a float's range stays text: the checks that know the column's type
    then say what is wrong with it, instead of a bare ValueError."""
    try:
        value = json.loads(text)
    except ValueError:  # JSONDecodeError, and "Exceeds the limit (4300 digits)"
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p {item!r} is not key=value.", fix="write -p name=value, e.g. -p start_date=2024-01-01.")
        params[key.strip()] = parse_value(value)
    return params


def parse_bookmarks(items: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``shop.orders.updated_at=2024-01-01`` -> {("shop", "orders"): {"updated_at": "2024-01-01"}}.

    The stream part may itself contain dots (``public.orders``): the block is
    the first segment and the column the last.
    """
    overrides: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items or []:
        target, sep, value = item.partition("=")
        parts = target.strip().split(".")
        if not sep or len(parts) < 3 or not all(parts):
            raise ConfigError(
                f"--bookmark {item!r} is not BLOCK.STREAM.COLUMN=VALUE.",
                fix="e.g. --bookmark shop.orders.updated_at=2024-01-01T00:00:00+00:00",
            )
        block, column, stream = parts[0], parts[-1], ".".join(parts[1:-1])
        overrides.setdefault((block, stream), {})[column] = parse_value(value)
    return overrides
