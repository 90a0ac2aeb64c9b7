"""The Singer adapter: any Singer tap is a jupyter-di source, any Singer target a destination.

Config (``SPEC.config_schema``): ``executable`` (path, or a name on PATH; give
the full path into the tap's own virtualenv), ``config`` (the object the
tap/target gets as its ``--config`` file), optional ``catalog`` (a Singer
catalog used instead of running ``--discover``, for taps whose discovery is
slow or missing), ``catalog_flag`` (``--properties`` for legacy taps) and
``full_table_activate_version``.

``read.py`` runs a tap, ``write.py`` feeds a target, ``process.py`` runs either (private config
file, masked stderr, clean kills), and ``state.py`` builds the ``--state`` a tap gets.  Singer
messages <-> Arrow (``_shared/singer_messages.py``) and a stream's evolving SCHEMA
(``_shared/singer_shape.py``) are shared with ``jupyter-di target`` and ``jupyter-di tap``.  Where Singer differs from the built-in connectors
is said in ``read.py`` and ``write.py``.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .config import CONFIG_SCHEMA
from .read import SingerSource
from .write import SingerDestination

SPEC = ConnectorSpec(
    name="singer",
    title="Singer tap / target",
    config_schema=CONFIG_SCHEMA,
    source=SingerSource,
    destination=SingerDestination,
    description="Runs any Singer tap as a source or any Singer target as a destination "
    "(each in its own virtualenv; give the executable's full path).",
)

__all__ = ["SPEC", "SingerSource", "SingerDestination"]
