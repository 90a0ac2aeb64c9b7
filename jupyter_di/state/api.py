"""A small Python API over a notebook's bookmarks (the same data as `jupyter-di state`).

from jupyter_di.state import api
api.get_bookmark("pipeline.ipynb", "shop", "orders")        # {"updated_at": "..."}
api.set_bookmark("pipeline.ipynb", "shop", "orders", updated_at="2024-01-01T00:00:00+00:00")
api.reset("pipeline.ipynb", "shop")                           # next run: full sync
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

from .store import StateStore


def state_path_for(notebook: Path | str, override: str | os.PathLike[str] | None = None) -> Path:
    """Where a notebook's state lives: the override, $JUPYTER_DI_STATE_PATH, or beside the notebook."""
    if override:
        return Path(override)
    env = os.environ.get("JUPYTER_DI_STATE_PATH")
    if env:
        return Path(env)
    return Path(notebook).resolve().parent / ".jupyter_di" / "state.sqlite"


_PIPELINE_NAME_LINE = re.compile(r"^%config\s+JupyterDI\.pipeline_name\s*=\s*(?P<value>.+)$")


def pipeline_name(notebook: Path | str) -> str:
    """The name a notebook's state is kept under: its ``%config JupyterDI.pipeline_name = "..."`` line
    (the kernel honours it too, so the CLI and the kernel agree), else its file name without extension."""
    path = Path(notebook)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return path.stem
    for cell in data.get("cells", []) if isinstance(data, dict) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        for line in ("".join(source) if isinstance(source, list) else str(source)).splitlines():
            match = _PIPELINE_NAME_LINE.match(line.strip())
            if match:
                try:
                    value = ast.literal_eval(match["value"].strip())
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, str) and value:
                    return value
    return path.stem


def _store(notebook: Path | str, state_path: str | None) -> tuple[StateStore, str]:
    return StateStore(state_path_for(notebook, state_path)), pipeline_name(notebook)


def bookmarks(notebook: Path | str, block: str | None = None, *, state_path: str | None = None) -> dict[str, dict[str, Any] | None]:
    """``{"block.stream": bookmark}`` for every stream with saved state."""
    store, name = _store(notebook, state_path)
    return {f"{b}.{s}": v.get("bookmark") for b, s, v in store.items(name, block)}


def get_bookmark(notebook: Path | str, block: str, stream: str, *, state_path: str | None = None) -> dict[str, Any] | None:
    store, name = _store(notebook, state_path)
    return (store.get(name, block, stream) or {}).get("bookmark")


def set_bookmark(notebook: Path | str, block: str, stream: str, *, state_path: str | None = None, **values: Any) -> None:
    """Pin a bookmark: the next run reads from it (checked against the column types), and later runs move on.

    The source's own saved state (a Singer tap's last STATE) is kept: the next read writes the pinned
    value into it, so the tap's other bookmarks survive the pin."""
    store, name = _store(notebook, state_path)
    store.set(name, block, stream, pinned_state(store.get(name, block, stream), values))


def pinned_state(previous: dict[str, Any] | None, bookmark: dict[str, Any]) -> dict[str, Any]:
    """The state that pins ``bookmark``, keeping ``source_state`` from the ``previous`` state."""
    state: dict[str, Any] = {"bookmark": bookmark, "pinned": True}
    if (previous or {}).get("source_state") is not None:
        state["source_state"] = previous["source_state"]  # type: ignore[index]
    return state


def reset(notebook: Path | str, block: str | None = None, stream: str | None = None, *, state_path: str | None = None) -> int:
    """Forget state; the next run of those streams is a full sync.  Returns how many streams were reset."""
    store, name = _store(notebook, state_path)
    return store.reset(name, block, stream)
