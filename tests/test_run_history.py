"""The run history (issue 21): every run, from the CLI or a kernel, is recorded beside the state;
`jupyter-di runs NOTEBOOK` lists them and `jupyter-di runs show ID` details one."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.notebooks import cli_main, write_notebook

SOURCE = (
    "%%di_source src\nsource: files\nconfig:\n  path: data\nstreams:\n  orders:\n"
    "    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n"
)
DEST = "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: {path}\n"


def add_orders(folder: Path, upto: int) -> None:
    rows = "".join(f"{i},n{i},2024-01-{i:02d}T00:00:00+00:00\n" for i in range(1, upto + 1))
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "orders.csv").write_text("id,name,updated_at\n" + rows)


def test_cli_runs_are_listed_and_shown_with_rows_bookmarks_and_errors(tmp_path, capsys, monkeypatch):
    add_orders(tmp_path, 5)
    nb = write_notebook(tmp_path / "shop.ipynb", [SOURCE, DEST.format(path="wh.duckdb")])
    assert cli_main(capsys, "run", "-q", str(nb)).code == 0
    add_orders(tmp_path, 8)
    assert cli_main(capsys, "run", "-q", str(nb)).code == 0

    code, out, _ = cli_main(capsys, "runs", str(nb), "--json")
    assert code == 0
    runs = json.loads(out)
    assert [(r["id"], r["origin"], r["status"], r["pipeline"]) for r in runs] == [(1, "cli", "done", "shop"), (2, "cli", "done", "shop")]
    assert [r["rows"] for r in runs] == [5, 4]  # the second run re-reads the row tied with the bookmark
    assert (tmp_path / ".jupyter_di" / "runs.sqlite").is_file()

    code, out, _ = cli_main(capsys, "runs", "show", "2", str(nb), "--json")
    doc = json.loads(out)
    orders = {b["name"]: b for b in doc["blocks"]}["src"]["streams"]["orders"]
    assert orders["rows"] == 4
    assert orders["bookmark_before"] == {"updated_at": "2024-01-05T00:00:00+00:00"}
    assert orders["bookmark_after"] == {"updated_at": "2024-01-08T00:00:00+00:00"}
    assert {b["name"]: b for b in doc["blocks"]}["wh"]["streams"]["orders"]["rows"] == 4

    # readable forms: the list, and one run shown from the notebook's folder
    code, out, _ = cli_main(capsys, "runs", str(nb), "--last", "1")
    assert out.splitlines()[0].split() == ["id", "started", "(UTC)", "origin", "status", "rows", "read", "time"]
    assert len(out.splitlines()) == 3 and out.splitlines()[2].split()[0] == "2"
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli_main(capsys, "runs", "show", "2")
    assert code == 0 and "updated_at=2024-01-05T00:00:00+00:00" in out and "updated_at=2024-01-08T00:00:00+00:00" in out

    # a failed run is recorded with its error; an unknown id is one clear line
    write_notebook(nb, [SOURCE, DEST.format(path="no/such/folder/wh.duckdb")])
    assert cli_main(capsys, "run", "-q", str(nb)).code == 1
    failed = json.loads(cli_main(capsys, "runs", "show", "3", "--json").out)
    assert failed["status"] == "failed"
    assert "does not exist" in {b["name"]: b for b in failed["blocks"]}["wh"]["error"]
    code, _, err = cli_main(capsys, "runs", "show", "99")
    assert code == 2 and "no run 99" in err


def test_kernel_runs_are_recorded_too(tmp_path, monkeypatch, capsys):
    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / ".jupyter_di" / "state.sqlite"))
    monkeypatch.setenv("JUPYTER_DI_PIPELINE", "shop")
    add_orders(tmp_path, 3)
    nb = write_notebook(tmp_path / "shop.ipynb", [SOURCE])
    runner = fresh_shell()
    try:
        runner.ok(SOURCE)
        runner.ok("%di_run")
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")
    capsys.readouterr()  # what the cells displayed
    runs = json.loads(cli_main(capsys, "runs", str(nb), "--json").out)
    assert [(r["origin"], r["status"], r["rows"]) for r in runs] == [("kernel", "done", 3), ("kernel", "done", 1)]


def test_the_side_panel_gets_the_runs_after_a_run_and_on_connecting(tmp_path, monkeypatch):
    """The Runs view: the kernel sends the newest runs (newest first, a failed one with its error)
    after each run, and replays them to a front end that connects later."""
    from jupyter_di.notebook.comm import FrontendBridge
    from tests.notebook.test_comm import Factory, FakeKernel, frontend_opens
    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / ".jupyter_di" / "state.sqlite"))
    monkeypatch.setenv("JUPYTER_DI_PIPELINE", "shop")
    add_orders(tmp_path, 3)
    runner = fresh_shell()
    sent: list[list[dict]] = []
    try:
        monkeypatch.setattr(runner.session.bridge, "publish_runs", sent.append)
        runner.ok(SOURCE)
        runner.error(DEST.format(path="no/such/folder/wh.duckdb"))
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")
    last = sent[-1]
    assert [(r["id"], r["origin"], r["status"]) for r in last] == [(2, "kernel", "failed"), (1, "kernel", "done")]
    assert last[0]["error"].startswith("wh: ") and "does not exist" in last[0]["error"] and last[1]["error"] is None

    kernel = FakeKernel()
    bridge = FrontendBridge(kernel, comm_factory=Factory())
    bridge.register()
    bridge.publish_runs(last)
    comm = frontend_opens(kernel)
    assert {"type": "runs", "runs": last} in comm.sent


def test_clicking_a_run_in_the_runs_view_sends_its_whole_record(tmp_path, monkeypatch):
    """``request_run`` (a click on a run in the Runs view) answers with the run's record: blocks,
    streams with rows and bookmarks before/after, errors; an unknown id or another notebook's run: null."""
    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / ".jupyter_di" / "state.sqlite"))
    monkeypatch.setenv("JUPYTER_DI_PIPELINE", "shop")
    add_orders(tmp_path, 3)
    runner = fresh_shell()
    sent: list[tuple[int, dict | None]] = []
    try:
        monkeypatch.setattr(runner.session.bridge, "send_run", lambda run_id, run: sent.append((run_id, run)))
        runner.ok(SOURCE)
        runner.error(DEST.format(path="no/such/folder/wh.duckdb"))
        ask = runner.session.bridge._handlers["request_run"]
        ask({"type": "request_run", "id": 1})
        ask({"type": "request_run", "id": 2})
        ask({"type": "request_run", "id": 99})
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")
    (first_id, first), (second_id, second), (missing_id, missing) = sent
    assert (first_id, first["id"], first["status"], first["origin"]) == (1, 1, "done", "kernel")
    (src,) = [b for b in first["blocks"] if b["name"] == "src"]
    assert src["streams"]["orders"]["rows"] == 3 and src["streams"]["orders"]["bookmark_before"] is None
    assert list(src["streams"]["orders"]["bookmark_after"]) == ["updated_at"]
    assert str(src["streams"]["orders"]["bookmark_after"]["updated_at"]).startswith("2024-01-03")
    assert second["status"] == "failed" and any("does not exist" in (b.get("error") or "") for b in second["blocks"])
    assert (missing_id, missing) == (99, None)
