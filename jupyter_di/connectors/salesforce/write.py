"""The Salesforce destination: each stream into one sObject, upserted on an external ID.

How one stream is written:

1. ``describe`` the sObject and map every column to a field (``fields.py``); unknown, read-only or
   ill-typed fields fail the stream before anything is sent.
2. Read all the stream's chunks, check every value against its field (lengths, numbers, dates,
   booleans, IDs) and keep them, converted to Salesforce's text forms, in an anonymous temporary
   Arrow file: a value that does not fit fails the stream with nothing written, and the row count
   decides the path.  Rows sharing a key are reduced to one, the last (UPDATE) or the first (IGNORE),
   as every destination keeps one row per key.
3. ``unique_conflict_method: IGNORE`` asks which keys exist (SOQL, 200 keys per query) and drops
   those rows; the rest are upserted, so a retry cannot duplicate them.
4. More rows than ``bulk_threshold``: Bulk API 2.0 ingest jobs (``paths.send_bulk``), else sObject
   Collections (``paths.send_collections``).
5. Rows Salesforce rejected are listed with their key, error code and message: in the block's error
   when there are more than ``max_rejected_rows`` (the bookmark does not move), else as warnings that
   make the run report incomplete; and in ``rejected_rows_file`` when the stream sets one.
6. FULL_TABLE with ``delete_missing: true`` then deletes the records whose external ID did not arrive.
7. ``on_commit`` (the bookmark) once, after all of it.

Guarantee: at least once, idempotent with an external ID (a rerun after a crash upserts the same
rows again onto the same records); without a key a rerun inserts again.
Salesforce has no transaction across requests, so this destination is not ``transactional``.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from ...errors import ConfigError, DIError, SchemaMismatch
from ..base import FULL_TABLE, Chunk, CommitCallback, Destination, WriteRequest, WriteResult
from .connection import SalesforceClient, check_credentials
from .fields import FieldPlan, plan_fields
from .paths import Outcome, Rejected, csv_parts, send_bulk, send_collections
from .values import ValueProblems, check_values, csv_ready, text_batch

log = logging.getLogger(__name__)
STREAM_OPTIONS = ("column_mapping", "delete_missing", "max_rejected_rows", "rejected_rows_file")
SHOWN_REJECTS = 20


class SalesforceDestination(Destination):
    name = "salesforce"
    transactional = False

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.last_outcome: Outcome | None = None
        self.report_warnings: list[dict[str, Any]] = []
        """Read by the runner after a write: lines for the run report; ``skipped`` rows make the run incomplete."""

    @staticmethod
    def check_config(config: dict[str, Any]) -> None:
        """The per-stream options under ``config.streams`` (called by the config check before anything connects)."""
        check_credentials(config)
        streams = config.get("streams") or {}
        if not isinstance(streams, dict):
            raise ConfigError(
                "config streams must map stream names to their Salesforce options.", fix="see docs/connectors.md, Salesforce."
            )
        for name, opts in streams.items():
            if not isinstance(opts, dict):
                raise ConfigError(f"config streams.{name} must be a mapping of options.", fix=f"allowed: {', '.join(STREAM_OPTIONS)}.")
            for key, value in opts.items():
                where = f"config streams.{name}.{key}"
                if key not in STREAM_OPTIONS:
                    import difflib

                    close = difflib.get_close_matches(str(key), STREAM_OPTIONS, n=1)
                    raise ConfigError(
                        f"unknown option {where}.", fix=f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(STREAM_OPTIONS)}."
                    )
                if key == "column_mapping" and not (
                    isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
                ):
                    raise ConfigError(f"{where} must map column names to field API names.", fix="write it like {order_id: Order_Id__c}.")
                if key == "delete_missing" and not isinstance(value, bool):
                    raise ConfigError(f"{where} must be true or false.")
                if key == "max_rejected_rows" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise ConfigError(f"{where} must be a whole number ≥ 0.")
                if key == "rejected_rows_file" and not isinstance(value, str):
                    raise ConfigError(f"{where} must be a file path (.csv or .jsonl).")

    def check(self) -> None:
        client = SalesforceClient(self.config)
        try:
            client.request("GET", client.data_path("sobjects/"))
        finally:
            client.close()

    def query(self, soql: str) -> list[dict[str, Any]]:
        """The records of a SOQL query, without their ``attributes`` (to look at what a run wrote)."""
        client = SalesforceClient(self.config)
        try:
            return [{k: v for k, v in r.items() if k != "attributes"} for r in client.query(soql)]
        finally:
            client.close()

    def write(self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None) -> WriteResult:
        writer = _StreamWriter(self.config, request)
        try:
            result = writer.run(chunks, on_commit)
        finally:
            self.last_outcome = writer.outcome
            self.report_warnings.extend(writer.report)
            writer.close()
        return result


class _StreamWriter:
    """One write of one stream."""

    def __init__(self, config: dict[str, Any], request: WriteRequest) -> None:
        self.config = config
        self.request = request
        self.settings = request.settings
        self.stream = self.settings.stream
        self.options: dict[str, Any] = dict((config.get("streams") or {}).get(self.stream) or {})
        self.client = SalesforceClient(config, stream=self.stream)
        self.outcome = Outcome()
        self.report: list[dict[str, Any]] = []
        self._spool = tempfile.TemporaryFile(prefix="jupyter-di-salesforce-")  # anonymous: gone even after kill -9

    def close(self) -> None:
        self.client.close()
        self._spool.close()

    # -- the run ---------------------------------------------------------------------------
    def run(self, chunks: Iterable[Chunk], on_commit: CommitCallback | None) -> WriteResult:
        s = self.settings
        operation = "upsert" if s.unique_constraints else "insert"
        sobject = s.table_name
        describe = self.client.request("GET", self.client.data_path(f"sobjects/{quote(sobject)}/describe")).json()
        plan = plan_fields(
            describe,
            self.request.schema,
            stream=self.stream,
            mapping=self.options.get("column_mapping") or {},
            unique_constraints=list(s.unique_constraints),
            operation=operation,
        )
        if s.replication_method == FULL_TABLE and plan.key_field is None:
            raise ConfigError(
                f"a FULL_TABLE stream into {sobject} needs an external ID key: Salesforce cannot replace an object's records, "
                "so without a key every run would insert all rows again.",
                stream=self.stream,
                fix="set unique_constraints: [<the column holding an external ID>] (FULL_TABLE then upserts every row), "
                "or replication_method: INCREMENTAL to insert rows on purpose.",
            )
        if self.options.get("delete_missing") and not (s.replication_method == FULL_TABLE and plan.key_field is not None):
            raise ConfigError(
                "delete_missing needs a FULL_TABLE stream with an external ID key (unique_constraints).",
                stream=self.stream,
                fix="set replication_method: FULL_TABLE and unique_constraints: [<external id column>], or drop delete_missing.",
            )
        rows, keys, state = self._spool_rows(chunks, plan)
        keep = self._keep_mask(keys)
        if s.unique_conflict_method == "IGNORE" and plan.key_field is not None:
            keep = self._drop_existing(plan, keys, keep)
        sent = sum(keep) if keep is not None else rows
        threshold = int(self.config.get("bulk_threshold", 2000))
        if sent > threshold:
            limit = int(float(self.config.get("bulk_upload_mb") or 100) * 1024 * 1024)
            clear = operation == "upsert"
            parts = csv_parts((csv_ready(b, plan, clear_nulls=clear) for b, _ in self._read_spool(plan, keys, keep)), limit)
            send_bulk(self.client, plan, operation, parts, self.outcome, timeout=float(self.config.get("bulk_timeout") or 3600))
        elif sent:
            send_collections(self.client, plan, operation, self._read_spool(plan, keys, keep), self.outcome)
        self.outcome.requests = self.client.requests
        rejected = self.outcome.rejected or []
        self._save_rejected(rejected)
        allowed = int(self.options.get("max_rejected_rows", self.config.get("max_rejected_rows") or 0))
        if len(rejected) > allowed:
            raise DIError(
                f"Salesforce rejected {len(rejected):,} of {sent:,} rows of {sobject} (max_rejected_rows: {allowed}): "
                + _listed(rejected, self.options.get("rejected_rows_file"))
                + f". {self.outcome.written:,} rows were written; the bookmark did not move.",
                stream=self.stream,
                fix="fix those rows at the source (or the field settings in Salesforce) and run again (the rows are upserted again, "
                "not duplicated, when the stream has an external ID); or raise max_rejected_rows to accept them.",
            )
        if self.options.get("delete_missing"):
            self._delete_missing(plan, keys)
        if on_commit is not None:
            on_commit(self.outcome.written, state)
        if rejected:
            message = (
                f"Salesforce rejected {len(rejected):,} of {sent:,} rows of {sobject} (within max_rejected_rows {allowed}): "
                + _listed(rejected, self.options.get("rejected_rows_file"))
            )
            log.warning(message)
            warnings.warn(message, stacklevel=3)
            self.report.append({"skipped": True, "message": message})
        return WriteResult(rows_written=self.outcome.written, state=state)

    # -- spooling --------------------------------------------------------------------------
    def _spool_rows(self, chunks: Iterable[Chunk], plan: FieldPlan) -> tuple[int, list[Any], dict[str, Any] | None]:
        """Check and convert every row into the spool; (rows, key per row, last state)."""
        problems = ValueProblems()
        keys: list[Any] = []
        rows = 0
        state = None
        writer: pa.RecordBatchStreamWriter | None = None
        sink = pa.PythonFile(self._spool, mode="w")
        for chunk in chunks:
            if chunk.state is not None:
                state = chunk.state
            batch = chunk.batch
            if not batch.num_rows:
                continue
            if plan.key_column is not None:
                key_array = batch.column(plan.key_column)
                key_values = key_array.to_pylist()
            else:
                key_array = pa.array(range(rows + 1, rows + batch.num_rows + 1), pa.int64())
                key_values = [f"row {i}" for i in key_array.to_pylist()]
            check_values(batch, plan, key_array, problems)
            if problems.counts:
                rows += batch.num_rows
                continue  # keep checking, write nothing
            text = text_batch(batch, plan)
            if writer is None:
                writer = pa.ipc.new_stream(sink, text.schema)
            writer.write_batch(text)
            keys.extend(key_values)
            rows += batch.num_rows
        if writer is not None:
            writer.close()
        message = problems.message()
        if message:
            raise SchemaMismatch(
                f"values that do not fit their {plan.sobject} fields: {message}. Nothing was written.",
                stream=self.stream,
                fix="fix the values in an upstream block, or map the columns to other fields (column_mapping under config.streams).",
            )
        return rows, keys, state

    def _read_spool(self, plan: FieldPlan, keys: list[Any], keep: list[bool] | None) -> Iterator[tuple[pa.RecordBatch, list[Any]]]:
        if not keys:
            return
        self._spool.seek(0)
        reader = pa.ipc.open_stream(pa.PythonFile(self._spool, mode="r"))
        offset = 0
        for batch in reader:
            n = batch.num_rows
            batch_keys = keys[offset : offset + n]
            if keep is not None:
                mask = keep[offset : offset + n]
                if not all(mask):
                    batch = batch.filter(pa.array(mask))
                    batch_keys = [k for k, m in zip(batch_keys, mask) if m]
            offset += n
            if batch.num_rows:
                yield batch, batch_keys

    def _keep_mask(self, keys: list[Any]) -> list[bool] | None:
        """One row per key: the last (UPDATE) or the first (IGNORE); None when every key is distinct."""
        if self.settings.unique_constraints == [] or len(set(map(_hashable, keys))) == len(keys):
            return None
        chosen: dict[Any, int] = {}
        ignore = self.settings.unique_conflict_method == "IGNORE"
        for i, k in enumerate(keys):
            if k is None:
                continue
            h = _hashable(k)
            if ignore:
                chosen.setdefault(h, i)
            else:
                chosen[h] = i
        picked = set(chosen.values())
        return [k is None or i in picked for i, k in enumerate(keys)]

    # -- IGNORE and delete_missing ---------------------------------------------------------
    def _soql_values(self, plan: FieldPlan, values: list[Any]) -> str:
        if _is_numeric(plan):
            return ", ".join(str(float(v)) if not float(v).is_integer() else str(int(float(v))) for v in values)
        return ", ".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)

    def _query_all(self, soql: str) -> Iterator[dict[str, Any]]:
        return self.client.query(soql)

    def _drop_existing(self, plan: FieldPlan, keys: list[Any], keep: list[bool] | None) -> list[bool]:
        """IGNORE: leave out rows whose external ID is already in Salesforce."""
        assert plan.key_field is not None
        field = plan.key_field.name
        numeric = _is_numeric(plan)
        candidates = sorted({_hashable(k) for k in keys if k is not None}, key=str)
        existing: set[Any] = set()
        for part in _soql_chunks(candidates):
            soql = f"SELECT {field} FROM {plan.sobject} WHERE {field} IN ({self._soql_values(plan, part)})"
            for record in self._query_all(soql):
                existing.add(_norm(record.get(field), numeric))
        mask = keep or [True] * len(keys)
        return [m and (k is None or _norm(k, numeric) not in existing) for k, m in zip(keys, mask)]

    def _delete_missing(self, plan: FieldPlan, keys: list[Any]) -> None:
        assert plan.key_field is not None
        field = plan.key_field.name
        numeric = _is_numeric(plan)
        arrived = {_norm(k, numeric) for k in keys if k is not None}
        soql = f"SELECT Id, {field} FROM {plan.sobject} WHERE {field} != null"
        doomed = [r["Id"] for r in self._query_all(soql) if _norm(r.get(field), numeric) not in arrived]
        failed: list[str] = []
        for start in range(0, len(doomed), 200):
            ids = doomed[start : start + 200]
            results = self.client.request("DELETE", self.client.data_path("composite/sobjects?allOrNone=false&ids=" + ",".join(ids))).json()
            self.outcome.requests += 1
            failed += [f"{r.get('id')}: {(r.get('errors') or [{}])[0].get('message')}" for r in results if not r.get("success")]
        if failed:
            raise DIError(
                f"delete_missing: Salesforce refused to delete {len(failed)} of {len(doomed)} records of {plan.sobject} whose "
                f"{field} did not arrive: {'; '.join(failed[:SHOWN_REJECTS])}.",
                stream=self.stream,
                fix="check the user's delete permission on the object and the records' locks, then run again.",
            )
        if doomed:
            message = f"deleted {len(doomed):,} records of {plan.sobject} whose {field} did not arrive (delete_missing)"
            log.info("stream %s: %s", self.stream, message)
            self.report.append({"skipped": False, "message": message})

    # -- rejected rows ---------------------------------------------------------------------
    def _save_rejected(self, rejected: list[Rejected]) -> None:
        target = self.options.get("rejected_rows_file")
        if not target:
            return
        path = Path(target).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"stream": self.stream, "key": r.key, "error_code": r.code, "message": r.message, "fields": r.fields} for r in rejected]
        if path.suffix.lower() == ".jsonl":
            path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
            return
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["stream", "key", "error_code", "message", "fields"])
            writer.writeheader()
            writer.writerows(rows)


def _soql_chunks(values: list[Any], most: int = 200, chars: int = 8000) -> Iterator[list[Any]]:
    """Values for ``IN (...)`` lists: at most ``most`` and about ``chars`` characters each, so a query's
    URL stays under Salesforce's limit (about 16,000 characters) even with long external IDs."""
    part: list[Any] = []
    size = 0
    for v in values:
        n = len(str(v)) + 4
        if part and (len(part) >= most or size + n > chars):
            yield part
            part, size = [], 0
        part.append(v)
        size += n
    if part:
        yield part


def _listed(rejected: list[Rejected], saved: str | None) -> str:
    shown = "; ".join(r.line() for r in rejected[:SHOWN_REJECTS])
    more = len(rejected) - SHOWN_REJECTS
    if more <= 0:
        return shown
    where = f"all of them are in {saved}" if saved else "set rejected_rows_file under config.streams to keep all of them"
    return shown + f"; and {more:,} more ({where})"


def _is_numeric(plan: FieldPlan) -> bool:
    return plan.key_field is not None and plan.key_field.type in ("double", "int", "currency", "percent", "long")


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def _norm(value: Any, numeric: bool) -> Any:
    """A key as comparable between our rows and Salesforce's answers: a float for a number field, else text."""
    if value is None:
        return None
    if numeric:
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    return value if isinstance(value, str) else str(value)
