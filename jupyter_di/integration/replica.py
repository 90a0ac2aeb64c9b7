"""The body a replica block runs: its original's, with a YAML override merged over it.

Why merge parsed YAML and not text: a replica says only what differs
(``config: {database: tenant_b}``), so editing the original changes every
replica.  The rules are the ones of most config tools (Helm values, Kustomize
patches): mappings merge key by key, at every depth; anything else (a list, a
scalar, ``null``) replaces the original's value.  So a replica syncs a subset
of streams by setting ``selected: false`` on the others, keeping their
settings; ``streams: [orders]`` (a list) replaces the original's streams.

A Python block's code is not merged: a replica of one runs the original's code
unchanged, with its own name, upstream blocks and state, and its body must be
empty.  Templates are kept as text and rendered when the replica runs, like the
original's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import ConfigError
from . import safe_yaml
from .di_config import _Dumper  # the cells' canonical YAML layout (what panels write)


def merge(base: Any, override: Any) -> Any:
    """``override`` deep-merged over ``base`` (neither is changed)."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


def difference(edited: Any, base: Any) -> Any:
    """The smallest override that, merged over ``base``, gives ``edited`` (what a panel writes back).

    A key the edit removed becomes ``null``: merging cannot delete a key, and every setting
    treats a missing key and ``null`` alike.
    """
    if not (isinstance(edited, Mapping) and isinstance(base, Mapping)):
        return edited
    out: dict[str, Any] = {}
    for key, value in edited.items():
        if key not in base:
            out[key] = value
        elif isinstance(value, Mapping) and isinstance(base[key], Mapping):
            inner = difference(value, base[key])
            if inner:
                out[key] = inner
        elif value != base[key]:
            out[key] = value
    for key in base:
        if key not in edited and base[key] is not None:
            out[key] = None
    return out


def has_code(body: str) -> bool:
    """Whether a Python body holds more than blank lines and comments."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines())


def _parse(text: str, *, block: str, whose: str) -> dict[str, Any]:
    data = safe_yaml.load_cell(text, block=block, whose=whose) if text.strip() else {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{whose} YAML must be a mapping (keys like `config:` and `streams:`).", block=block)
    return data


def replica_body(original: str, override: str, *, lang: str, block: str, other: str) -> str:
    """What replica ``block`` of ``other`` runs: ``other``'s body, with ``override`` merged over it."""
    if lang == "python":
        if has_code(override):
            raise ConfigError(
                f"a replica of the Python block {other!r} cannot change its code.",
                block=block,
                fix=f"leave this cell's body empty (it runs {other!r}'s code), or drop --replicate and write the block's own code.",
            )
        return original
    changes = _parse(override, block=block, whose="the replica's override")
    if not changes:
        return original  # verbatim: comments and layout of the original stay
    base = _parse(original, block=block, whose=f"the replicated block {other!r}'s")
    return dump_yaml(merge(base, changes))


def dump_yaml(data: Mapping[str, Any]) -> str:
    """A cell body in the canonical layout (block mappings, short lists inline, templates quoted)."""
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
