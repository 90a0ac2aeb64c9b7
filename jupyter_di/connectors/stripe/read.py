"""The Stripe source: each Stripe object (``streams.py``) is a stream of declared shape.

FULL_TABLE lists the objects (created from ``start_date`` on), page by page, lazily.

INCREMENTAL never misses an update (Stripe never changes ``created``, so a bookmark on it would):

* **First run** (no bookmark): list the objects (created from ``start_date``), sorted by
  (``created``, ``id``), each row's ``_di_updated_at`` its ``created``.  Before the first page the
  source notes Stripe's clock (the response's ``Date``, less a second): every change from then on is
  in the Events API.  Each batch carries that moment as the source's own state
  (``SOURCE_STATE_KEY``: ``listing_since`` while listing, ``events_from`` on the last batch), so a run
  killed halfway resumes the listing from its bookmark (``created >=``), and the next run reads
  events from when the listing began.
* **Later runs** read ``/v1/events`` of the stream's types (``customer.*`` ...) created from the
  cursor (the later of the bookmark and ``events_from``) less ``lookback_window``, keep the latest
  event per object, and yield its ``data.object`` with ``_di_updated_at`` = the event's time, sorted
  by (``_di_updated_at``, ``id``); the destination upserts on ``id``.  The cursor then moves on to
  when the events were asked for (Stripe's clock), even with no change: a batch without rows
  carries it (``BOOKMARK_STATE_KEY``).  A ``*.deleted`` event yields
  the object as it was with ``_di_deleted_at`` set.  Requests grow with the changes, not the data.
* **Stripe keeps events 30 days.**  A cursor older than that (less ten minutes) cannot be replayed:
  the stream is listed again in full and the run report says so (objects deleted meanwhile cannot be
  detected); the listing renews the cursor.
* ``balance_transactions`` and ``events`` do not change once created (or have no events): they are
  read by ``created`` from the bookmark (inclusive), like a table with an append-only key.

Events are read per stream, so several streams of one block each page the events of their types.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from .._shared.arrow_rows import rebatch, selected_schema
from .._shared.http_client import HttpClient
from ..base import BOOKMARK_STATE_KEY, INCREMENTAL, SOURCE_STATE_KEY, ReadRequest, Source, is_json_field
from ..catalog import json_schema_for_arrow, stream_entry
from .connection import CONFIG, epoch, list_pages, make_client, server_time
from .streams import DELETED_AT, STREAMS, UPDATED_AT, StripeStream
from .types import schema_for, to_batch

RETENTION = 30 * 86_400
"""Stripe keeps events for 30 days."""
MARGIN = 600
"""A cursor this close to the retention limit is treated as past it (the oldest events may go first)."""


class StripeSource(Source):
    """Reads Stripe objects by listing them, then by their events."""

    name = "stripe"
    config_schema = CONFIG

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        expand = config.get("expand") or {}
        if not isinstance(expand, dict) or not all(isinstance(v, list) and all(isinstance(p, str) for p in v) for v in expand.values()):
            raise ConfigError("expand must map stream names to lists of fields, e.g. {charges: [customer]}.", fix="fix config.expand.")
        unknown = [s for s in expand if s not in STREAMS]
        if unknown:
            raise ConfigError(
                f"expand names stream {unknown[0]!r}, which Stripe does not have here.", fix=f"use one of: {', '.join(STREAMS)}."
            )
        self.expand: dict[str, list[str]] = {str(k): list(v) for k, v in expand.items()}
        self.start = epoch(config["start_date"], "start_date") if config.get("start_date") else None
        self.lookback = int(config.get("lookback_window", 300) or 0)
        self.clients: list[HttpClient] = []

    # ------------------------------------------------------------------ the contract
    @classmethod
    def default_bookmark_properties(cls, stream: str) -> list[str]:
        found = STREAMS.get(stream)
        return [found.replication_key] if found else []

    @property
    def requests(self) -> int:
        """HTTP requests this source sent (retries included)."""
        return sum(c.requests for c in self.clients)

    def _client(self, stream: str | None) -> HttpClient:
        client = make_client(self.config, stream)
        self.clients.append(client)
        return client

    def check(self) -> None:
        """One cheap authenticated call: the account's balance."""
        client = self._client(None)
        client.get_json(client.url_for("/v1/balance"))

    def missing_streams(self, streams: list[str]) -> list[str]:
        return [s for s in streams if s not in STREAMS]

    def _stream(self, name: str) -> StripeStream:
        try:
            return STREAMS[name]
        except KeyError:
            raise ConfigError(f"Stripe has no stream {name!r} here.", stream=name, fix=f"use one of: {', '.join(STREAMS)}.") from None

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        entries = []
        for name, stream in STREAMS.items():
            if streams is not None and name not in streams:
                continue
            schema = schema_for(stream, self.expand.get(name))
            key = stream.replication_key
            entries.append(
                stream_entry(
                    name,
                    {f.name: json_schema_for_arrow(f.type, f) for f in schema},
                    key_properties=["id"],
                    valid_replication_keys=[key],
                    sql_datatypes={f.name: "json" if is_json_field(f) else str(f.type) for f in schema},
                    extra_stream_metadata={"replication-key": key},
                )
            )
        return {"streams": entries}

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        settings = request.settings
        stream = self._stream(settings.stream)
        schema = schema_for(stream, self.expand.get(stream.name))
        columns = settings.columns
        if columns is not None and settings.replication_method == INCREMENTAL:  # the key and bookmark are always read
            columns = list(dict.fromkeys([*columns, *settings.key_properties, stream.replication_key]))
        out = selected_schema(schema, columns, stream.name)
        client = self._client(stream.name)
        if settings.replication_method != INCREMENTAL:
            pages = (to_batch(self._rows(stream, p.records), schema, stream.name) for p in self._list(client, stream, self.start))
            return pa.RecordBatchReader.from_batches(out, rebatch((b.select(out.names) for b in pages), request.batch_size, request.limit))
        key = stream.replication_key
        if list(settings.bookmark_properties) != [key]:
            raise ConfigError(
                f"a Stripe stream keeps its own bookmark, {key!r}; it cannot be bookmarked on {', '.join(settings.bookmark_properties)}.",
                stream=stream.name,
                fix="remove bookmark_properties from the stream (replication_method: INCREMENTAL is enough).",
            )
        batches = _Read(self, client, stream, schema, request).batches()
        return pa.RecordBatchReader.from_batches(out, (b.select(out.names).replace_schema_metadata(b.schema.metadata) for b in batches))

    # ------------------------------------------------------------------ listing
    def _list(self, client: HttpClient, stream: StripeStream, since: int | None) -> Iterator[Any]:
        params: list[tuple[str, Any]] = list(stream.list_params)
        if since is not None:
            params.append(("created[gte]", since))
        params += [("expand[]", f"data.{path}") for path in self.expand.get(stream.name, [])]
        return list_pages(client, stream.path, params)

    @staticmethod
    def _rows(stream: StripeStream, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Listed objects as rows: an event-synced stream's ``_di_updated_at`` is the object's ``created``."""
        if stream.by_events:
            return [{**r, UPDATED_AT: r.get("created"), DELETED_AT: None} for r in records]
        return records


class _Read:
    """One INCREMENTAL read of one stream (see the module docstring)."""

    def __init__(self, source: StripeSource, client: HttpClient, stream: StripeStream, schema: pa.Schema, request: ReadRequest):
        self.source, self.client, self.stream, self.schema, self.request = source, client, stream, schema, request
        saved = (request.bookmark or {}).get(stream.replication_key)
        self.saved = epoch(saved, "bookmark", stream.name) if saved is not None else None
        state = request.source_state if isinstance(request.source_state, dict) and not request.bookmark_from_user else {}
        self.state: dict[str, Any] = state
        self.warnings: list[str] = request.stats.setdefault("warnings", [])

    def batches(self) -> Iterator[pa.RecordBatch]:
        stream, saved, start = self.stream, self.saved, self.source.start
        now = int(time.time())
        if not stream.by_events:
            if saved is not None and stream.name == "events" and now - saved > RETENTION - MARGIN:
                self.warnings.append(
                    f"the bookmark ({_iso(saved)}) is older than Stripe's 30-day event retention: events created before "
                    f"{_iso(now - RETENTION)} that were not synced are gone."
                )
            since = max((x for x in (saved, start) if x is not None), default=None)
            yield from self._listed(since, started=None)
            return
        if saved is None:
            yield from self._listed(start, started=None)
        elif "listing_since" in self.state:
            yield from self._listed(max(saved, start or saved), started=int(self.state["listing_since"]))
        else:
            cursor = saved if self.request.bookmark_from_user else max(saved, int(self.state.get("events_from") or 0))
            if now - cursor > RETENTION - MARGIN:
                self.warnings.append(
                    f"the bookmark ({_iso(cursor)}) is older than Stripe's 30-day event retention, so its changes cannot be "
                    f"replayed: the stream was listed again in full; objects deleted at Stripe since then cannot be detected "
                    f"(their rows keep {DELETED_AT} empty). Run the stream at least every 30 days."
                )
                yield from self._listed(start, started=None)
            else:
                yield from self._changed(cursor)

    def _listed(self, since: int | None, started: int | None) -> Iterator[pa.RecordBatch]:
        """All objects created from ``since``, oldest first; ``started`` is when the listing began."""
        records: list[dict[str, Any]] = []
        limit = self.request.limit
        for page in self.source._list(self.client, self.stream, since):
            if started is None:
                started = (server_time(page.response) or int(time.time())) - 1
            records += page.records
            if limit is not None and len(records) >= limit:
                break
        if not records:
            return
        rows = StripeSource._rows(self.stream, records)
        order = self.stream.replication_key
        table = pa.Table.from_batches([to_batch(rows, self.schema, self.stream.name)]).sort_by([(order, "ascending"), ("id", "ascending")])
        if not self.stream.by_events:
            yield from rebatch(table.to_batches(max_chunksize=self.request.batch_size), self.request.batch_size, limit)
            return
        pieces = list(rebatch(table.to_batches(max_chunksize=self.request.batch_size), self.request.batch_size, limit))
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield _with_state(piece, {"events_from": started} if last else {"listing_since": started})

    def _changed(self, cursor: int) -> Iterator[pa.RecordBatch]:
        """The latest event of every object changed from ``cursor`` (less the lookback) on.  Every
        event created before the first events request (Stripe's clock, less a second) has been seen,
        so the cursor moves on to then, rows or not: a stream without changes keeps a fresh cursor
        (a batch without rows carries it) instead of running into the 30-day retention."""
        stream, start = self.stream, self.source.start
        latest: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        rank = 0
        seen_until: int | None = None
        for pattern in stream.events:
            for page in list_pages(self.client, "/v1/events", [("type", pattern), ("created[gte]", cursor - self.source.lookback)]):
                if seen_until is None:
                    seen_until = (server_time(page.response) or int(time.time())) - 1
                for event in page.records:  # newest first
                    rank -= 1
                    obj = (event.get("data") or {}).get("object") or {}
                    if obj.get("object") != stream.object or not obj.get("id"):
                        continue
                    if start is not None and int(obj.get("created") or 0) < start:
                        continue
                    when = int(event["created"])
                    deleted = stream.is_delete(str(event.get("type")))
                    order = (when, 1 if deleted else 0, rank)
                    if obj["id"] not in latest or order > latest[obj["id"]][0]:
                        latest[obj["id"]] = (order, {**obj, UPDATED_AT: when, DELETED_AT: when if deleted else None})
        until = max(cursor, seen_until or cursor)
        if not latest:
            # The bookmark (shown in the state, checked against the retention) can lag the cursor: after a
            # listing it is the newest object's ``created`` while ``events_from`` is when the listing began.
            # Compare with it, not the cursor, or a run within the second after the listing never moves it.
            if until > (self.saved if self.saved is not None else cursor) and self.request.limit is None:
                batch = pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in self.schema], schema=self.schema)
                bookmark = {UPDATED_AT: dt.datetime.fromtimestamp(until, dt.timezone.utc).isoformat()}
                yield _with_state(batch, {"events_from": until}, bookmark)
            return
        rows = [row for _, row in latest.values()]
        expand = self.source.expand.get(stream.name)
        if expand:  # events carry ids; fetch each changed object once more with its expansions
            rows = [self._expanded(row, expand) for row in rows]
        table = pa.Table.from_batches([to_batch(rows, self.schema, stream.name)]).sort_by([(UPDATED_AT, "ascending"), ("id", "ascending")])
        pieces = list(rebatch(table.to_batches(max_chunksize=self.request.batch_size), self.request.batch_size, self.request.limit))
        for i, piece in enumerate(pieces):
            last = int(piece.column(UPDATED_AT)[-1].value // 1_000_000)
            yield _with_state(piece, {"events_from": until if i == len(pieces) - 1 else max(cursor, last)})

    def _expanded(self, row: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        if row.get(DELETED_AT) is not None:
            return row
        url = self.client.url_for(f"{self.stream.path}/{row['id']}", [("expand[]", path) for path in expand])
        fresh = self.client.get_json(url).data
        return {**fresh, UPDATED_AT: row[UPDATED_AT], DELETED_AT: None} if isinstance(fresh, dict) else row


def _with_state(batch: pa.RecordBatch, state: dict[str, Any], bookmark: dict[str, Any] | None = None) -> pa.RecordBatch:
    """``batch`` carrying the source's own state (and, for a batch without rows, the bookmark that holds)."""
    metadata = {**(batch.schema.metadata or {}), SOURCE_STATE_KEY: json.dumps(state)}
    if bookmark is not None:
        metadata[BOOKMARK_STATE_KEY] = json.dumps({"bookmark": bookmark})
    return batch.replace_schema_metadata(metadata)


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
