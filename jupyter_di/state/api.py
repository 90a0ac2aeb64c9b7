"""A small Python API over a notebook's bookmarks (the same data as `jupyter-di state`).

    from jupyter_di.state import api
    api.get_bookmark("pipeline.ipynb", "shop", "orders")        # {"updated_at": "..."}
    api.set_bookmark("pipeline.ipynb", "shop", "orders", updated_at="2024-01-01T00:00:00+00:00")
    api.reset("pipeline.ipynb", "shop")                           # next run: full sync
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .store import StateStore


def state_path_for(notebook: Path | str, override: str | os.PathLike | None = None) -> Path:
    """Where a notebook's state lives: the override, $JUPYTER_DI_STATE_PATH, or beside the notebook."""
    if override:
        return Path(override)
    env = os.environ.get("JUPYTER_DI_STATE_PATH")
    if env:
        return Path(env)
    return Path(notebook).resolve().parent / ".jupyter_di" / "state.sqlite"


def _store(notebook: Path | str, state_path: str | None) -> tuple[StateStore, str]:
    return StateStore(state_path_for(notebook, state_path)), Path(notebook).stem


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
