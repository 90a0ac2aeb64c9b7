"""The Dask executor runs a fused PostgreSQL source/destination pair as one task (dask_executor.py
``run_pair_task``), so its FULL_TABLE streams pass through as binary COPY data as in a local run.

Against a real 2-worker LocalCluster and a real server, through ``jupyter-di run --executor dask``:
the streams take the COPY path (recorded on the workers), the tables equal the source and the local
run's, a worker killed mid-COPY runs the pair again without losses or duplicates, and a read error
and a write error each name the block that had them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.pipeline.test_dask_executor import cluster, dask_args  # noqa: F401 - the module's LocalCluster fixture
from tests.pipeline.test_pass_through_fusion import SOURCE_DDL, as_text, blocks_of, destination
from tests.support.notebooks import cli_process, pg_source, write_notebook

pytest.importorskip("distributed")
pytestmark = pytest.mark.postgres

RECORD = """
import os, signal
from pathlib import Path

def arm(log, marker, kill_after):
    '''Each PostgreSQL write appends its path ('copy' or 'arrow') to ``log``; with ``kill_after``, the
    first worker to pass that many COPY pieces to the destination dies (once: ``marker``).'''
    from jupyter_di.connectors.postgres import PostgresDestination, copy_read

    arrow_write = getattr(PostgresDestination.write, "unrecorded", PostgresDestination.write)
    copy_write = getattr(PostgresDestination.write_binary_copy, "unrecorded", PostgresDestination.write_binary_copy)
    chunks = getattr(copy_read.PgBinaryCopy.chunks, "unrecorded", copy_read.PgBinaryCopy.chunks)

    def note(path):
        if Path(log).exists():
            with open(log, "a") as f:
                f.write(path + "\\n")

    def write(self, *args, **kwargs):
        note("arrow")
        return arrow_write(self, *args, **kwargs)

    def write_binary_copy(self, *args, **kwargs):
        result = copy_write(self, *args, **kwargs)
        if result is not None:
            note("copy")
        return result

    def killing_chunks(self):
        for i, piece in enumerate(chunks(self)):
            if kill_after and i == kill_after and Path(log).exists() and not Path(marker).exists():
                Path(marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)  # the worker dies with the destination's COPY half done
            yield piece

    write.unrecorded, write_binary_copy.unrecorded, killing_chunks.unrecorded = arrow_write, copy_write, chunks
    PostgresDestination.write = write
    PostgresDestination.write_binary_copy = write_binary_copy
    copy_read.PgBinaryCopy.chunks = killing_chunks
"""


BIG_DDL = """
CREATE TABLE big (id bigint, t text, at timestamptz);
INSERT INTO big SELECT g, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 300000) AS g;
CREATE SCHEMA copy; CREATE TABLE copy.big (id bigint, t text, at timestamptz); INSERT INTO copy.big VALUES (-1, 'old', NULL);
"""
"""300,000 rows (about 14 MB of COPY data) and an old row in the destination that the sync replaces."""


def arm_workers(cluster, tmp_path: Path, kill_after: int = 0) -> tuple[Path, Path]:  # noqa: F811
    """The write-path log and the kill marker; the log's existence arms the workers (removed: disarmed)."""
    log, marker = tmp_path / "paths.log", tmp_path / "killed"
    log.write_text("")
    namespace: dict = {}
    exec(RECORD, namespace)  # noqa: S102 - the test's own code, shipped to the workers
    cluster[1].run(namespace["arm"], str(log), str(marker), kill_after)
    return log, marker


def paths_of(log: Path) -> list[str]:
    paths = log.read_text().split()
    log.unlink()  # disarms the workers
    return paths


def run_json(notebook: Path, *args: str) -> tuple[int, dict, str]:
    ran = cli_process("run", "-q", str(notebook), "--json", "--state-path", str(notebook.parent / "state.sqlite"), *args)
    return ran.returncode, json.loads(ran.stdout or "{}"), ran.stderr


