"""The Dask executor against a real LocalCluster (2 worker processes on 127.0.0.1).

The same notebooks give the same destination contents with the local executor and with Dask; a
worker killed mid-write and a lost scheduler lose and duplicate nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.notebooks import cli_process, duckdb_query, rows_read, write_notebook

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, ports on 127.0.0.1 only, no dashboard; closed after the module."""
    local = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR
    )
    client = distributed.Client(local, set_as_default=False)
    yield local.scheduler_address, client
    client.close()
    local.close()


def dask_args(cluster) -> list[str]:
    return ["--executor", "dask", "--scheduler", cluster[0]]


def copy_notebooks(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(ROOT / "notebooks", folder)
    return folder


def duckdb_tables(path: Path) -> dict[str, list[tuple]]:
    names = [r[0] for r in duckdb_query(path, "SELECT table_name FROM information_schema.tables WHERE table_name NOT LIKE '_jupyter_di_%'")]
    return {n: sorted(duckdb_query(path, f'SELECT * FROM "{n}"'), key=repr) for n in sorted(names)}


def test_quickstart_gives_the_same_warehouse_on_dask(tmp_path):
    local, remote = copy_notebooks(tmp_path, "local"), copy_notebooks(tmp_path, "dask")
    first = cli_process("run", str(local / "quickstart.ipynb"))
    assert first.returncode == 0, first.stderr
    second = cli_process("run", str(remote / "quickstart.ipynb"), "--executor", "dask")  # its own LocalCluster
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr and "warn" not in second.stderr.lower()
    assert "enriched_orders 817" in second.stdout  # the plain check cell ran after the Dask blocks
    expected = duckdb_tables(local / "warehouse.duckdb")
    assert set(expected) == {"orders", "customers", "enriched_orders"}
    assert duckdb_tables(remote / "warehouse.duckdb") == expected
    for folder in (local, remote):  # and the bookmarks are the same
        state = json.loads(cli_process("state", "show", str(folder / "quickstart.ipynb")).stdout)
        assert state["bookmarks"]["shop.orders"]
    assert json.loads(cli_process("state", "show", str(local / "quickstart.ipynb")).stdout) == json.loads(
        cli_process("state", "show", str(remote / "quickstart.ipynb")).stdout
    )


def test_spec_example_gives_the_same_report_on_dask(tmp_path, cluster, pg_config, pg_connect):
    """The spec's six steps (PostgreSQL, Stripe, Python, Salesforce): the same records either way."""
    from tests.support.localstripe_server import LocalStripe
    from tests.support.salesforce_server import SalesforceServer
    from tests.test_spec_example import ORDERS, expected_report, orders_with_ids, report_rows, seed_shop, shop_env

    local, remote = copy_notebooks(tmp_path, "local"), copy_notebooks(tmp_path, "dask")
    with LocalStripe() as api, SalesforceServer() as crm_local, SalesforceServer() as crm_dask:
        ids = seed_shop(api.client())
        with pg_connect() as conn:
            conn.execute(
                "CREATE TABLE orders (id integer PRIMARY KEY, customer_id text, status text, total numeric(10,2), updated_at timestamptz NOT NULL)"
            )
            for row in orders_with_ids(ORDERS, ids):
                conn.execute("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", row)
        ran = cli_process("run", str(local / "spec_example.ipynb"), env=shop_env(pg_config, api, crm_local))
        assert ran.returncode == 0, ran.stderr
        ran = cli_process("run", str(remote / "spec_example.ipynb"), *dask_args(cluster), env=shop_env(pg_config, api, crm_dask))
        assert ran.returncode == 0, ran.stderr
        assert rows_read(ran.stdout, "shop_db", "orders") == 6
        assert report_rows(crm_dask) == report_rows(crm_local) == expected_report(ORDERS, ids)
        changed = list(ORDERS)
        changed[1] = (2, 1, "Paid", "5.00", "2024-03-05T09:00:00Z")
        with pg_connect() as conn:
            conn.execute("UPDATE orders SET status = %s, updated_at = %s WHERE id = 2", (changed[1][2], changed[1][4]))
        again = cli_process("run", str(remote / "spec_example.ipynb"), *dask_args(cluster), env=shop_env(pg_config, api, crm_dask))
        assert again.returncode == 0, again.stderr
        assert rows_read(again.stdout, "shop_db", "orders") == 2  # the change and the row at the bookmark
        assert report_rows(crm_dask) == expected_report(changed, ids)
        assert len(crm_dask.rows("Order_Report__c")) == 5


PG_NOTEBOOK = [
    "%load_ext jupyter_di",
    """%%di_source src
source: postgresql
config: {config}
streams:
  items:
    partitions: 2
  events:
    replication_method: INCREMENTAL
    bookmark_properties: [updated_at]
    key_properties: [id]
    partitions: 2
""",
    """%%di_destination dst --upstream src
destination: postgresql
config: {dst_config}
""",
]


def pg_notebook(folder: Path, pg_config: dict, schema: str, *, partitions: bool = True, fused: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cells = [
        c.replace("{config}", json.dumps(pg_config)).replace("{dst_config}", json.dumps({**pg_config, "schema": schema}))
        for c in PG_NOTEBOOK
    ]
    if not partitions:  # one ordered query: the bookmark advances with every batch
        cells = [c.replace("    partitions: 2\n", "") for c in cells]
    if not fused:  # an -o variable keeps the source's output: not fused (fusion.py), two tasks in two processes
        cells = [c.replace("%%di_source src\n", "%%di_source src -o src_out\n") for c in cells]
    return write_notebook(folder / "sync.ipynb", cells)


def seed(conn, rows: int) -> None:
    conn.execute(
        f"CREATE TABLE items AS SELECT i AS id, md5(i::text) AS label, (i * 0.5)::numeric(12,2) AS price FROM generate_series(1, {rows}) i"
    )
    conn.execute("ALTER TABLE items ADD PRIMARY KEY (id)")
    conn.execute(
        "CREATE TABLE events AS SELECT i AS id, timestamptz '2024-01-01' + mod(i, 977) * interval '1 second' AS updated_at, "
        f"repeat('x', 40) AS payload FROM generate_series(1, {rows}) i"
    )
    conn.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
    conn.execute("ANALYZE items")
    conn.execute("ANALYZE events")


def table_rows(conn, schema: str, table: str) -> list[tuple]:
    return conn.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY id').fetchall()


def test_partitioned_postgres_to_postgres_is_the_same_on_dask(tmp_path, cluster, pg_config, pg_connect):
    conn = pg_connect()
    seed(conn, 20_000)
    conn.execute("CREATE SCHEMA local_dst")
    conn.execute("CREATE SCHEMA dask_dst")
    local = pg_notebook(tmp_path / "local", pg_config, "local_dst")
    remote = pg_notebook(tmp_path / "dask", pg_config, "dask_dst")
    ran = cli_process("run", str(local))
    assert ran.returncode == 0, ran.stderr
    ran = cli_process("run", str(remote), *dask_args(cluster))
    assert ran.returncode == 0, ran.stderr
    prefixes = cluster[1].run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "jupyter-di-part" in prefixes  # the parts ran as Dask tasks of their own
    for table in ("items", "events"):
        source = table_rows(conn, "public", table)
        assert table_rows(conn, "local_dst", table) == source
        assert table_rows(conn, "dask_dst", table) == source
    # the next run reads from the bookmark the parts left (the greatest, once all finished)
    ties = sum(1 for i in range(1, 20_001) if i % 977 == 976)
    conn.execute("UPDATE events SET updated_at = timestamptz '2024-02-01', payload = 'changed' WHERE id IN (5, 6)")
    for notebook, args in ((local, []), (remote, dask_args(cluster))):
        ran = cli_process("run", str(notebook), *args)
        assert ran.returncode == 0, ran.stderr
        assert rows_read(ran.stdout, "src", "events") == 2 + ties  # the changes and the rows tied at the bookmark
    assert table_rows(conn, "local_dst", "events") == table_rows(conn, "dask_dst", "events") == table_rows(conn, "public", "events")


KILL_MID_WRITE = """
import os, signal
from pathlib import Path

def arm(marker):
    from jupyter_di.connectors.postgres import write

    write.COPY_BYTES = 256 * 1024  # many commits per stream
    original = write._TableWriter._commit
    calls = {"n": 0}

    def commit(self, state):
        original(self, state)
        if self.table == "events":
            calls["n"] += 1
            if calls["n"] == 5 and not Path(marker).exists():
                Path(marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)  # the worker dies between two commits of its block

    write._TableWriter._commit = commit
"""


def _arm_workers(client, marker: Path) -> None:
    namespace: dict = {}
    exec(KILL_MID_WRITE, namespace)  # noqa: S102 - the test's own code, shipped to the workers
    client.run(namespace["arm"], str(marker))


def test_a_worker_killed_mid_write_is_retried_without_losses_or_duplicates(tmp_path, cluster, pg_config, pg_connect):
    conn = pg_connect()
    seed(conn, 150_000)
    conn.execute("CREATE SCHEMA dst")
    notebook = pg_notebook(tmp_path / "nb", pg_config, "dst")
    marker = tmp_path / "killed"
    _arm_workers(cluster[1], marker)
    ran = cli_process("run", str(notebook), *dask_args(cluster))
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert marker.exists()  # a worker did die in the middle of the destination block
    assert int(marker.read_text()) not in cluster[1].run(os.getpid).values()
    for table in ("items", "events"):
        assert table_rows(conn, "dst", table) == table_rows(conn, "public", table)
    state = json.loads(cli_process("state", "show", str(notebook)).stdout)
    assert state["bookmarks"]["src.events"] == {"updated_at": "2024-01-01T00:16:16+00:00"}
    cluster[1].wait_for_workers(2, timeout=60)


def _dask_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_a_lost_scheduler_fails_the_run_clearly_and_the_next_run_resumes(tmp_path, cluster, pg_config, pg_connect):
    conn = pg_connect()
    seed(conn, 150_000)
    conn.execute("CREATE SCHEMA dst")
    notebook = pg_notebook(tmp_path / "nb", pg_config, "dst", partitions=False)
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = _dask_cli(
        "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)
    )
    workers = None
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = _dask_cli("distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--no-dashboard")
        with distributed.Client(address, set_as_default=False, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            namespace: dict = {}
            exec(SLOW_COMMITS, namespace)  # noqa: S102
            client.run(namespace["slow"])
        run = subprocess.Popen(
            [sys.executable, "-m", "jupyter_di.cli", "run", str(notebook), "--executor", "dask", "--scheduler", address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Killed only once a commit of events is in the state file, not merely in dst.events: a worker
        # stopped between the two (the slow commit above sleeps right there) leaves the bookmark one
        # commit behind, which is safe (the next run upserts what it reads again) but not a resume.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and saved_bookmark(notebook, "src", "events") is None and run.poll() is None:
            time.sleep(0.2)
        os.killpg(scheduler.pid, signal.SIGKILL)
        out, err = run.communicate(timeout=180)
    finally:
        for proc in (scheduler, workers):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert run.returncode == 1, out + err
    assert "lost the Dask scheduler" in err and "the next run resumes" in err
    assert "Traceback" not in out + err
    committed = conn.execute("SELECT count(*) FROM dst.events").fetchone()[0]
    assert 0 < committed < 150_000
    bookmark = saved_bookmark(notebook, "src", "events")
    assert bookmark is not None
    from_bookmark = conn.execute("SELECT count(*) FROM events WHERE updated_at >= %s", (bookmark["updated_at"],)).fetchone()[0]
    assert from_bookmark < 150_000
    again = cli_process("run", str(notebook), *dask_args(cluster))
    assert again.returncode == 0, again.stderr
    assert rows_read(again.stdout, "src", "events") == from_bookmark  # resumed from the committed bookmark
    for table in ("items", "events"):
        assert table_rows(conn, "dst", table) == table_rows(conn, "public", table)


def saved_bookmark(notebook: Path, block: str, stream: str) -> dict | None:
    """The bookmark the notebook's state file holds now (None before it exists: nothing is created)."""
    from jupyter_di.state import api

    if not api.state_path_for(notebook).exists():
        return None
    return api.get_bookmark(notebook, block, stream)


SLOW_COMMITS = """
import time

def slow():
    from jupyter_di.connectors.postgres import write

    write.COPY_BYTES = 256 * 1024
    original = write._TableWriter._commit

    def commit(self, state):
        original(self, state)
        time.sleep(0.3)

    write._TableWriter._commit = commit
"""


def _files_to_duckdb(tmp_path: Path, settings) -> tuple[Path, object]:
    """An in-process pipeline: CSV files -> a Python block -> DuckDB, on the settings' executor."""
    from jupyter_di.pipeline.block import Block
    from jupyter_di.pipeline.pipeline import Pipeline

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "orders.csv").write_text("id,total\n" + "".join(f"{i},{i * 1.5}\n" for i in range(1, 2001)))
    target = tmp_path / f"out-{settings.executor}.duckdb"
    pipeline = Pipeline("files", state_path=tmp_path / f"state-{settings.executor}.sqlite", settings=settings)
    pipeline.define(Block("src", "source", f"source: files\nconfig:\n  path: {data}\n  format: csv\n", lang="yaml"))
    pipeline.define(
        Block(
            "double",
            "python",
            "@transformer\ndef f(src, *a, **k):\n    df = src.to_pandas()\n    df['twice'] = df['total'] * 2\n    return df\n",
            upstream=["src"],
        )
    )
    pipeline.define(
        Block("dst", "destination", f"destination: duckdb\nconfig:\n  path: {target}\n", upstream=["src", "double"], lang="yaml")
    )
    return target, pipeline


def test_without_a_shared_folder_outputs_move_through_spill_url_and_arrow(tmp_path, cluster):
    from jupyter_di.settings import Settings

    local_target, local = _files_to_duckdb(tmp_path, Settings())
    assert local.run(local.plan(["dst"], {}, only_stale_ancestors=False)).ok
    local.close()
    spill = tmp_path / "spill"
    settings = Settings(executor="dask", dask_scheduler=cluster[0], spill_url=f"file://{spill}", dask_inline_bytes=0)
    target, pipeline = _files_to_duckdb(tmp_path, settings)
    try:
        plan = pipeline.plan(["dst"], {}, only_stale_ancestors=False)
        from jupyter_di.pipeline import dask_executor

        session = dask_executor.DaskSession(settings, pipeline.work_dir)
        session.start()
        session.token = "a-token-no-worker-sees"  # as if the workers ran on other machines
        session.shared = False
        pipeline._dask_session = session
        report = pipeline.run(plan)
        assert report.ok, report.failure_message()
        source_output = pipeline.outputs["src"]
        assert "client" in str(source_output._path)  # copied back from the spill location, not a shared path
        assert source_output.num_rows == 2000
        assert spill.is_dir() and not any(spill.rglob("*.arrow"))  # outputs went through it; the run's files are gone
    finally:
        pipeline.close()
    assert duckdb_tables(target) == duckdb_tables(local_target)


def test_kernel_settings_choose_the_executor():
    from jupyter_di.notebook.config import JupyterDI
    from jupyter_di.settings import SETTINGS

    before = (SETTINGS.executor, SETTINGS.dask_scheduler, SETTINGS.spill_url)
    try:
        config = JupyterDI()
        config.executor = "dask"
        config.dask_scheduler = "tcp://127.0.0.1:8786"
        config.spill_url = "s3://bucket/jdi"
        assert (SETTINGS.executor, SETTINGS.dask_scheduler, SETTINGS.spill_url) == ("dask", "tcp://127.0.0.1:8786", "s3://bucket/jdi")
    finally:
        SETTINGS.executor, SETTINGS.dask_scheduler, SETTINGS.spill_url = before


def test_an_unknown_executor_is_one_clear_error(tmp_path):
    from jupyter_di.errors import ConfigError
    from jupyter_di.settings import Settings

    _, pipeline = _files_to_duckdb(tmp_path, Settings(executor="spark"))
    try:
        with pytest.raises(ConfigError, match="unknown executor 'spark'"):
            pipeline.run(pipeline.plan(["dst"], {}, only_stale_ancestors=False))
    finally:
        pipeline.close()


KILL_IN_PART = """
import os, signal
from pathlib import Path

def arm(marker):
    from jupyter_di.pipeline import dask_executor

    original = dask_executor.spill_part

    def spill_part(job, *where):
        batches = iter(job())
        first = next(batches, None)
        if first is not None and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies halfway through reading its part
        return original(lambda: iter([] if first is None else [first, *batches]), *where)

    dask_executor.spill_part = spill_part
"""


def _killed_part_run(tmp_path: Path, cluster, pg_config, pg_connect, code: str, rows: int) -> tuple[Any, Path]:
    """Arm the workers with ``code`` (it kills one once), run a partitioned sync on Dask; the
    destination must equal the source whatever died."""
    conn = pg_connect()
    seed(conn, rows)
    conn.execute("CREATE SCHEMA dst")
    notebook = pg_notebook(tmp_path / "nb", pg_config, "dst")
    marker = tmp_path / "killed"
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the test's own code, shipped to the workers
    cluster[1].run(namespace["arm"], str(marker))
    ran = cli_process("run", str(notebook), *dask_args(cluster))
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert marker.exists()
    for table in ("items", "events"):
        assert table_rows(conn, "dst", table) == table_rows(conn, "public", table)
    cluster[1].wait_for_workers(2, timeout=60)
    return conn, notebook


def test_a_worker_killed_while_reading_a_part_is_retried_from_the_same_snapshot(tmp_path, cluster, pg_config, pg_connect):
    _killed_part_run(tmp_path, cluster, pg_config, pg_connect, KILL_IN_PART, 50_000)


def test_config_lines_in_the_notebook_choose_dask_for_a_headless_run(tmp_path, cluster):
    """``%config JupyterDI.executor = 'dask'`` and ``JupyterDI.dask_scheduler`` in the notebook, no flags."""
    import nbformat

    folder = copy_notebooks(tmp_path, "nb")
    path = folder / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    load = next(i for i, c in enumerate(nb.cells) if c.source.startswith("%load_ext jupyter_di"))
    nb.cells[load].source += f"\n%config JupyterDI.executor = 'dask'\n%config JupyterDI.dask_scheduler = '{cluster[0]}'\n"
    nbformat.write(nb, path)
    ran = cli_process("run", str(path))
    assert ran.returncode == 0, ran.stderr
    prefixes = cluster[1].run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert {"jupyter-di-block-shop", "jupyter-di-block-warehouse"} <= set(prefixes)  # task prefixes name the blocks
    assert duckdb_query(folder / "warehouse.duckdb", "SELECT count(*) FROM enriched_orders") == [(817,)]


STREAM_PROBE = """
import os, signal, time
from pathlib import Path

def arm(log, marker, kill):
    from jupyter_di.connectors.postgres import write
    from jupyter_di.sync import live_spill

    write.COPY_BYTES = 256 * 1024  # many commits per stream
    commit, publish, finish = write._TableWriter._commit, live_spill.LiveSpill.publish, live_spill.LiveSpill.finish

    def note(line):
        if Path(log).exists():
            with open(log, "a") as f:
                f.write(f"{line} {time.time()}\\n")

    def probe_commit(self, state):
        commit(self, state)
        note(f"commit {self.table}")

    def probe_publish(self, nbytes, state, *, batch=True):
        publish(self, nbytes, state, batch=batch)
        if batch and self.stream == "events" and Path(log).exists():
            self.origin["probe"] = self.origin.get("probe", 0) + 1
            if self.origin["probe"] != 3:
                return
            if kill and not Path(marker).exists():
                Path(marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)  # the source's worker dies while its destination streams
            deadline = time.time() + 60  # the source holds its last batches until the destination committed rows
            while not kill and time.time() < deadline and "commit events" not in Path(log).read_text():
                time.sleep(0.05)

    def probe_finish(self):
        finish(self)
        note(f"finish {self.stream}")

    write._TableWriter._commit = probe_commit
    live_spill.LiveSpill.publish = probe_publish
    live_spill.LiveSpill.finish = probe_finish
"""


def _probed_run(tmp_path: Path, cluster, pg_config, pg_connect, *, kill: bool) -> tuple[Any, Any, Path, list[list[str]]]:
    """Seed, arm the workers with STREAM_PROBE, run the notebook on Dask; (run, conn, notebook, probe lines)."""
    conn = pg_connect()
    seed(conn, 100_000)
    conn.execute("CREATE SCHEMA dst")
    notebook = pg_notebook(tmp_path / "nb", pg_config, "dst", partitions=False, fused=False)  # the cross-process hand-off
    log, marker = tmp_path / "probe.log", tmp_path / "killed"
    log.write_text("")
    namespace: dict = {}
    exec(STREAM_PROBE, namespace)  # noqa: S102 - the test's own code, shipped to the workers
    cluster[1].run(namespace["arm"], str(log), str(marker), kill)
    try:
        ran = cli_process("run", str(notebook), *dask_args(cluster))
    finally:
        lines = [line.split() for line in log.read_text().splitlines()]
        log.unlink()  # disarms the probe
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert marker.exists() == kill
    for table in ("items", "events"):
        assert table_rows(conn, "dst", table) == table_rows(conn, "public", table)
    state = json.loads(cli_process("state", "show", str(notebook)).stdout)
    assert state["bookmarks"]["src.events"] == {"updated_at": "2024-01-01T00:16:16+00:00"}
    return ran, conn, notebook, lines


def test_a_destination_streams_from_its_running_source_on_dask(tmp_path, cluster, pg_config, pg_connect):
    """The destination task commits rows of ``events`` before the source task has read them all."""
    _, _, _, lines = _probed_run(tmp_path, cluster, pg_config, pg_connect, kill=False)
    finished = min(float(t) for kind, name, t in lines if kind == "finish" and name == "events")
    first_commit = min(float(t) for kind, name, t in lines if kind == "commit" and name == "events")
    assert first_commit < finished


def test_a_source_worker_killed_while_its_destination_streams_is_retried_without_losses(tmp_path, cluster, pg_config, pg_connect):
    """The source task runs again; its streaming destination reads the new attempt from its start
    (the contents and the bookmark are checked in ``_probed_run``)."""
    _probed_run(tmp_path, cluster, pg_config, pg_connect, kill=True)
    cluster[1].wait_for_workers(2, timeout=60)


def test_live_row_counts_reach_the_observers_on_dask(tmp_path, cluster):
    """Rows per stream while a block runs on a worker reach the client's observers (worker events)."""
    from jupyter_di.pipeline.observer import RunObserver
    from jupyter_di.settings import Settings

    seen: list[tuple[str, str, str, int]] = []

    class Recorder(RunObserver):
        def stream_progress(self, block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
            seen.append((block, stream, phase, rows))

    _, pipeline = _files_to_duckdb(tmp_path, Settings(executor="dask", dask_scheduler=cluster[0]))
    try:
        report = pipeline.run(pipeline.plan(["dst"], {}, only_stale_ancestors=False), observers=[Recorder()])
        assert report.ok, report.failure_message()
    finally:
        pipeline.close()
    assert ("src", "orders", "read", 2000) in seen
    assert any(block == "dst" and phase == "write" and rows > 0 for block, _, phase, rows in seen)


KILL_MID_PART = """
import os, signal
from pathlib import Path

def arm(marker):
    from jupyter_di.sync import live_spill

    publish = live_spill.LiveSpill.publish

    def probe_publish(self, nbytes, state, *, batch=True):
        publish(self, nbytes, state, batch=batch)
        if batch and self.stream == "part" and not Path(marker).exists():
            self.origin["probe"] = self.origin.get("probe", 0) + 1
            if self.origin["probe"] == 2:
                Path(marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)  # a part's worker dies after its reader took rows from it

    live_spill.LiveSpill.publish = probe_publish
"""


def test_a_part_worker_killed_mid_stream_restarts_the_read_without_losses(tmp_path, cluster, pg_config, pg_connect):
    """Parts stream to their reading task; a part that dies after some of its rows moved on makes
    the reading task (and its streaming destination) run again from the committed state."""
    _, notebook = _killed_part_run(tmp_path, cluster, pg_config, pg_connect, KILL_MID_PART, 100_000)
    state = json.loads(cli_process("state", "show", str(notebook)).stdout)
    assert state["bookmarks"]["src.events"] == {"updated_at": "2024-01-01T00:16:16+00:00"}
