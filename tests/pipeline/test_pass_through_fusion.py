"""A notebook run fuses a source block with its one reader, a PostgreSQL destination block: the stream
goes from server to server as binary COPY data (pipeline/fusion.py, integration/pass_through.py),
and only when nothing else needs the rows.  Against a real server, through ``jupyter-di run``: the
report says the stream was passed through and counts its rows, the table equals the source, errors
name the block that had them, and a failure leaves the destination as it was."""

from __future__ import annotations

import json

import pytest

from jupyter_di.pipeline.block import Block
from jupyter_di.pipeline.fusion import fused_pairs
from jupyter_di.pipeline.graph import Graph
from jupyter_di.state.store import StateStore
from tests.support.notebooks import pg_source, pg_yaml, run_notebook, write_notebook
from tests.support.write_paths import record_write_paths

SOURCE_DDL = """
CREATE TABLE items (id bigint PRIMARY KEY, n numeric(12,2), t text, at timestamptz, raw bytea, jb jsonb, tags text[]);
INSERT INTO items SELECT g, g / 100.0, 'row ' || g || ' é', '2024-01-01'::timestamptz + g * interval '1 second',
    decode(md5(g::text), 'hex'), jsonb_build_object('g', g), ARRAY['a', NULL, g::text] FROM generate_series(1, 20000) AS g;
INSERT INTO items VALUES (0, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE people (id int, name text);
INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 500) AS g;
"""
ITEMS = "id, n, t, at, raw, jb, tags"


def destination(pg: dict, name: str = "dst", upstream: str = "src") -> str:
    return f"%%di_destination {name} --upstream {upstream}\ndestination: postgresql\nconfig:\n{pg_yaml(pg)}  schema: copy\n"


@pytest.fixture
def paths(monkeypatch):
    """Which path each write took: 'copy' (the bytes passed through) or 'arrow'."""
    return record_write_paths(monkeypatch)


def failed_run(tmp_path, pg_config, streams, capsys) -> dict:
    """Run a source block reading ``streams`` into a destination block; the run fails: its blocks."""
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, streams), destination(pg_config)])
    code, report, _ = run_json(nb, capsys)
    assert code != 0
    return blocks_of(report)


def run_json(path, capsys, *args):
    result = run_notebook(path, "--json", "--state-path", str(path.parent / "state.sqlite"), *args, capsys=capsys)
    return result.code, json.loads(result.out), result.err


def blocks_of(report: dict) -> dict:
    return {b["name"]: b for b in report["blocks"]}


def as_text(conn, rel, columns=ITEMS):
    texts = ", ".join(f"r.{c}::text" for c in columns.split(", "))
    return conn.execute(f"SELECT {texts} FROM {rel} AS r ORDER BY r.id").fetchall()


@pytest.mark.postgres
def test_a_notebook_run_passes_the_streams_through_and_reports_their_rows(tmp_path, pg_config, pg_connect, paths, capsys, monkeypatch):
    from jupyter_di.settings import SETTINGS

    monkeypatch.setattr(SETTINGS, "max_workers", SETTINGS.max_workers)  # the CLI in this process sets it below
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    streams = "  items: {}\n  people: {run_in_parallel: true}\n"
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, streams), destination(pg_config)])
    # one worker: the destination must start on its source's slot (the source waits for it)
    code, report, err = run_json(nb, capsys, "--max-workers", "1")
    assert code == 0, err
    blocks = blocks_of(report)
    assert blocks["src"]["status"] == blocks["dst"]["status"] == "done"
    assert blocks["src"]["streams"]["items"]["rows"] == 20001
    assert blocks["src"]["streams"]["items"]["pass_through"] == "dst"
    assert blocks["src"]["streams"]["people"] == {
        "rows": 500,
        "seconds": blocks["src"]["streams"]["people"]["seconds"],
        "pass_through": "dst",
    }
    assert blocks["dst"]["streams"]["items"]["rows"] == 20001
    assert report["rows"] == 20501
    assert paths == ["copy", "copy"]
    assert as_text(conn, "copy.items") == as_text(conn, "public.items")
    assert conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'copy.items'::regclass AND attname = 'n'"
    ).fetchone() == ("numeric(12,2)",)
    assert conn.execute("SELECT count(*), max(name) FROM copy.people").fetchone() == (500, "p99")

    text = run_notebook(nb, "--state-path", str(tmp_path / "state.sqlite"), capsys=capsys)  # the table says so too
    assert text.code == 0, text.err
    assert "read, passed through to dst" in text.out
    assert paths == ["copy", "copy", "copy", "copy"]
    assert conn.execute("SELECT count(*) FROM copy.items").fetchone() == (20001,)  # replaced, not appended


@pytest.mark.postgres
def test_a_python_block_reading_the_source_keeps_the_spill(tmp_path, pg_config, pg_connect, paths, capsys):
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    cells = [
        pg_source(pg_config, "  people: {}\n"),
        destination(pg_config),
        "%%di_block count --upstream src\n@transformer\ndef f(src, **kw):\n    return {'n': len(src['rows'])}\n",
    ]
    nb = write_notebook(tmp_path / "nb.ipynb", cells)
    code, report, err = run_json(nb, capsys)
    assert code == 0, err
    assert blocks_of(report)["src"]["streams"]["people"] == {
        "rows": 500,
        "seconds": blocks_of(report)["src"]["streams"]["people"]["seconds"],
    }
    assert paths == ["arrow"]
    assert conn.execute("SELECT count(*) FROM copy.people").fetchone() == (500,)


