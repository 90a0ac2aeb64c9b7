"""A source/destination block's panel: the sections assembled in tabs, wired to one editor.

Every edit goes through the ``BlockEditor`` (one write-back of canonical
YAML); the panel then refreshes the sections that show what changed.  The
panel is rebuilt from the cell's YAML each time the cell runs, so the cell,
not the widget state, is what persists.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as widgets

from ...block_kind import BlockKind
from ...connectors import registry
from ...errors import DIError
from ...integration.di_config import DIConfig
from ...pipeline.block import Block
from ...redaction import redact
from . import look
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
    ".jdi-panel .widget-gridbox>.widget-button{justify-self:start}"
    ".jdi-panel .widget-gridbox .widget-html-content{line-height:1.35}"
    "</style>"
)
"""Labels are never cut ("Schema prope", "Discover strea…"): tabs as wide as their titles (wrapping
on a narrow page), buttons as wide as their text (also in the Credentials grid), descriptions beside
the fields in normal line height.  Shipped with the panel's header, so it works in
every client that shows widgets, with or without the lab extension."""


class _Section(Protocol):
    """One tab of the panel."""

    @property
    def widget(self) -> widgets.Widget: ...


class BlockPanel:
    """The panel of one YAML source or destination block.

    Each tab's widgets are built when the tab is first opened (selected in the front end, or a
    section reached from Python, e.g. ``panel.streams``); until then the tab shows one empty widget
    and what it would show lives in plain Python (the editor's configuration, the catalog view,
    the current stream).  Why: a notebook saved with widget state keeps every widget model of
    every panel, and building all tabs up front made an executed quickstart 135 KB.
    """

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
        names = cfg.selected_streams() or self.view.stream_names()
        self.stream: str | None = names[0] if names else None
        """The stream Stream detail, Schema properties and Sample data show (built or not)."""
        self._makers: dict[str, Callable[[], _Section]] = {
            "Credentials": lambda: CredentialsSection(self.editor, spec, self.jobs, ctx),
            "Upstream": lambda: UpstreamSection(self.editor, ctx),
            "Streams": self._make_streams,
            "Stream detail": self._make_detail,
            "Schema properties": lambda: ColumnsSection(self.editor, self.view, self.stream),
            "Sample data": lambda: SampleSection(self.editor, self.jobs, ctx, self.stream),
            "Bookmarks": lambda: BookmarksSection(self.editor, ctx),
        }
        if cfg.kind == BlockKind.DESTINATION:
            at = TITLES.index("Schema properties") + 1  # beside the columns it compares
            makers = list(self._makers.items())
            makers.insert(at, (CONFLICTS_TITLE, lambda: ConflictsSection(self.editor, self.jobs, ctx)))
            self._makers = dict(makers)
        self.titles: tuple[str, ...] = tuple(self._makers)
        self._built: dict[str, _Section] = {}
        self._unopened = look.html("<i>Opening this tab…</i>")  # seen while a busy kernel has not built it yet
        """Every tab's content until it is first opened (one model shown in each)."""
        self.status = Status()
        self.header = look.html(
            STYLE
            + f"<b>{html.escape(block.kind)} <code>{html.escape(block.name)}</code></b> · {html.escape(spec.title)} "
            + (
                f" · replica of <code>{html.escape(block.replicate)}</code> <small>(edits are written into this cell's override)</small>"
                if block.replicate
                else "<small>(edits are written into the cell's YAML)</small>"
            )
        )
        self.tabs = look.make(widgets.Tab, children=[self._unopened] * len(self.titles), titles=self.titles)
        self.tabs.observe(self._tab_opened, "selected_index")
        self.widget = look.vbox([self.header, self.tabs, self.status])
        self.widget.add_class("jdi-panel")
        self.editor.on_change(self._saved)
        self.section(self.titles[self.tabs.selected_index or 0])  # the tab shown first

    # -- tabs, built on first open --------------------------------------------------------------
    def section(self, title: str) -> Any:
        """The tab's section, built (and put in its tab) the first time it is asked for."""
        built = self._built.get(title)
        if built is None:
            built = self._built[title] = self._makers[title]()
            children = list(self.tabs.children)
            children[self.titles.index(title)] = built.widget  # the front end keeps the selected tab
            self.tabs.children = children
        return built

    def built(self, title: str) -> Any:
        """The tab's section if it was opened, else None (nothing to refresh)."""
        return self._built.get(title)

    def _tab_opened(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.section(self.titles[change["new"]])

    def _make_streams(self) -> StreamsSection:
        streams = StreamsSection(self.editor, self.view, self.jobs, self.ctx, self._catalog_found)
        streams.table.on_open(self.open_stream)
        return streams

    def _make_detail(self) -> StreamDetailSection:
        detail = StreamDetailSection(self.editor, self.view)
        detail.show(self.stream)
        return detail

    @property
    def credentials(self) -> CredentialsSection:
        return self.section("Credentials")

    @property
    def upstream(self) -> UpstreamSection:
        return self.section("Upstream")

    @property
    def streams(self) -> StreamsSection:
        return self.section("Streams")

    @property
    def detail(self) -> StreamDetailSection:
        return self.section("Stream detail")

    @property
    def columns(self) -> ColumnsSection:
        return self.section("Schema properties")

    @property
    def sample(self) -> SampleSection:
        return self.section("Sample data")

    @property
    def bookmarks(self) -> BookmarksSection:
        return self.section("Bookmarks")

    @property
    def conflicts(self) -> ConflictsSection | None:
        return self.section(CONFLICTS_TITLE) if CONFLICTS_TITLE in self._makers else None

    # -- wiring ---------------------------------------------------------------------------------
    def _saved(self, result: SaveResult) -> None:
        (self.status.error if result.warnings else self.status.ok)(result.message())
        if self.editor.cfg.kind == BlockKind.DESTINATION:  # upstream settings decide which streams arrive
            self.view.set(self.ctx.upstream_catalog(self.editor))
        for title in ("Streams", "Stream detail", "Schema properties", "Bookmarks"):
            if (section := self.built(title)) is not None:
                section.refresh()

    def _catalog_found(self, catalog: dict[str, Any]) -> None:
        self.view.set(catalog)
        self.streams.refresh()
        if self.stream is None and self.view.stream_names():
            self.open_stream(self.view.stream_names()[0], switch=False)
        else:
            for title in ("Stream detail", "Schema properties"):
                if (section := self.built(title)) is not None:
                    section.refresh()

    def open_stream(self, stream: str | None, switch: bool = True) -> None:
        self.stream = stream
        for title in ("Stream detail", "Schema properties", "Sample data"):
            if (section := self.built(title)) is not None:
                section.show(stream)
        if switch:
            self.tabs.selected_index = self.titles.index("Stream detail")

    def close(self) -> None:
        self.jobs.close()
        close_tree(self.widget)


def close_tree(widget: Any) -> None:
    """Close a widget and its children (their comms), e.g. when the panel is rebuilt."""
    for child in getattr(widget, "children", ()) or ():
        close_tree(child)
    widget.close()


def error_panel(block: Block, exc: DIError) -> widgets.Widget:
    return look.html(
        f"<b>{html.escape(block.kind)} <code>{html.escape(block.name)}</code></b>: the panel cannot read this cell: "
        f"<span style='color:#c62828'>{html.escape(redact(str(exc)))}</span>"
    )
