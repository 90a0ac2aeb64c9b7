"""Reading one stream from a connector in a test: the settings a test names, FULL_TABLE unless told."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from jupyter_di.connectors.base import ReadRequest, Source, StreamSettings


def read_stream(source: Source, stream: str, **kw: Any) -> pa.Table:
    """All of ``stream`` that ``source`` reads, as one table. ``columns``, ``method`` (the replication
    method), ``bookmark_properties`` and ``key_properties`` go to the stream's settings; the other
    keywords to the ``ReadRequest`` (``bookmark``, ``batch_size``, ``limit`` ...)."""
    settings = StreamSettings(
        stream=stream,
        columns=kw.pop("columns", None),
        replication_method=kw.pop("method", "FULL_TABLE"),
        bookmark_properties=kw.pop("bookmark_properties", []),
        key_properties=kw.pop("key_properties", []),
    )
    return source.read(ReadRequest(settings, **kw)).read_all()
