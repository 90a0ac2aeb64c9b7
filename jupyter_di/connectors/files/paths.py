"""Where a files stream lives on disk, and the guarantee that it never escapes its folder.

Why a module of its own: a stream or table name comes from a source system or
a user's YAML, and file targets of other tools have written ``../escaped.csv``
outside their output folder.  Every path the files connector opens goes
through :func:`table_path`, which rejects separators, ``..``, NUL, absolute
names and anything that resolves (symlinks included) outside the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigError

FORMAT_EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}


def extension(fmt: str) -> str:
    """The file extension of a format, or a ConfigError listing the formats."""
    try:
        return FORMAT_EXTENSIONS[fmt]
    except KeyError:
        raise ConfigError(
            f"unknown file format {fmt!r}.",
            fix=f"set format to one of: {', '.join(FORMAT_EXTENSIONS)}.",
        ) from None


def root_folder(path: str | os.PathLike[str] | None, *, create: bool) -> Path:
    """The configured folder, resolved against the working directory (the notebook's folder in every client)."""
    if not path:
        raise ConfigError("the files connector needs a `path` (a folder).", fix="set config.path, e.g. `path: data/`.")
    root = Path(path).expanduser()
    if not root.is_absolute():
        root = Path.cwd() / root
    if create:
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise ConfigError(
            f"folder {str(root)!r} does not exist or is not a folder.",
            fix="create it or point config.path at an existing folder (a relative path starts at the notebook's folder).",
        )
    return root.resolve()


def table_path(root: Path, name: str, fmt: str) -> Path:
    """``<root>/<name>.<ext>``, or a ConfigError when ``name`` could leave ``root``."""
    ext = extension(fmt)
    bad = (
        not name
        or name in (".", "..")
        or ".." in name
        or "\x00" in name
        or "/" in name
        or "\\" in name
        or (os.sep in name)
        or (os.altsep is not None and os.altsep in name)
        or Path(name).is_absolute()
    )
    candidate = root / f"{name}{ext}"
    if not bad:
        try:
            bad = not candidate.resolve().is_relative_to(root)
        except (OSError, ValueError):
            bad = True
    if bad:
        raise ConfigError(
            f"stream/table name {name!r} is not a plain file name inside {str(root)!r}.",
            stream=name if "\x00" not in name else None,
            fix="use a name without path separators or '..' (set destination_table to rename it).",
        )
    return candidate
