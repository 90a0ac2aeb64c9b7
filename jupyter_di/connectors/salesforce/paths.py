"""The two ways rows reach Salesforce: sObject Collections (small loads) and Bulk API 2.0 (large ones).

Why two: a collections request writes up to 200 records synchronously and answers per record,
which is quick for a few thousand rows but costs one API call per 200 rows against the org's daily
allocation; a Bulk API 2.0 ingest job takes a whole CSV (up to 150 MB base64, ~100 MB of CSV) in
a handful of calls and processes it asynchronously.  Both answer per row: which were created or
updated, which were rejected, with Salesforce's error code and message.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.csv as pacsv

from ...errors import DIError
from .connection import SalesforceClient
from .fields import FieldPlan
from .values import json_records

COLLECTION_SIZE = 200


@dataclass
class Rejected:
    """One row Salesforce refused: its key (or row number), the error code and message."""

    key: Any
    code: str
    message: str
    fields: str = ""

    def line(self) -> str:
        return f"{self.key!r}: {self.code}: {self.message}"


@dataclass
class Outcome:
    written: int = 0
    created: int = 0
    rejected: list[Rejected] | None = None
    requests: int = 0
    jobs: int = 0

    def __post_init__(self) -> None:
        if self.rejected is None:
            self.rejected = []


# -- sObject Collections ---------------------------------------------------------------------


def send_collections(
    client: SalesforceClient, plan: FieldPlan, operation: str, batches: Iterable[tuple[pa.RecordBatch, list[Any]]], outcome: Outcome
) -> None:
    """Write text batches 200 records per request with ``allOrNone: false``; results come in request order."""
    if operation == "upsert" and plan.key_field is not None and plan.key_field.type != "id":
        method, path = "PATCH", client.data_path(f"composite/sobjects/{quote(plan.sobject)}/{quote(plan.key_field.name)}")
    elif operation == "upsert":  # keyed on the record Id: an update
        method, path = "PATCH", client.data_path("composite/sobjects")
    else:
        method, path = "POST", client.data_path("composite/sobjects")
    assert outcome.rejected is not None
    for batch, keys in batches:
        for start in range(0, batch.num_rows, COLLECTION_SIZE):
            part = batch.slice(start, COLLECTION_SIZE)
            records = json_records(part, plan, plan.sobject)
            results = client.request(method, path, json_body={"allOrNone": False, "records": records}).json()
            outcome.requests += 1
            if not isinstance(results, list) or len(results) != len(records):
                raise DIError(
                    f"Salesforce answered a collections request for {len(records)} records with {type(results).__name__} "
                    f"of {len(results) if isinstance(results, list) else 0} results: which rows were written is unknown.",
                    stream=client.stream,
                    fix="run again (the write is keyed, a rerun is safe) and report this if it repeats.",
                )
            for i, result in enumerate(results):
                if result.get("success"):
                    outcome.written += 1
                    outcome.created += bool(result.get("created"))
                    continue
                errors = result.get("errors") or [{}]
                first = errors[0]
                outcome.rejected.append(
                    Rejected(
                        key=keys[start + i],
                        code=str(first.get("statusCode") or "UNKNOWN"),
                        message="; ".join(str(e.get("message") or "") for e in errors),
                        fields=",".join(first.get("fields") or []),
                    )
                )


# -- Bulk API 2.0 ------------------------------------------------------------------------------


def csv_parts(batches: Iterable[pa.RecordBatch], limit_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(CSV with a header, rows) parts of at most ``limit_bytes`` each."""
    header: bytes | None = None
    body: list[bytes] = []
    size = rows = 0
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in batches:
        if header is None:
            header = (",".join(_quote(n) for n in batch.schema.names) + "\n").encode()
        pieces = [batch]
        while pieces:
            piece = pieces.pop(0)
            sink = io.BytesIO()
            pacsv.write_csv(piece, sink, options)
            data = sink.getvalue()
            if len(header) + len(data) > limit_bytes and piece.num_rows > 1:
                half = piece.num_rows // 2
                pieces[:0] = [piece.slice(0, half), piece.slice(half)]
                continue
            if len(header) + len(data) > limit_bytes:
                raise DIError(
                    f"one row is {len(data):,} bytes of CSV, more than bulk_upload_mb allows ({limit_bytes:,} bytes).",
                    fix="raise bulk_upload_mb (at most 100), or shorten the row.",
                )
            if size and size + len(data) > limit_bytes:
                yield header + b"".join(body), rows
                body, size, rows = [], len(header), 0
            if not size:
                size = len(header)
            body.append(data)
            size += len(data)
            rows += piece.num_rows
    if rows and header is not None:
        yield header + b"".join(body), rows


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def send_bulk(
    client: SalesforceClient,
    plan: FieldPlan,
    operation: str,
    parts: Iterable[tuple[bytes, int]],
    outcome: Outcome,
    *,
    timeout: float,
    on_job: Any = None,
) -> None:
    """One ingest job per part: create, upload, close, poll, then read the failed rows."""
    assert outcome.rejected is not None
    for data, rows in parts:
        spec: dict[str, Any] = {
            "object": plan.sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if operation == "upsert" and plan.key_field is not None:
            spec["externalIdFieldName"] = plan.key_field.name
        job = client.request("POST", client.data_path("jobs/ingest"), json_body=spec).json()
        job_id = job["id"]
        outcome.jobs += 1
        base = client.data_path(f"jobs/ingest/{job_id}")
        try:
            client.request("PUT", f"{base}/batches", body=data, content_type="text/csv", ok=(201,))
            client.request("PATCH", base, json_body={"state": "UploadComplete"})
        except BaseException:
            _abort(client, base)
            raise
        info = _wait(client, base, job_id, timeout)
        outcome.requests += 4
        if info.get("state") != "JobComplete":
            raise DIError(
                f"Bulk API job {job_id} ({rows:,} rows of {plan.sobject}) ended {info.get('state')}: "
                f"{info.get('errorMessage') or 'no message'}; {int(info.get('numberRecordsProcessed') or 0):,} rows were processed before it stopped.",
                stream=client.stream,
                fix="fix what the message names and run again (the bookmark did not move; a keyed rerun is safe).",
            )
        failed = int(info.get("numberRecordsFailed") or 0)
        processed = int(info.get("numberRecordsProcessed") or 0)
        if failed:
            text = client.request("GET", f"{base}/failedResults/", accept="text/csv").body.decode("utf-8")
            outcome.requests += 1
            outcome.rejected.extend(_failed_rows(text, plan))
        if processed < rows:
            # rows the job never got to: counted as rejected, so they are never silently lost
            text = client.request("GET", f"{base}/unprocessedrecords/", accept="text/csv").body.decode("utf-8")
            outcome.requests += 1
            for row in csv.DictReader(io.StringIO(text, newline="")):
                outcome.rejected.append(Rejected(_row_key(row, plan), "UNPROCESSED", "Salesforce did not process this row"))
        outcome.written += processed - failed
        if on_job is not None:
            on_job(job_id)


def _failed_rows(text: str, plan: FieldPlan) -> list[Rejected]:
    out = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        code, _, rest = (row.get("sf__Error") or "UNKNOWN:").partition(":")
        rest = rest.removesuffix(" --").rstrip()
        message, _, fields = rest.rpartition(":") if rest.count(":") else (rest, "", "")
        out.append(Rejected(_row_key(row, plan), code, message or rest, fields))
    return out


def _row_key(row: dict[str, str], plan: FieldPlan) -> Any:
    if plan.key_field is not None:
        return row.get(plan.key_field.name)
    shown = [f"{sf.name}={row.get(sf.name)!r}" for sf in plan.fields[:3]]
    return "row " + ", ".join(shown)


def _wait(client: SalesforceClient, base: str, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll the job with backoff (0.2 s doubling to 10 s) until it ends or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        info: dict[str, Any] = client.request("GET", base).json()
        if info.get("state") in ("JobComplete", "Failed", "Aborted"):
            return info
        if time.monotonic() + delay > deadline:
            raise DIError(
                f"Bulk API job {job_id} is still {info.get('state')} after {timeout:.0f} s.",
                stream=client.stream,
                fix="raise bulk_timeout, or look at the job in Setup > Bulk Data Load Jobs; a rerun upserts the rows again.",
            )
        time.sleep(delay)
        delay = min(10.0, delay * 2)


def _abort(client: SalesforceClient, base: str) -> None:
    try:
        client.request("PATCH", base, json_body={"state": "Aborted"})
    except Exception:  # the job may be gone or the network down: the upload already failed
        pass
