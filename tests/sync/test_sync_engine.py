"""The sync engine's own parts: read-ahead, chunk states, spill files."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from jupyter_di.connectors.base import StreamSettings
from jupyter_di.sync.prefetch import prefetched
from jupyter_di.sync.spill import open_reader, spill


def reader_of(n_batches: int, fail_at: int | None = None, delay: float = 0.0) -> pa.RecordBatchReader:
    schema = pa.schema([("id", pa.int64()), ("updated_at", pa.int64())])

    def batches():
        for i in range(n_batches):
            if fail_at is not None and i == fail_at:
                raise ValueError(f"source broke at batch {i}")
            time.sleep(delay)
            yield pa.record_batch([pa.array([i * 10 + j for j in range(10)]), pa.array([i] * 10)], schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def test_prefetch_keeps_order_and_every_row():
    with prefetched(reader_of(50)) as stream:
        ids = [v for b in stream for v in b.column(0).to_pylist()]
    assert ids == list(range(500))


def test_prefetch_raises_the_source_error_in_the_consumer():
    with pytest.raises(ValueError, match="source broke at batch 3"):
        with prefetched(reader_of(10, fail_at=3)) as stream:
            for _ in stream:
                pass


def test_prefetch_stops_reading_when_the_consumer_fails():
    before = threading.active_count()
    read = []

    def batches():
        for i in range(1000):
            read.append(i)
            time.sleep(0.001)
            yield pa.record_batch([pa.array([i])], names=["id"])

    with pytest.raises(RuntimeError, match="destination broke"):
        with prefetched(pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), batches()), depth=2) as stream:
            for _batch in stream:
                raise RuntimeError("destination broke")
    assert threading.active_count() == before  # the reading thread has ended
    assert len(read) <= 5  # it stopped reading ahead instead of draining the source


def test_spill_records_the_bookmark_of_each_batch_and_reads_back(tmp_path):
    settings = StreamSettings("s", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["id"])
    result = spill(reader_of(4), tmp_path / "s.arrow", settings)
    assert result.rows == 40
    assert result.batch_states == [{"bookmark": {"updated_at": i}} for i in range(4)]
    assert result.final_state == {"bookmark": {"updated_at": 3}}
    assert open_reader(result.path).read_all().column("id").to_pylist() == list(range(40))
    full = spill(reader_of(2), tmp_path / "f.arrow", StreamSettings("f"))
    assert full.batch_states == [None, None] and full.final_state is None


def test_driver_errors_never_show_the_blocks_secrets():
    from jupyter_di.integration.resolved import ResolvedBlock
    from jupyter_di.integration.runner import redact

    resolved = ResolvedBlock.make(
        name="src",
        kind="source",
        connector="postgresql",
        config={"host": "db", "password": "hunter2!"},
        secrets_used=["tok-123456"],
    )
    message = redact("connect failed: postgresql://etl:hunter2!@db/shop (token tok-123456)", resolved)
    assert message == "connect failed: postgresql://etl:***@db/shop (token ***)"
