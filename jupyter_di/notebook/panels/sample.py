"""Sample data: the first rows of the current stream, fetched in the background.

Sources read with ``ReadRequest(settings, limit=N)`` using the panel's current
settings (columns, replication method); destinations show the first rows of
the upstream output that feeds the stream.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from . import look
from .editor import BlockEditor
from .jobs import Jobs, Status

SAMPLE_STYLE = "<style>.jdi-sample th,.jdi-sample td{text-align:left;padding:2px 8px;white-space:nowrap}</style>"


class SampleSection:
    def __init__(self, editor: BlockEditor, jobs: Jobs, ctx: Any, stream: str | None = None) -> None:
        self.editor, self._jobs, self._ctx = editor, jobs, ctx
        self.stream: str | None = None
        self.frame: Any = None  # the last sample, a pandas DataFrame
        self.limit = look.make(
            widgets.BoundedIntText, value=ctx.sample_rows, min=1, max=10_000, description="rows", layout_={"width": "10em"}
        )
        self.button = look.button("Fetch sample data", "table")
        self.button.on_click(lambda _b: self.fetch())
        self.status = Status()
        self.view = look.html()
        self.widget = look.vbox([look.hbox([self.button, self.limit, self.status]), self.view])
        self.show(stream)

    def show(self, stream: str | None) -> None:
        if stream != self.stream:
            self.frame = None
            self.view.value = ""
        self.stream = stream
        self.button.disabled = stream is None
        if stream is None:
            self.status.note("Pick a stream (click its name in the Streams table).")
        else:
            self.status.note(f"Stream {stream}.")

    def fetch(self):
        stream, limit = self.stream, int(self.limit.value)

        def shown(frame: Any) -> str:
            self.frame = frame
            # headers over their values: both left-aligned (pandas right-aligns headers only), no index column
            self.view.value = SAMPLE_STYLE + frame.to_html(
                max_rows=limit, max_cols=60, border=0, index=False, justify="left", classes="jdi-sample"
            )
            return f"{len(frame)} rows of {stream}."

        if stream is None:
            return None
        return self._jobs.run(
            f"Reading {limit} rows of {html.escape(stream)}",
            lambda: self._ctx.sample(self.editor, stream, limit),
            self.status,
            done=shown,
            button=self.button,
            secrets=lambda: self._ctx.secret_values,
        )