@pytest.mark.postgres
def test_a_stream_the_destination_declines_goes_through_the_spill(tmp_path, pg_config, pg_connect, paths, capsys):
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    conn.execute("CREATE SCHEMA copy; CREATE TABLE copy.people (id bigint, name text)")  # bigint: not the source's integer
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, "  people: {}\n  items: {}\n"), destination(pg_config)])
    code, report, err = run_json(nb, capsys)
    assert code == 0, err
    src = blocks_of(report)["src"]["streams"]
    assert "pass_through" not in src["people"] and src["people"]["rows"] == 500
    assert src["items"]["pass_through"] == "dst"
    assert sorted(paths) == ["arrow", "copy"]
    assert conn.execute("SELECT count(*), sum(id) FROM copy.people").fetchone() == (500, 125250)
    assert as_text(conn, "copy.items") == as_text(conn, "public.items")


@pytest.mark.postgres
def test_a_read_error_fails_the_source_block_and_leaves_the_destination_as_it_was(tmp_path, pg_config, pg_connect, paths, capsys):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE base (id int, t text); INSERT INTO base SELECT g, repeat('x', 50) FROM generate_series(1, 200000) AS g;"
        "CREATE VIEW broken AS SELECT id, CASE WHEN id = 150000 THEN (1 / (id - id))::text ELSE t END AS t FROM base;"
        "CREATE SCHEMA copy; CREATE TABLE copy.broken (id int, t text); INSERT INTO copy.broken VALUES (7, 'old')"
    )
    blocks = failed_run(tmp_path, pg_config, "  broken: {}\n", capsys)
    assert blocks["src"]["status"] == "failed"
    assert blocks["src"]["error"].startswith("block 'src', stream 'broken': reading failed: DivisionByZero")
    assert blocks["dst"]["status"] == "skipped" and blocks["dst"]["reason"] == "upstream 'src' failed"
    assert paths == []  # the COPY was rolled back
    assert conn.execute("SELECT id, t FROM copy.broken").fetchall() == [(7, "old")]
    assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%'").fetchone() == (0,)
    assert StateStore(tmp_path / "state.sqlite").get("nb", "src", "broken") is None


@pytest.mark.postgres
def test_a_write_error_fails_the_destination_block_and_leaves_it_as_it_was(tmp_path, pg_config, pg_connect, paths, capsys):
    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    conn.execute(
        "CREATE SCHEMA copy; CREATE TABLE copy.people (id int CHECK (id < 400), name text); INSERT INTO copy.people VALUES (7, 'old')"
    )
    blocks = failed_run(tmp_path, pg_config, "  people: {}\n", capsys)
    assert blocks["dst"]["status"] == "failed"
    assert blocks["dst"]["error"].startswith("block 'dst', stream 'people': could not write into table copy.people")
    assert "check constraint" in blocks["dst"]["error"]
    # the source block reads what was not passed through as usual: its report is what it read
    assert blocks["src"]["status"] == "done" and blocks["src"]["streams"]["people"]["rows"] == 500
    assert "pass_through" not in blocks["src"]["streams"]["people"]
    assert paths == []
    assert conn.execute("SELECT id, name FROM copy.people").fetchall() == [(7, "old")]
    assert conn.execute("SELECT count(*) FROM copy._jupyter_di_state").fetchone() == (0,)


def _block(name, kind, upstream=(), body="", lang="yaml", **kw):
    return Block(name=name, kind=kind, body=body, upstream=list(upstream), lang=lang, **kw)


def test_the_planner_fuses_a_source_only_with_its_one_destination_reader():
    def pairs(*blocks, plan=None):
        graph = Graph(blocks)
        return fused_pairs(graph, plan or list(graph.blocks), lambda b: b)

    src, dst = _block("src", "source"), _block("dst", "destination", ["src"])
    assert pairs(src, dst) == {"src": "dst"}
    assert pairs(src, dst, plan=["src"]) == {}  # the destination does not run
    assert pairs(src, dst, _block("py", "python", ["src"], lang="python")) == {}  # a Python block reads the rows
    assert pairs(src, dst, _block("dst2", "destination", ["src"])) == {}  # a second destination
    assert pairs(src, _block("dst", "destination", ["src"], body="config:\n  schema: \"{{ block_output('src', 'stream') }}\"")) == {}
    assert pairs(src, _block("dst", "destination", ["src"], lang="python")) == {}
    assert pairs(src, _block("other", "source"), _block("dst", "destination", ["src", "other"])) == {}
    assert pairs(_block("src", "source", output_var="rows"), dst) == {}
    assert pairs(_block("src", "source", dynamic=True), dst) == {}
    two = pairs(src, dst, _block("s2", "source"), _block("d2", "destination", ["s2"]))
    assert two == {"src": "dst", "s2": "d2"}


@pytest.mark.postgres
def test_a_kernel_pipeline_keeps_its_outputs_so_nothing_is_passed_through(tmp_path, pg_config, pg_connect, paths):
    from jupyter_di.pipeline.pipeline import Pipeline

    conn = pg_connect()
    conn.execute(SOURCE_DDL)
    pipeline = Pipeline("kernel", state_path=tmp_path / "state.sqlite")  # keep_outputs: the kernel's default
    try:
        pipeline.define(_block("src", "source", body=pg_source(pg_config, "  people: {}\n").split("\n", 1)[1]))
        pipeline.define(_block("dst", "destination", ["src"], body=destination(pg_config).split("\n", 1)[1]))
        report = pipeline.run(pipeline.plan(["dst"], {}, only_stale_ancestors=False))
        assert report.ok, report.failure_message()
        assert pipeline.outputs["src"].to_arrow().num_rows == 500  # a later cell can read it
    finally:
        pipeline.close()
    assert paths == ["arrow"]
