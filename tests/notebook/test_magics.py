"""The magics in a real IPython shell: blocks, upstream arguments, staleness, errors."""

from __future__ import annotations

import pytest

from tests.support.shell import fresh_shell


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    runner = fresh_shell()
    runner.ip.user_ns["calls"] = []
    yield runner
    runner.ip.extension_manager.unload_extension("jupyter_di")


LOADER = """%%di_block numbers -o numbers_out
@data_loader
def load(*args, **kwargs):
    calls.append("numbers")
    import pandas as pd
    return pd.DataFrame({"n": [1, 2, 3]})
"""


def test_python_blocks_pass_outputs_positionally_and_bind_output_variable(shell):
    shell.ok(LOADER)
    shell.ok(
        """%%di_block doubled --upstream numbers -o doubled_out
@transformer
def double(df, *args, **kwargs):
    return df.assign(n2=df.n * 2)
"""
    )
    assert shell.ip.user_ns["doubled_out"]["n2"].tolist() == [2, 4, 6]
    assert shell.ip.user_ns["numbers_out"]["n"].tolist() == [1, 2, 3]


def test_upstreams_arrive_by_keyword_when_a_parameter_is_named_after_them(shell):
    shell.ok("%%di_block a -o a_out\n@data_loader\ndef f(**kw):\n    return 'A'\n")
    shell.ok("%%di_block b\n@data_loader\ndef f(**kw):\n    return 'B'\n")
    shell.ok(
        """%%di_block joined --upstream a b -o out
@custom
def join(b, a, **kwargs):
    return f"{a}{b}:{kwargs['pipeline']}:{type(kwargs['execution_date']).__name__}"
"""
    )
    assert shell.ip.user_ns["out"] == "AB:notebook:datetime"


def test_running_a_cell_runs_stale_upstreams_and_reuses_fresh_ones(shell):
    shell.ok(LOADER)
    shell.ok(
        "%%di_block total --upstream numbers -o total\n@transformer\ndef t(df, **kw):\n    calls.append('total')\n    return int(df.n.sum())\n"
    )
    assert shell.ip.user_ns["calls"] == ["numbers", "total"]
    shell.ok(
        "%%di_block total --upstream numbers -o total\n@transformer\ndef t(df, **kw):\n    calls.append('total')\n    return int(df.n.sum())\n"
    )
    assert shell.ip.user_ns["calls"] == ["numbers", "total", "total"]  # numbers was fresh: reused
    shell.ok(LOADER.replace("[1, 2, 3]", "[10, 20]"))
    assert shell.ip.user_ns["total"] == 6  # total not re-run yet
    assert shell.session.pipeline.is_stale("total", {})
    shell.ok("%di_run --blocks total")
    assert shell.ip.user_ns["total"] == 30


def test_usage_errors_are_one_line_and_name_the_fix(shell):
    assert "needs a block name" in shell.error("%%di_block\n@custom\ndef f(**kw):\n    return 1\n")
    assert "unrecognized arguments: --bogus" in shell.error("%%di_block x --bogus\n@custom\ndef f(**kw):\n    return 1\n")
    message = shell.error("%%di_block x --upstream nope\n@custom\ndef f(**kw):\n    return 1\n")
    assert "upstream block 'nope' is not defined" in message and "Fix:" in message
    shell.ok("%%di_block same\n@custom\ndef f(**kw):\n    return 1\n", cell_id="c1")
    message = shell.error("%%di_block same\n@custom\ndef f(**kw):\n    return 2\n", cell_id="c2")
    assert "'same' is already used by another cell" in message
    assert "not a valid name" in shell.error("%%di_block 9lives\n@custom\ndef f(**kw):\n    return 1\n")
    assert "defines no block function" in shell.error("%%di_block empty\nx = 1\n")
    assert "--lang" not in shell.error("%%di_block y --lang yaml\n")  # --lang is for sources/destinations only