def task_prefixes(cluster) -> set[str]:  # noqa: F811
    return set(cluster[1].run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


def test_a_fused_pair_runs_as_one_task_and_passes_the_streams_through_on_dask(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    streams = "  items: {}\n  people: {run_in_parallel: true}\n"
    for folder in ("local", "dask"):
        (tmp_path / folder).mkdir()
    local = write_notebook(tmp_path / "local" / "nb.ipynb", [pg_source(pg_config, streams), destination(pg_config, upstream="src")])
    code, _, err = run_json(local)
    assert code == 0, err
    conn.execute("ALTER SCHEMA copy RENAME TO copy_local")
    log, _ = arm_workers(cluster, tmp_path)
    remote = write_notebook(tmp_path / "dask" / "nb.ipynb", [pg_source(pg_config, streams), destination(pg_config)])
    code, report, err = run_json(remote, *dask_args(cluster))
    assert code == 0, err
    assert paths_of(log) == ["copy", "copy"]  # both streams went server to server, on a worker
    assert "jupyter-di-pair-src" in task_prefixes(cluster)  # the two blocks ran as one task
    blocks = blocks_of(report)
    assert blocks["src"]["status"] == blocks["dst"]["status"] == "done"
    assert blocks["src"]["streams"]["items"]["rows"] == 20001
    assert blocks["src"]["streams"]["items"]["pass_through"] == "dst"
    assert blocks["src"]["streams"]["people"]["pass_through"] == "dst"
    assert blocks["dst"]["streams"]["items"]["rows"] == 20001
    assert blocks["dst"]["streams"]["people"]["rows"] == 500
    assert report["rows"] == 20501
    assert as_text(conn, "copy.items") == as_text(conn, "public.items") == as_text(conn, "copy_local.items")
    assert conn.execute("SELECT count(*), sum(id) FROM copy.people").fetchone() == (500, 125250)


def test_a_declined_stream_goes_through_the_spill_within_the_same_task(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    conn.execute("CREATE SCHEMA copy; CREATE TABLE copy.people (id bigint, name text)")  # bigint: not the source's integer
    log, _ = arm_workers(cluster, tmp_path)
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, "  people: {}\n  items: {}\n"), destination(pg_config)])
    code, report, err = run_json(nb, *dask_args(cluster))
    assert code == 0, err
    assert sorted(paths_of(log)) == ["arrow", "copy"]
    src = blocks_of(report)["src"]["streams"]
    assert "pass_through" not in src["people"] and src["people"]["rows"] == 500
    assert src["items"]["pass_through"] == "dst"
    assert conn.execute("SELECT count(*), sum(id) FROM copy.people").fetchone() == (500, 125250)
    assert as_text(conn, "copy.items") == as_text(conn, "public.items")


def test_a_worker_killed_mid_pass_through_runs_the_pair_again_without_losses_or_duplicates(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute(BIG_DDL)
    log, marker = arm_workers(cluster, tmp_path, kill_after=3)  # about 3 MB of its COPY data reached the destination
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, "  big: {}\n"), destination(pg_config)])
    try:
        code, report, err = run_json(nb, *dask_args(cluster))
    finally:
        paths = paths_of(log)
    assert code == 0, err
    assert marker.exists()  # a worker did die in the middle of the COPY
    assert int(marker.read_text()) not in cluster[1].run(os.getpid).values()
    assert paths == ["copy"]  # the killed attempt committed nothing; the retry passed the stream through
    assert blocks_of(report)["src"]["streams"]["big"]["pass_through"] == "dst"
    assert blocks_of(report)["dst"]["streams"]["big"]["rows"] == 300000
    assert conn.execute("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM copy.big").fetchone() == (300000, 300000, 1, 300000)
    assert as_text(conn, "copy.big", "id, t, at") == as_text(conn, "public.big", "id, t, at")
    deadline = time.monotonic() + 30  # the dead worker's COPY backends end once the server sees its sockets close
    while time.monotonic() < deadline and conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %'").fetchone()[0]:
        time.sleep(0.2)
    assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %'").fetchone() == (0,)
    cluster[1].wait_for_workers(2, timeout=60)


