"""The Singer connector's config: the executable to run and the config object it gets."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ..base import ConfigField

CONFIG_SCHEMA = [
    ConfigField("executable", "path", required=True, description="Path of the tap/target executable (or a name on PATH)."),
    ConfigField(
        "config",
        "object",
        default={},
        secret=True,
        description="Object passed as the tap's/target's --config file. Values of keys named like "
        "password/secret/token/key/api are redacted from logs.",
    ),
    ConfigField("catalog", "object", description="Singer catalog to use instead of running --discover."),
    ConfigField("catalog_flag", "string", default="--catalog", description="'--properties' for legacy taps."),
    ConfigField(
        "full_table_activate_version",
        "boolean",
        default=True,
        description="FULL_TABLE writes send ACTIVATE_VERSION so the target retires older rows "
        "(deleted with the target's hard_delete: true).",
    ),
]


def user_config(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ConfigError(
            "the Singer connector's `config` must be an object (the tap's/target's config).",
            fix="write config: as a mapping of the tap's settings.",
        )
    return inner
