"""jupyter-di: data integration sources and destinations as blocks of a notebook pipeline.

``%load_ext jupyter_di`` registers the magics.  Everything below
``jupyter_di.notebook`` works without IPython, so the CLI and the kernel share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # IPython is imported only by the notebook layer at run time
    from IPython.core.interactiveshell import InteractiveShell

__version__ = "0.1.0"


def load_ipython_extension(ipython: InteractiveShell) -> None:
    from .notebook.extension import load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    from .notebook.extension import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-di"}]
