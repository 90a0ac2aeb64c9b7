"""jupyter-di: data integration sources and destinations as blocks of a notebook pipeline.

``%load_ext jupyter_di`` registers the magics.  Everything below
``jupyter_di.notebook`` works without IPython, so the CLI and the kernel share it.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's own hook signature
    from .notebook.extension import load

    load(ipython)


def unload_ipython_extension(ipython) -> None:  # noqa: ANN001
    from .notebook.extension import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-di"}]
