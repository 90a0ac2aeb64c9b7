"""The http_api source: each configured endpoint of a JSON HTTP API is a stream.

Schema: inferred from the first page of records (the unfiltered first page,
fetched once per source object and cached, so every read of a stream has the
same schema as its discovery).  Nested objects and lists become JSON-marked
string columns.  Fields that appear later but were not on the first page are
ignored (rediscover to pick them up); values that no longer fit a column's
type raise SchemaMismatch, except in string columns, which take their JSON text.

INCREMENTAL: the bookmark value of ``cursor_field`` is sent in
``cursor_param`` (so the API can skip old records), and records with a cursor
below the bookmark are dropped here too (an API may ignore the parameter).
APIs return records in their own order, so an incremental read buffers the
whole stream in Arrow and sorts it by (cursor, key) before the first batch:
memory is the stream's size, which is the price of a bookmark that is safe to
save after every batch.  FULL_TABLE reads stay lazy, one page at a time.
``limit`` stops paging as soon as enough records are in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from .._shared.arrow_rows import check_bookmark_orderable, check_columns_exist, order_incremental, rebatch, selected_schema
from .._shared.http_client import HttpClient
from .._shared.json_records import infer_schema, to_batch
from ..base import INCREMENTAL, ConfigField, ReadRequest, Source, is_json_field
from ..catalog import json_schema_for_arrow, stream_entry
from .paging import StreamConfig, pages

CONFIG_SCHEMA = [
    ConfigField("base_url", "string", required=True, description="Root URL of the API, e.g. https://api.stripe.com."),
    ConfigField("api_key", "string", secret=True, description="Token sent in auth_header (as 'Bearer <token>' by default)."),
    ConfigField("token", "string", secret=True, description="Alias of api_key."),
    ConfigField("auth_header", "string", default="Authorization", description="Header that carries the api_key."),
    ConfigField("auth_scheme", "string", default="Bearer", description="Prefix of the api_key in the header; empty for the bare key."),
    ConfigField("headers", "object", default={}, description="Extra request headers."),
    ConfigField(
        "streams",
        "object",
        required=True,
        description=(
            "stream name -> {path, records_path, primary_key, params, "
            "paging: {type: none|page|offset|cursor|link_header, page_param, size_param, page_size, offset_param, "
            "cursor_param, next_cursor_path, cursor_record_field, has_more_path}, "
            "incremental: {cursor_param, cursor_field}}"
        ),
    ),
    ConfigField("timeout", "number", default=30, description="Seconds to wait for each response.", minimum=0.1, maximum=3600),
    ConfigField(
        "max_retries",
        "integer",
        default=5,
        description="Retries on HTTP 429/5xx and timeouts (exponential backoff).",
        minimum=0,
        maximum=50,
    ),
    ConfigField(
        "retry_backoff", "number", default=1.0, description="First retry delay in seconds; doubles each retry.", minimum=0, maximum=600
    ),
]


class HttpApiSource(Source):
    """Reads the configured endpoints of a JSON API, page by page."""

    name = "http_api"
    config_schema = CONFIG_SCHEMA

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        streams = config.get("streams") or {}
        if not isinstance(streams, dict) or not streams:
            raise ConfigError(
                "http_api needs at least one stream under `streams`.",
                fix="add e.g. `streams: {customers: {path: /v1/customers, records_path: data}}`.",
            )
        self.streams = {name: StreamConfig.parse(name, raw) for name, raw in streams.items()}
        self._schemas: dict[str, pa.Schema] = {}

    def _client(self, stream: str | None) -> HttpClient:
        headers = {str(k): str(v) for k, v in (self.config.get("headers") or {}).items()}
        token = self.config.get("api_key") or self.config.get("token")
        if token:
            scheme = self.config.get("auth_scheme", "Bearer")
            headers[self.config.get("auth_header") or "Authorization"] = f"{scheme} {token}" if scheme else str(token)
        return HttpClient(
            base_url=str(self.config.get("base_url") or ""),
            headers=headers,
            timeout=float(self.config.get("timeout", 30)),
            max_retries=int(self.config.get("max_retries", 5)),
            backoff=float(self.config.get("retry_backoff", 1.0)),
            stream=stream,
        )

    def _stream(self, name: str) -> StreamConfig:
        try:
            return self.streams[name]
        except KeyError:
            raise ConfigError(f"no stream {name!r} is configured.", stream=name, fix=f"use one of: {', '.join(self.streams)}.") from None

    def check(self) -> None:
        """Fetch the first page of the first stream: surfaces auth, host and path errors."""
        self._schema(next(iter(self.streams)))

    def _schema(self, name: str) -> pa.Schema:
        """Schema from the first (unfiltered) page, cached for this source object."""
        if name not in self._schemas:
            cfg = self._stream(name)
            first = next(pages(self._client(name), cfg), [])
            schema = infer_schema(first)
            for col in [*cfg.primary_key, cfg.cursor_field]:
                if col and col not in schema.names:
                    schema = schema.append(pa.field(col, pa.string()))
            self._schemas[name] = schema
        return self._schemas[name]

    def missing_streams(self, streams: list[str]) -> list[str]:
        """The streams are the config's: no request needed."""
        return [s for s in streams if s not in self.streams]

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        entries = []
        for name, cfg in self.streams.items():
            if streams is not None and name not in streams:
                continue
            schema = self._schema(name)
            entries.append(
                stream_entry(
                    name,
                    {f.name: json_schema_for_arrow(f.type, f) for f in schema},
                    key_properties=cfg.primary_key,
                    valid_replication_keys=[cfg.cursor_field] if cfg.cursor_field else [],
                    sql_datatypes={f.name: "json" if is_json_field(f) else str(f.type) for f in schema},
                )
            )
        return {"streams": entries}

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        settings = request.settings
        name = settings.stream
        cfg = self._stream(name)
        schema = self._schema(name)
        out_schema = selected_schema(schema, settings.columns, name)
        client = self._client(name)
        limit = request.limit

        if settings.replication_method != INCREMENTAL:

            def plain() -> Iterator[pa.RecordBatch]:
                batches = (to_batch(records, out_schema, name) for records in pages(client, cfg))
                yield from rebatch(batches, request.batch_size, limit)

            return pa.RecordBatchReader.from_batches(out_schema, plain())

        props = list(settings.bookmark_properties) or ([cfg.cursor_field] if cfg.cursor_field else [])
        if not props:
            raise ConfigError(
                "an INCREMENTAL http_api stream needs a bookmark field.",
                stream=name,
                fix="set incremental.cursor_field (or bookmark_properties) for the stream.",
            )
        settings = dataclasses.replace(settings, bookmark_properties=props, key_properties=list(settings.key_properties) or cfg.primary_key)
        check_columns_exist(schema, props, "bookmark", name)
        check_bookmark_orderable(schema, props, name)
        check_columns_exist(schema, settings.key_properties, "key", name)
        bookmark = request.bookmark or {}
        extra = {}
        if cfg.cursor_param and cfg.cursor_field and bookmark.get(cfg.cursor_field) is not None:
            extra[cfg.cursor_param] = bookmark[cfg.cursor_field]

        def ordered() -> Iterator[pa.RecordBatch]:
            kept, total = [], 0
            for records in pages(client, cfg, extra):
                page = order_incremental(pa.Table.from_batches([to_batch(records, schema, name)]), settings, bookmark, request.stats)
                kept.append(page)
                total += page.num_rows
                if limit is not None and total >= limit:
                    break
            table = pa.concat_tables(kept) if kept else schema.empty_table()
            table = order_incremental(table, settings, None).select(out_schema.names)
            yield from rebatch(table.to_batches(max_chunksize=request.batch_size), request.batch_size, limit)

        return pa.RecordBatchReader.from_batches(out_schema, ordered())
