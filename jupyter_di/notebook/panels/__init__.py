"""Interactive panels for source and destination blocks (issue 6).

Running a ``%%di_source`` / ``%%di_destination`` cell shows a panel whose
edits land in the cell's YAML (see docs/panels.md).  Modules, one section each:
``credentials``, ``upstream``, ``streams`` (select + overview with bulk edit),
``stream_detail``, ``columns`` (schema properties), ``sample``, ``bookmarks``;
``editor`` (the model every section edits), ``writeback`` (cell rewrite now or
on the next run), ``catalog_cache``, ``jobs`` (background actions),
``table`` (the anywidget table), ``panel`` (assembly), ``readonly`` (Python
blocks) and ``manager`` (what the kernel session calls).
"""

from .editor import BlockEditor, SaveResult
from .manager import PanelManager
from .panel import BlockPanel
from .writeback import APPLIED, PENDING, WriteBack

__all__ = ["APPLIED", "PENDING", "BlockEditor", "BlockPanel", "PanelManager", "SaveResult", "WriteBack"]
