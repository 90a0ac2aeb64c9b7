"""A source/destination block's panel: the sections assembled in tabs, wired to one editor.

Every edit goes through the ``BlockEditor`` (one write-back of canonical
YAML); the panel then refreshes the sections that show what changed.  The
panel is rebuilt from the cell's YAML each time the cell runs, so the cell,
not the widget state, is what persists.
"""

from __future__ import annotations

import html
from typing import Any, Protocol

import ipywidgets as widgets

from ...block_kind import BlockKind
from ...connectors import registry
from ...errors import DIError
from ...integration.di_config import DIConfig
from ...pipeline.block import Block
from ...redaction import redact
from .bookmarks import BookmarksSection
from .catalog_view import CatalogView
from .columns import ColumnsSection
from .conflicts import ConflictsSection
from .context import PanelContext
from .credentials import CredentialsSection
from .editor import BlockEditor, SaveResult
from .jobs import Jobs, Status
from .sample import SampleSection
from .stream_detail import StreamDetailSection
from .streams import StreamsSection
from .upstream import UpstreamSection

TITLES = ("Credentials", "Upstream", "Streams", "Stream detail", "Schema properties", "Sample data", "Bookmarks")
CONFLICTS_TITLE = "Schema conflicts"
"""A destination's tab after Schema properties: its streams against the tables they write (``conflicts.py``)."""

STYLE = (
    "<style>"
    ".jdi-panel .widget-tab > .lm-TabBar .lm-TabBar-content{flex-wrap:wrap}"
    ".jdi-panel .widget-tab > .lm-TabBar .lm-TabBar-tab{flex:0 0 auto;max-width:none;min-width:0}"
    ".jdi-panel .lm-TabBar-tabLabel{overflow:visible;text-overflow:clip}"
    ".jdi-panel .widget-button{width:auto;min-width:var(--jp-widgets-inline-width-short,148px)}"
    "</style>"
)
"""Labels are never cut ("Schema prope", "Discover strea…"): tabs as wide as their titles (wrapping
on a narrow page), buttons as wide as their text.  Shipped with the panel's header, so it works in
every client that shows widgets, with or without the lab extension."""


class _Section(Protocol):
    """One tab of the panel."""

    @property
    def widget(self) -> widgets.Widget: ...


class BlockPanel:
    """The panel of one YAML source or destination block."""

    def __init__(self, block: Block, ctx: PanelContext, cfg: DIConfig | None = None) -> None:
        self.ctx = ctx
        self.jobs = Jobs()
        shown = ctx.pipeline.effective(block)  # a replica shows its original's settings with its override merged
        cfg = cfg or DIConfig.parse(shown.body, kind=block.kind, block=block.name)
        self.editor = BlockEditor(block, cfg, ctx.writeback, ctx.secrets)
        if block.replicate is not None:  # and writes back only what differs from the original
            original = ctx.pipeline.graph[block.replicate]
            self.editor.original = DIConfig.parse(original.body, kind=original.kind, block=original.name).to_dict()
        spec = registry.get(cfg.connector)
        self.view = CatalogView(cfg, ctx.cached_catalog(self.editor))
        self.editor.known_streams = self.view.stream_names
        self.credentials = CredentialsSection(self.editor, spec, self.jobs, ctx)
        self.upstream = UpstreamSection(self.editor, ctx)
        self.streams = StreamsSection(self.editor, self.view, self.jobs, ctx, self._catalog_found)
        self.detail = StreamDetailSection(self.editor, self.view)
        self.columns = ColumnsSection(self.editor, self.view)
        self.sample = SampleSection(self.editor, self.jobs, ctx)
        self.bookmarks = BookmarksSection(self.editor, ctx)
        self.streams.table.on_open(self.open_stream)
        self.status = Status()
        self.header = widgets.HTML(
            STYLE
            + f"<b>{html.escape(block.kind)} <code>{html.escape(block.name)}</code></b> · {html.escape(spec.title)} "
            + (
                f" · replica of <code>{html.escape(block.replicate)}</code> <small>(edits are written into this cell's override)</small>"
                if block.replicate
                else "<small>(edits are written into the cell's YAML)</small>"
            )
        )
        sections: list[_Section] = [self.credentials, self.upstream, self.streams, self.detail, self.columns, self.sample, self.bookmarks]
        titles: tuple[str, ...] = TITLES
        self.conflicts: ConflictsSection | None = None
        if cfg.kind == BlockKind.DESTINATION:
            self.conflicts = ConflictsSection(self.editor, self.jobs, ctx)
            at = TITLES.index("Schema properties") + 1  # beside the columns it compares
            sections.insert(at, self.conflicts)
            titles = (*TITLES[:at], CONFLICTS_TITLE, *TITLES[at:])
        self.tabs = widgets.Tab(children=[s.widget for s in sections], titles=titles)
        self.widget = widgets.VBox([self.header, self.tabs, self.status])
        self.widget.add_class("jdi-panel")
        self.editor.on_change(self._saved)
        names = cfg.selected_streams() or self.view.stream_names()
        self.open_stream(names[0] if names else None, switch=False)

    # -- wiring ---------------------------------------------------------------------------------
    def _saved(self, result: SaveResult) -> None:
        (self.status.error if result.warnings else self.status.ok)(result.message())
        if self.editor.cfg.kind == BlockKind.DESTINATION:  # upstream settings decide which streams arrive
            self.view.set(self.ctx.upstream_catalog(self.editor))
        self.streams.refresh()
        self.detail.refresh()
        self.columns.refresh()
        self.bookmarks.refresh()

    def _catalog_found(self, catalog: dict[str, Any]) -> None:
        self.view.set(catalog)
        self.streams.refresh()
        if self.detail.stream is None and self.view.stream_names():
            self.open_stream(self.view.stream_names()[0], switch=False)
        else:
            self.detail.refresh()
            self.columns.refresh()

    def open_stream(self, stream: str | None, switch: bool = True) -> None:
        self.detail.show(stream)
        self.columns.show(stream)
        self.sample.show(stream)
        if switch:
            self.tabs.selected_index = TITLES.index("Stream detail")

    def close(self) -> None:
        self.jobs.close()
        close_tree(self.widget)


def close_tree(widget: Any) -> None:
    """Close a widget and its children (their comms), e.g. when the panel is rebuilt."""
    for child in getattr(widget, "children", ()) or ():
        close_tree(child)
    widget.close()


def error_panel(block: Block, exc: DIError) -> widgets.Widget:
    return widgets.HTML(
        f"<b>{html.escape(block.kind)} <code>{html.escape(block.name)}</code></b>: the panel cannot read this cell: "
        f"<span style='color:#c62828'>{html.escape(redact(str(exc)))}</span>"
    )
