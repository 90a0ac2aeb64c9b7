"""The ``jupyter-di target`` and ``jupyter-di tap`` commands: config file in, Singer messages through.

Why a module of its own: both commands read a connector's config from a file that may hold secrets
(a password, a token), so loading it, checking it against the connector's fields and registering its
secret values for masking happen in one place before anything connects; no message ever shows the
file's contents (``redaction.py`` masks the secret fields' values in every error).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..connectors import registry
from ..connectors.config_check import check_config
from ..errors import ConfigError
from ..redaction import Redactor, block_secrets, redact_exception


def load_config(connector: str, path: Path) -> dict[str, Any]:
    """The connector's config from a JSON file, checked and with its secrets registered for masking."""
    spec = registry.get(connector)
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {str(path)!r}: {exc.strerror}.", fix="give the path of a JSON file.") from None
    except ValueError as exc:
        where = f"line {exc.lineno}" if hasattr(exc, "lineno") else "it"
        raise ConfigError(f"the config file {str(path)!r} is not JSON ({where}).", fix="write the config as one JSON object.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the config file {str(path)!r} must hold a JSON object.", fix="write the config as one JSON object.")
    block_secrets(raw, spec.secret_fields())  # remembered: every message of this process masks them
    return check_config(spec, raw)


def _redactor(connector: str, config: dict[str, Any]) -> Redactor:
    return Redactor(block_secrets(config, registry.get(connector).secret_fields()))


def target(name: str, config_path: Path, *, validate_records: bool = False, no_new_columns: bool = False) -> int:
    from .singer_target import SingerTarget, TargetOptions

    config = load_config(name, config_path)
    options = TargetOptions(validate_records=validate_records, auto_add_new_fields=not no_new_columns)
    singer_target = SingerTarget(name, config, sys.stdout, options)
    try:
        singer_target.run(iter(sys.stdin.buffer))
    except Exception as exc:
        raise redact_exception(exc, _redactor(name, config)) from None
    mask = _redactor(name, config)
    for line in singer_target.report:  # e.g. rows the destination rejected within its allowance
        print(f"jupyter-di target: stream {line['stream']!r}: {mask(line['message'])}", file=sys.stderr)
    return 3 if any(line.get("skipped") for line in singer_target.report) else 0


def tap(name: str, config_path: Path, *, discover: bool, catalog_path: Path | None, state_path: Path | None) -> int:
    from . import singer_tap

    config = load_config(name, config_path)
    try:
        if discover:
            singer_tap.discover(name, config, sys.stdout)
            return 0
        catalog = _json_file(catalog_path, "catalog") if catalog_path else None
        state = _json_file(state_path, "state") if state_path else None
        singer_tap.sync(name, config, sys.stdout, catalog, state)
    except Exception as exc:
        raise redact_exception(exc, _redactor(name, config)) from None
    return 0


def _json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8") or "null")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the {what} file {str(path)!r} ({type(exc).__name__}).", fix=f"give a JSON {what} file.") from None
