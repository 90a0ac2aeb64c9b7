"""Process-wide settings shared by the kernel and the CLI (no IPython here).

The notebook layer's traitlets ``Configurable`` (``%config JupyterDI.preview_rows = 20``)
writes into this object; the CLI sets it from flags.  Why a plain object: code
below the notebook layer must not import IPython, yet previews and pools need
the user's settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    preview_rows: int = 10
    max_workers: int = 4
    max_parallel_streams: int = 4
    batch_size: int = 65_536
    state_path: str | None = None
    executor: str = "local"
    """``local`` (threads in this process) or ``dask`` (``pipeline/dask_executor.py``)."""
    dask_scheduler: str | None = None
    """``tcp://HOST:PORT`` of an existing Dask scheduler; None starts a LocalCluster on 127.0.0.1."""
    dask_workers: int = 2
    """Worker processes of the LocalCluster the Dask executor starts."""
    spill_url: str | None = None
    """Where large block outputs go between Dask workers that share no folder (a path or an fsspec URL)."""
    dask_inline_bytes: int = 64 * 1024 * 1024
    """Outputs up to this size move inside Dask's task results (Arrow) rather than through ``spill_url``."""


SETTINGS = Settings()


def current_preview_rows() -> int:
    return SETTINGS.preview_rows
