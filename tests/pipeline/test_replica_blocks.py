"""Replica blocks (``--replicate OTHER``): the original's body under another name, upstream and state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_di.errors import DIError
from jupyter_di.integration.replica import difference, merge, replica_body
from jupyter_di.pipeline.magic_line import parse_cell
from jupyter_di.pipeline.pipeline import Pipeline
from tests.support.notebooks import run_notebook, write_notebook


def test_override_merge_rules() -> None:
    base = {
        "source": "sqlite",
        "config": {"path": "a.sqlite", "timeout": 5},
        "streams": {"orders": {"key_properties": ["id"]}, "items": {}},
    }
    # mappings merge at every depth; lists, scalars and null replace
    override = {"config": {"path": "b.sqlite"}, "streams": {"items": {"selected": False}, "orders": {"key_properties": ["id", "tenant"]}}}
    assert merge(base, override) == {
        "source": "sqlite",
        "config": {"path": "b.sqlite", "timeout": 5},
        "streams": {"orders": {"key_properties": ["id", "tenant"]}, "items": {"selected": False}},
    }
    assert merge(base, {"streams": ["orders"]})["streams"] == ["orders"]
    assert merge(base, {"config": {"timeout": None}})["config"] == {"path": "a.sqlite", "timeout": None}
    assert base["config"] == {"path": "a.sqlite", "timeout": 5}  # nothing changed in place
    # what a panel writes back is the smallest override that gives the edit
    edited = merge(base, override)
    assert merge(base, difference(edited, base)) == edited
    assert difference(base, base) == {}
    assert difference({"config": {"path": "a.sqlite"}}, {"config": {"path": "a.sqlite", "timeout": 5}}) == {"config": {"timeout": None}}


def test_replica_bodies() -> None:
    original = "# tenant A\nsource: sqlite\nconfig:\n  path: a.sqlite\n"
    assert replica_body(original, "\n", lang="yaml", block="b", other="a") == original  # no override: verbatim
    merged = replica_body(original, "config:\n  path: \"{{ variables('p') }}\"\n", lang="yaml", block="b", other="a")
    assert "{{ variables('p') }}" in merged and "source: sqlite" in merged
    code = "@data_loader\ndef f(*a, **k):\n    return 1\n"
    assert replica_body(code, "# same code\n\n", lang="python", block="b", other="a") == code
    with pytest.raises(DIError, match="a replica of the Python block 'a' cannot change its code"):
        replica_body(code, "x = 2\n", lang="python", block="b", other="a")
    with pytest.raises(DIError, match="override YAML must be a mapping"):
        replica_body(original, "- a\n", lang="yaml", block="b", other="a")


def pipeline_of(tmp_path: Path, *cells: str) -> Pipeline:
    pipeline = Pipeline("p", state_path=tmp_path / "state.sqlite")
    for cell in cells:
        pipeline.graph.add(parse_cell(cell))
    return pipeline


LOADER = "%%di_block numbers\n@data_loader\ndef f(*args, **kwargs):\n    return [1, 2, 3]\n"
DOUBLE = "%%di_block double --upstream numbers\n@transformer\ndef g(values, *args, **kwargs):\n    return [v * 2 for v in values]\n"


def test_python_replica_runs_the_original_code_with_its_own_upstream_and_goes_stale(tmp_path: Path) -> None:
    other = "%%di_block others\n@data_loader\ndef f(*args, **kwargs):\n    return [10]\n"
    pipeline = pipeline_of(tmp_path, LOADER, other, DOUBLE, "%%di_block double_others --upstream others --replicate double\n")
    try:
        report = pipeline.run(pipeline.plan(list(pipeline.graph.blocks), {}, only_stale_ancestors=False))
        assert report.ok, report.failure_message()
        assert pipeline.outputs["double"] == [2, 4, 6] and pipeline.outputs["double_others"] == [20]
        assert pipeline.plan(["double_others"], {}, only_stale_ancestors=True) == ["double_others"]  # a target always runs
        assert not pipeline.is_stale("double_others", {})
        # editing the original makes the replica stale, and the replica runs the new code
        pipeline.define(parse_cell(DOUBLE.replace("v * 2", "v * 3")))
        assert pipeline.is_stale("double_others", {})
        pipeline.run(pipeline.plan(["double_others"], {}, only_stale_ancestors=True))
        assert pipeline.outputs["double_others"] == [30]
    finally:
        pipeline.close()


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([LOADER, "%%di_block copy --replicate nowhere\n"], "block 'copy' is a replica of 'nowhere', which is not defined"),
        (
            [
                LOADER,
                DOUBLE,
                "%%di_block copy --upstream numbers --replicate double\n",
                "%%di_block copy2 --upstream numbers --replicate copy\n",
            ],
            "block 'copy2' is a replica of 'copy', which is itself a replica of 'double'",
        ),
        ([LOADER, "%%di_source src --replicate numbers\n"], "block 'src' is a source block but 'numbers' is a python block"),
        ([LOADER, DOUBLE, "%%di_block copy --upstream numbers --replicate double\nx = 1\n"], "cannot change its code"),
    ],
)
def test_bad_replicas_are_one_clear_error(tmp_path: Path, cells: list[str], message: str) -> None:
    pipeline = pipeline_of(tmp_path, *cells)
    try:
        last = parse_cell(cells[-1]).name
        with pytest.raises(DIError, match=message):
            plan = pipeline.plan([last], {}, only_stale_ancestors=False)
            report = pipeline.run(plan)
            raise DIError(report.failure_message())
    finally:
        pipeline.close()


def test_yaml_replica_syncs_another_database_with_its_own_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, rows in (("a", 3), ("b", 5)):
        with sqlite3.connect(tmp_path / f"{name}.sqlite") as db:
            db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, ts INTEGER)")
            db.execute("CREATE TABLE skipped (id INTEGER PRIMARY KEY)")
            db.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i) for i in range(rows)])
    original = (
        "%%di_source shop_a\nsource: sqlite\nconfig:\n  path: a.sqlite\nstreams:\n"
        "  orders:\n    replication_method: INCREMENTAL\n    bookmark_properties: [ts]\n    key_properties: [id]\n"
        "  skipped: {}\n"
    )
    replica = "%%di_source shop_b --replicate shop_a\nconfig:\n  path: b.sqlite\nstreams:\n  skipped: {selected: false}\n"
    path = write_notebook(tmp_path / "nb.ipynb", [original, replica])
    code, out, err = run_notebook(path, capsys=capsys)
    assert code == 0, err
    lines = [line.split()[:4] for line in out.splitlines()]
    assert ["shop_a", "source", "orders", "3"] in lines and ["shop_a", "source", "skipped", "0"] in lines
    assert ["shop_b", "source", "orders", "5"] in lines and not any(line[:3] == ["shop_b", "source", "skipped"] for line in lines)
    code, out, err = run_notebook(path, capsys=capsys)  # each keeps its own bookmark: the tie row only
    lines = [line.split()[:4] for line in out.splitlines()]
    assert ["shop_a", "source", "orders", "1"] in lines and ["shop_b", "source", "orders", "1"] in lines
