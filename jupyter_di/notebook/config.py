"""User settings as a traitlets Configurable: ``%config JupyterDI.preview_rows = 20``.

Also read from IPython profiles (``c.JupyterDI.max_workers = 8``).  Every change
is mirrored into ``jupyter_di.settings.SETTINGS``, which the layers below read.
"""

from __future__ import annotations

from traitlets import Bool, Int, Unicode, observe
from traitlets.config import Configurable

from ..settings import SETTINGS

_MIRRORED = ("preview_rows", "max_workers", "max_parallel_streams", "batch_size", "state_path", "executor", "dask_scheduler", "spill_url")


class JupyterDI(Configurable):
    """jupyter-di settings for this kernel."""

    preview_rows = Int(10, help="Rows shown in a block output's DataFrame preview.").tag(config=True)
    max_workers = Int(4, help="Blocks that may run at once.").tag(config=True)
    max_parallel_streams = Int(4, help="Streams marked run_in_parallel that may run at once in one block.").tag(config=True)
    batch_size = Int(65_536, help="Rows per Arrow record batch read from a source.").tag(config=True)
    state_path = Unicode(None, allow_none=True, help="The bookmark state file (default .jupyter_di/state.sqlite beside the notebook).").tag(
        config=True
    )
    pipeline_name = Unicode(None, allow_none=True, help="The name state is kept under (default: the notebook's file name).").tag(
        config=True
    )
    executor = Unicode("local", help="Where blocks run: 'local' (threads in the kernel) or 'dask' (tasks on a Dask cluster).").tag(
        config=True
    )
    dask_scheduler = Unicode(None, allow_none=True, help="tcp://HOST:PORT of a Dask scheduler (default: a LocalCluster on 127.0.0.1).").tag(
        config=True
    )
    spill_url = Unicode(None, allow_none=True, help="Where large outputs go between Dask workers (a path or an fsspec URL).").tag(
        config=True
    )
    short_errors = Bool(True, help="Show one-line errors instead of tracebacks for errors a user can fix.").tag(config=True)

    def __init__(self, **kwargs) -> None:  # noqa: ANN003 - traitlets' own signature
        super().__init__(**kwargs)
        for name in _MIRRORED:
            setattr(SETTINGS, name, getattr(self, name))

    @observe(*_MIRRORED)
    def _mirror(self, change) -> None:  # noqa: ANN001
        setattr(SETTINGS, change["name"], change["new"])
