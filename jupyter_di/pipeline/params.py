"""Parsing ``-p key=value`` variables and ``--bookmark BLOCK.STREAM.COLUMN=VALUE`` overrides.

Shared by ``%di_run`` and ``jupyter-di run`` so both accept exactly the same text.
Values are JSON when they parse as JSON (numbers, booleans, quoted strings),
else plain strings; nothing is evaluated as code.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from ..errors import ConfigError


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


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