def test_failure_in_block_code_skips_downstream_and_reports_why(shell):
    shell.ok("%%di_block bad\n@data_loader\ndef f(**kw):\n    return 1\n")
    shell.ok("%%di_block after --upstream bad\n@transformer\ndef g(x, **kw):\n    return x + 1\n")
    message = shell.error("%%di_block bad\n@data_loader\ndef f(**kw):\n    raise RuntimeError('no data today')\n")
    assert message == "block 'bad': f() raised RuntimeError: no data today"
    message = shell.error("%di_run")
    assert "block 'bad': f() raised RuntimeError: no data today" in message
    assert "'after' (upstream 'bad' failed)" in message


def test_cycle_is_reported_with_its_blocks(shell):
    shell.ok("%%di_block a\n@custom\ndef f(**kw):\n    return 1\n")
    shell.ok("%%di_block b --upstream a\n@custom\ndef f(x, **kw):\n    return 1\n")
    message = shell.error("%%di_block a --upstream b\n@custom\ndef f(x, **kw):\n    return 1\n")
    assert "cycle" in message and "a" in message and "b" in message
    # the old definition of a stays, so the pipeline still runs
    shell.ok("%di_run")


def test_di_run_passes_params_and_di_graph_prints_mermaid(shell, capsys):
    shell.ok("%%di_block p -o p\n@custom\ndef f(**kw):\n    return kw.get('region')\n")
    shell.ok("%di_run -p region=emea")
    assert shell.ip.user_ns["p"] == "emea"
    shell.ok("%di_graph --format text")
    out = capsys.readouterr().out
    assert "flowchart LR" in out and "p[" in out
    assert "is not key=value" in shell.error("%di_run -p novalue")


def test_yaml_source_and_destination_blocks_move_data(shell, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "people.csv").write_text("id,name\n1,Ana\n2,Bo\n")
    shell.ok("%%di_source people_src -o src\nsource: files\nconfig:\n  path: in\nstreams:\n  people: {}\n")
    src = shell.ip.user_ns["src"]
    assert src["columns"] == ["id", "name"] and src["rows"] == [[1, "Ana"], [2, "Bo"]]
    shell.ok(f"%%di_destination wh --upstream people_src\ndestination: duckdb\nconfig:\n  path: {tmp_path / 'wh.duckdb'}\n")
    import duckdb

    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute('SELECT id, name FROM "people" ORDER BY id').fetchall() == [(1, "Ana"), (2, "Bo")]


def test_bad_yaml_is_one_clear_message(shell):
    message = shell.error("%%di_source s\nsource: files\nconfig:\n  path: [unclosed\n")
    assert "block 's'" in message and "YAML is invalid" in message
    message = shell.error("%%di_source s\nsource: filez\nconfig: {path: x}\n")
    assert "no connector named 'filez'" in message and "Did you mean 'files'" in message


def test_config_setting_controls_preview_rows(shell):
    from jupyter_di.settings import SETTINGS

    shell.ok("%config JupyterDI.preview_rows = 3")
    assert SETTINGS.preview_rows == 3
    shell.ok("%config JupyterDI.preview_rows = 10")


def test_running_a_cell_first_adopts_its_upstreams_from_the_saved_notebook(tmp_path, monkeypatch):
    """After a kernel restart, running a downstream cell first still runs its ancestors."""
    from tests.support.notebooks import write_notebook
    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    upstream = "%%di_block base\n@data_loader\ndef f(**kw):\n    return 20\n"
    middle = "%%di_block plus --upstream base\n@transformer\ndef g(x, **kw):\n    return x + 1\n"
    downstream = "%%di_block twice --upstream plus -o result\n@transformer\ndef h(x, **kw):\n    return x * 2\n"
    write_notebook(tmp_path / "saved.ipynb", [upstream, middle, downstream])
    monkeypatch.setenv("JPY_SESSION_NAME", "some/folder/saved.ipynb")  # as JupyterLab names it
    runner = fresh_shell()
    try:
        runner.ok(downstream)
        assert runner.ip.user_ns["result"] == 42
        assert set(runner.session.pipeline.graph.blocks) == {"base", "plus", "twice"}
        message = runner.error("%%di_block other --upstream nowhere\n@custom\ndef f(x, **kw):\n    return x\n")
        assert "upstream block 'nowhere' is not defined" in message
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")
