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


SETTINGS = Settings()


def current_preview_rows() -> int:
    return SETTINGS.preview_rows