def failed_dask_run(tmp_path: Path, cluster, pg_config: dict, streams: str) -> tuple[dict, list[str]]:  # noqa: F811
    """A source block reading ``streams`` into a destination block, on Dask; the run fails: its blocks
    and the write paths taken."""
    log, _ = arm_workers(cluster, tmp_path)
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, streams), destination(pg_config)])
    code, report, _ = run_json(nb, *dask_args(cluster))
    assert code != 0
    return blocks_of(report), paths_of(log)


def test_a_read_error_fails_the_source_block_on_dask(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE base (id int, t text); INSERT INTO base SELECT g, repeat('x', 50) FROM generate_series(1, 200000) AS g;"
        "CREATE VIEW broken AS SELECT id, CASE WHEN id = 150000 THEN (1 / (id - id))::text ELSE t END AS t FROM base;"
        "CREATE SCHEMA copy; CREATE TABLE copy.broken (id int, t text); INSERT INTO copy.broken VALUES (7, 'old')"
    )
    blocks, paths = failed_dask_run(tmp_path, cluster, pg_config, "  broken: {}\n")
    assert blocks["src"]["status"] == "failed"
    assert blocks["src"]["error"].startswith("block 'src', stream 'broken': reading failed: DivisionByZero"), blocks["src"]["error"]
    assert blocks["dst"]["status"] == "skipped" and blocks["dst"]["reason"] == "upstream 'src' failed"
    assert paths == []  # the COPY was rolled back
    assert conn.execute("SELECT id, t FROM copy.broken").fetchall() == [(7, "old")]


def test_a_write_error_fails_the_destination_block_on_dask(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    conn.execute(
        "CREATE SCHEMA copy; CREATE TABLE copy.people (id int CHECK (id < 400), name text); INSERT INTO copy.people VALUES (7, 'old')"
    )
    blocks, paths = failed_dask_run(tmp_path, cluster, pg_config, "  people: {}\n")
    assert blocks["dst"]["status"] == "failed"
    assert blocks["dst"]["error"].startswith("block 'dst', stream 'people': could not write into table copy.people"), blocks["dst"]
    assert "check constraint" in blocks["dst"]["error"]
    # the source block reads what was not passed through as usual: its report is what it read
    assert blocks["src"]["status"] == "done" and blocks["src"]["streams"]["people"]["rows"] == 500
    assert "pass_through" not in blocks["src"]["streams"]["people"]
    assert paths == []
    assert conn.execute("SELECT id, name FROM copy.people").fetchall() == [(7, "old")]


def test_without_a_shared_folder_the_pair_still_runs_as_one_task(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    """Workers that do not see the run folder: no cross-process streaming, the destination block
    starts when its source is done, and still takes its part of the one task's outcome; the
    passed-through stream's output travels back as its row count."""
    from jupyter_di.integration.outputs import PassedThrough
    from jupyter_di.pipeline import dask_executor
    from jupyter_di.pipeline.block import Block
    from jupyter_di.pipeline.pipeline import Pipeline
    from jupyter_di.settings import Settings
    from tests.support.notebooks import pg_yaml

    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    settings = Settings(executor="dask", dask_scheduler=cluster[0])
    pipeline = Pipeline("nb", state_path=tmp_path / "state.sqlite", settings=settings, keep_outputs=False)
    pipeline.define(Block("src", "source", f"source: postgresql\nconfig:\n{pg_yaml(pg_config)}streams:\n  people: {{}}\n", lang="yaml"))
    pipeline.define(Block("dst", "destination", destination(pg_config).split("\n", 1)[1], upstream=["src"], lang="yaml"))
    try:
        session = dask_executor.DaskSession(settings, pipeline.work_dir)
        session.start()
        session.token, session.shared = "a-token-no-worker-sees", False  # as if the workers ran on other machines
        pipeline._dask_session = session
        report = pipeline.run(pipeline.plan(["dst"], {}, only_stale_ancestors=False))
        assert report.ok, report.failure_message()
        assert report.runs["src"].summary["streams"]["people"]["pass_through"] == "dst"
        assert report.runs["dst"].summary["streams"]["people"]["rows"] == 500
        assert isinstance(pipeline.outputs["src"], PassedThrough) and pipeline.outputs["src"].num_rows == 500
    finally:
        pipeline.close()
    assert conn.execute("SELECT count(*), sum(id) FROM copy.people").fetchone() == (500, 125250)
