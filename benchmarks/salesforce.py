"""Salesforce destination benchmark: client-side cost of the bulk and collections paths.

    python benchmarks/salesforce.py                      # 100,000 rows through Bulk API 2.0, 1,500 through collections
    python benchmarks/salesforce.py --bulk-rows 300000

Against the local stand-in (tests/support/salesforce_server.py), started in a process of its own so
its CPU is not counted: the server's speed is not ours to measure, Salesforce's is not the
stand-in's.  What counts is the client's CPU time (``time.process_time`` of this process) per
100,000 rows, next to the wall time, rows/s and the HTTP requests made.

Baselines, in the same run on the same rows:
* ``simple-salesforce`` (the widely used client): ``bulk2.Account.upsert(records=...)`` and
  ``restful('composite/sobjects/...')`` per 200 records, from the same Arrow data turned into dicts
  (``to_pylist``), as a pipeline using it would have to.
* ``pyarrow CSV only``: the floor of the bulk path, writing the rows as CSV in memory and nothing else.
Each case upserts into an empty org first (creates), the count is checked at the stand-in.
Target (issue 16): the connector's own CPU under 2 s per 100k rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_di.connectors.base import INCREMENTAL, Chunk, StreamSettings, WriteRequest  # noqa: E402
from jupyter_di.connectors.salesforce.write import SalesforceDestination  # noqa: E402

MAPPING = {"employees": "NumberOfEmployees", "score": "Score__c", "active": "Active__c", "since": "Since__c", "seen": "Last_Seen__c"}


def batches(n: int, prefix: str, size: int = 65_536) -> list[pa.RecordBatch]:
    out = []
    for start in range(0, n, size):
        ids = range(start, min(n, start + size))
        out.append(
            pa.record_batch(
                {
                    "ext_id__c": [f"{prefix}{i:07d}" for i in ids],
                    "name": [f"Customer {i} of the benchmark" for i in ids],
                    "employees": pa.array([i % 5000 for i in ids], pa.int32()),
                    "score": pa.array([Decimal(i % 10000) / 100 for i in ids], pa.decimal128(6, 2)),
                    "active": [i % 2 == 0 for i in ids],
                    "since": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=i % 1500) for i in ids], pa.date32()),
                    "seen": pa.array(
                        [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i) for i in ids], pa.timestamp("us", "UTC")
                    ),
                }
            )
        )
    return out


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/support/salesforce_server.py"), "serve"], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.url, self.ca, self.token = info["url"], info["ca"], info["token"]

    def session(self) -> Any:
        import requests

        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False
        return s

    def count(self) -> int:
        from simple_salesforce import Salesforce

        sf = Salesforce(instance_url=self.url, session_id=self.token, session=self.session())
        return int(sf.query("SELECT COUNT() FROM Account")["totalSize"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_ours(server: Server, rows: list[pa.RecordBatch], threshold: int) -> tuple[float, float, int, int]:
    config = {
        "instance_url": server.url,
        "access_token": server.token,
        "verify": server.ca,
        "bulk_threshold": threshold,
        "streams": {"accounts": {"column_mapping": MAPPING}},
    }
    settings = StreamSettings(
        stream="accounts", destination_table="Account", replication_method=INCREMENTAL, unique_constraints=["ext_id__c"]
    )
    dest = SalesforceDestination(config)
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = dest.write(WriteRequest(settings=settings, schema=rows[0].schema), [Chunk(b) for b in rows])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert dest.last_outcome is not None
    return wall, cpu, dest.last_outcome.requests, result.rows_written


def as_records(rows: list[pa.RecordBatch]) -> list[dict[str, Any]]:
    out = []
    for b in rows:
        t = b.rename_columns(["Ext_Id__c", "Name", "NumberOfEmployees", "Score__c", "Active__c", "Since__c", "Last_Seen__c"])
        for r in t.to_pylist():
            r["Score__c"] = float(r["Score__c"])
            r["Since__c"] = r["Since__c"].isoformat()
            r["Last_Seen__c"] = r["Last_Seen__c"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
            out.append(r)
    return out


def run_simple_salesforce(server: Server, rows: list[pa.RecordBatch], bulk: bool) -> tuple[float, float, int, int]:
    from simple_salesforce import Salesforce

    session = server.session()
    counted = {"n": 0}
    send = session.request

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted["n"] += 1
        return send(*args, **kwargs)

    session.request = counting  # type: ignore[method-assign]
    sf = Salesforce(instance_url=server.url, session_id=server.token, session=session)
    wall, cpu = time.perf_counter(), time.process_time()
    records = as_records(rows)
    if bulk:
        result = sf.bulk2.Account.upsert(records=records, external_id_field="Ext_Id__c", wait=0.2)
        written = sum(r["numberRecordsProcessed"] - r["numberRecordsFailed"] for r in result)
    else:
        written = 0
        for start in range(0, len(records), 200):
            part = [{"attributes": {"type": "Account"}, **r} for r in records[start : start + 200]]
            answer = sf.restful("composite/sobjects/Account/Ext_Id__c", method="PATCH", json={"allOrNone": False, "records": part})
            written += sum(1 for a in answer if a["success"])
    return time.perf_counter() - wall, time.process_time() - cpu, counted["n"], written


def csv_floor(rows: list[pa.RecordBatch]) -> tuple[float, float, int, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    sink = io.BytesIO()
    for b in rows:
        pacsv.write_csv(b, sink)
    return time.perf_counter() - wall, time.process_time() - cpu, 0, sum(b.num_rows for b in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bulk-rows", type=int, default=100_000)
    parser.add_argument("--collection-rows", type=int, default=1_500)
    args = parser.parse_args()
    table: list[tuple[str, int, tuple[float, float, int, int]]] = []
    cases = [
        ("jupyter-di bulk (Bulk API 2.0)", "bulk", args.bulk_rows, lambda s, r: run_ours(s, r, threshold=2000)),
        ("simple-salesforce bulk2.upsert", "bulk", args.bulk_rows, lambda s, r: run_simple_salesforce(s, r, bulk=True)),
        ("pyarrow CSV only (floor)", "bulk", args.bulk_rows, lambda s, r: csv_floor(r)),
        ("jupyter-di collections", "coll", args.collection_rows, lambda s, r: run_ours(s, r, threshold=10**9)),
        ("simple-salesforce composite/sobjects", "coll", args.collection_rows, lambda s, r: run_simple_salesforce(s, r, bulk=False)),
    ]
    for label, _, n, fn in cases:
        server = Server()  # an empty org per case: every case creates its rows
        try:
            rows = batches(n, "B")
            result = fn(server, rows)
            assert result[3] == n, f"{label}: wrote {result[3]} of {n}"
            if "floor" not in label:
                assert server.count() == n, f"{label}: the org holds the wrong number of rows"
        finally:
            server.stop()
        table.append((label, n, result))
        print(f"  done: {label}", flush=True)
    print()
    print(f"machine: {os.cpu_count()} cores   python {sys.version.split()[0]}   stand-in server in its own process")
    print("| case | rows | wall s | rows/s | requests | client CPU s | CPU s per 100k rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, n, (wall, cpu, requests, _) in table:
        print(f"| {label} | {n:,} | {wall:.2f} | {n / wall:,.0f} | {requests or '-'} | {cpu:.3f} | {cpu / n * 100_000:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
