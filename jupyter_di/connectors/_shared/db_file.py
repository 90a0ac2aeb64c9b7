"""The database file an embedded-database connector (DuckDB, SQLite) is configured with, and the
one line of a driver error that its messages show."""

from __future__ import annotations

import os
from typing import Any

from ...errors import ConfigError


def resolve_path(config: dict[str, Any], *, must_exist: bool, system: str) -> str:
    """The absolute database path from ``config['path']`` (relative to the working directory: the notebook's folder in every client).

    A source needs the file itself; a destination needs its folder (the file is
    created).  Either missing is a ConfigError naming the path, never a new
    empty database created by accident.
    """
    raw = config.get("path")
    if not raw or not isinstance(raw, (str, os.PathLike)):
        raise ConfigError(f"the {system} connector needs a `path`.", fix=f"set config.path to the {system} database file.")
    path = os.path.abspath(os.path.expanduser(os.fspath(raw)))
    if must_exist and not os.path.isfile(path):
        raise ConfigError(
            f"the {system} database file {path} does not exist.",
            fix="check config.path (relative paths start at the notebook's folder).",
        )
    folder = os.path.dirname(path)
    if not must_exist and not os.path.isdir(folder):
        raise ConfigError(
            f"the folder of the {system} database {path} does not exist.",
            fix=f"create the folder {folder} or fix config.path.",
        )
    return path


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
