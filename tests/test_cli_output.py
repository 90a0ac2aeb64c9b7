"""What `jupyter-di run` prints (issue 21): final counts in progress lines, a narrow failed-block
table with the error once below it, and `--json` for schedulers."""

from __future__ import annotations

import io
import json
from pathlib import Path

from jupyter_di.cli import TerminalProgress
from jupyter_di.pipeline.run_record import DONE, RUNNING, BlockRun
from tests.support.notebooks import cli_main, write_notebook

SOURCE = "%%di_source src\nsource: files\nconfig:\n  path: data\nstreams:\n  orders: {}\n"
DEST = "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: {path}\n"


def project(tmp_path: Path, dest_path: str = "wh.duckdb") -> Path:
    (tmp_path / "data").mkdir()
    rows = "".join(f"{i},n{i}\n" for i in range(1, 101))
    (tmp_path / "data" / "orders.csv").write_text("id,name\n" + rows)
    return write_notebook(tmp_path / "nb.ipynb", ["print('from a plain cell')", SOURCE, DEST.format(path=dest_path)])


def test_a_throttled_stream_ends_on_its_final_count():
    out = io.StringIO()
    progress = TerminalProgress(out, bars=False)
    run = BlockRun("src")
    run.start()
    progress.block_changed(run)
    for rows in (7_860, 50_000, 100_000):  # within one second: only the first is printed as it comes
        progress.stream_progress("src", "orders", "read", rows, 1.0)
    run.finish(DONE)
    progress.block_changed(run)
    lines = out.getvalue().splitlines()
    assert lines[1] == "    src.orders read: 7,860 rows (7,860 rows/s)"
    assert lines[2] == "    src.orders read: 100,000 rows (100,000 rows/s), final"
    assert lines[3].startswith("✔ src done")
    assert RUNNING in lines[0]


def test_a_stream_already_printed_at_its_final_count_is_not_printed_twice():
    out = io.StringIO()
    progress = TerminalProgress(out, bars=False)
    run = BlockRun("src")
    run.start()
    progress.stream_progress("src", "orders", "read", 10, 0.5)
    run.finish(DONE)
    progress.block_changed(run)
    assert out.getvalue().count("src.orders read") == 1


def test_json_prints_the_report_alone_on_stdout(tmp_path, capsys):
    nb = project(tmp_path)
    code, out, err = cli_main(capsys, "run", str(nb), "--json")
    assert code == 0, err
    doc = json.loads(out)  # nothing else on stdout: the plain cell's print went to stderr
    assert "from a plain cell" in err
    assert doc["status"] == "done" and doc["pipeline"] == "nb" and doc["rows"] == 100
    blocks = {b["name"]: b for b in doc["blocks"]}
    assert blocks["src"]["streams"]["orders"]["rows"] == 100
    assert blocks["wh"]["streams"]["orders"] == {"rows": 100, "table": "orders", "seconds": blocks["wh"]["streams"]["orders"]["seconds"]}
    assert blocks["wh"]["kind"] == "destination" and blocks["wh"]["error"] is None


def test_a_failed_block_keeps_the_table_narrow_and_says_the_error_once(tmp_path, capsys):
    nb = project(tmp_path, dest_path="no/such/folder/" + "x" * 80 + "/wh.duckdb")
    code, out, err = cli_main(capsys, "run", str(nb))
    assert code == 1
    table = out.split("\n\n")[0]
    assert "see the error below" in table and max(len(line) for line in table.splitlines()) < 60
    assert (out + err).count("does not exist") == 1
    code, out, err = cli_main(capsys, "run", str(nb), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["status"] == "failed"
    [failed] = [b for b in doc["blocks"] if b["status"] == "failed"]
    assert failed["name"] == "wh" and "does not exist" in failed["error"]


def test_json_says_failed_when_a_plain_cell_raises(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id\n1\n")
    nb = write_notebook(tmp_path / "nb.ipynb", [SOURCE, "raise ValueError('boom')"])
    code, out, err = cli_main(capsys, "run", str(nb), "--json")
    assert code == 1 and "boom" in err
    assert json.loads(out)["status"] == "failed"
