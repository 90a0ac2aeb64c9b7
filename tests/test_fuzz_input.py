"""Fuzzing what users type (issue 13, item 6): YAML cells and command-line arguments.

A seeded generator mutates a working notebook (CSV files -> DuckDB) in a few
hundred ways: junk values of every type in ``config:``, stream settings and
``upstream:``; unknown and duplicate keys; broken YAML; templates that fail;
odd ``--bookmark``, ``-p``, ``--blocks`` and ``--state-path`` arguments.  For
every case the rule of issue 13 must hold:

- the CLI returns an exit status (0, 1, 2 or 3) and prints no traceback;
- a failure says so in one ``error:`` line or one paragraph naming the block;
- a failed run leaves the destination exactly as it was (what an earlier run
  committed is never lost, and nothing half-written appears).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import nbformat
import pytest

from jupyter_di.cli import main
from tests.support.notebooks import duckdb_query, new_notebook, write_notebook

SEED = int(os.environ.get("JDI_FUZZ_SEED", "20261130"))
CASES = int(os.environ.get("JDI_FUZZ_CASES", "300"))
"""Fixed in the suite (a failure reproduces); set JDI_FUZZ_SEED / JDI_FUZZ_CASES to explore further."""

SOURCE = {
    "source": "files",
    "config": {"path": "csvs", "format": "csv"},
    "streams": {"orders": {"replication_method": "INCREMENTAL", "bookmark_properties": ["at"], "key_properties": ["id"]}},
}
DESTINATION = {"destination": "duckdb", "config": {"path": "out.duckdb"}, "streams": {"orders": {}}}

JUNK = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**30,
    float("inf"),
    "nan",
    "",
    " ",
    "yes",
    "no",
    "0x10",
    "5432",
    "9" * 5000,
    "ünïcødé",
    "a\x00b",
    "\udcff",
    "../../etc/passwd",
    "'; DROP TABLE orders; --",
    '"quoted"',
    "{{ 1/0 }}",
    "{{ env_var(5) }}",
    "{{ secret() }}",
    "{% include 'x' %}",
    "{{ nope }}",
    "{{ variables('missing') }}",
    [],
    [1, "a"],
    {},
    {"a": {"b": [1, {"c": None}]}},
    "x" * 300,
]


def to_yaml(value, indent: int = 0) -> str:
    """A tiny YAML writer that keeps odd values odd (PyYAML's dumper would quote them all)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "\n" + "".join(f"{pad}{k}: {to_yaml(v, indent + 1)}" + ("" if isinstance(v, dict) and v else "\n") for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    return scalar(value)


def scalar(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value == float("inf"):
        return ".inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, dict)):
        return "{}" if isinstance(value, dict) else "[]"
    escaped = (
        value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        else value
    )
    escaped = escaped.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\0")
    return f'"{escaped}"'


def cell(magic: str, body: dict) -> str:
    return magic + "\n" + to_yaml(body).lstrip("\n")


def mutate(rng: random.Random) -> tuple[str, str, list[str]]:
    """One case: (source cell, destination cell, extra CLI arguments)."""
    source, destination = _copy(SOURCE), _copy(DESTINATION)
    extra: list[str] = []
    kind = rng.choice(["config", "config", "stream", "upstream", "keys", "yaml", "args", "args", "mixed"])
    target = rng.choice([source, destination])
    if kind in ("config", "mixed"):
        key = rng.choice(list(target["config"]) + ["port", "shema", "delimiter", "header", "memory_limit", "timeout", "format"])
        target["config"][key] = rng.choice(JUNK)
    if kind in ("stream", "mixed"):
        settings = target["streams"]["orders"]
        key = rng.choice(
            [
                "replication_method",
                "bookmark_properties",
                "key_properties",
                "unique_constraints",
                "columns",
                "destination_table",
                "selected",
                "null_cursor",
                "append_only",
                "unique_conflict_method",
                "run_in_parallel",
                "bogus",
            ]
        )
        settings[key] = rng.choice(JUNK + [["nope"], ["id"], "FULL_TABLE", "LOG_BASED", "IGNORE"])
    if kind == "upstream":
        destination["upstream"] = {
            rng.choice(["src", "other"]): {rng.choice(["only_as_input", "use_output_as_input", "bogus"]): rng.choice(JUNK)}
        }
    if kind == "keys":
        target[rng.choice(["bogus", "stream", "configs"])] = rng.choice(JUNK)
    src = cell("%%di_source src", source)
    dst = cell("%%di_destination wh --upstream src", destination)
    if kind == "yaml":
        broken = rng.choice(
            [
                lambda t: t + "\n  path: again\n",  # a duplicate key
                lambda t: t.replace("config:", "config: [", 1),
                lambda t: t.replace("  ", "\t", 1),
                lambda t: t + "\nextra: &a [1, 2]\nmore: *a\n",
                lambda t: t + "\nnested: " + "[" * 300 + "]" * 300 + "\n",
                lambda t: t.replace(":", "", 1),
                lambda t: t + "\n" + "x" * 10 + ": !!python/object:os.system 'echo no'\n",
            ]
        )
        if rng.random() < 0.5:
            src = broken(src)
        else:
            dst = broken(dst)
    if kind in ("args", "mixed"):
        choice = rng.choice(["bookmark", "param", "blocks", "state"])
        junk = rng.choice(
            [
                "",
                "=",
                "...",
                "src.orders.at=" + rng.choice(["2024-01-01", "9" * 5000, "nope", "1e999", "[1]"]),
                "src.orders.id=1",
                "src.nope.at=1",
                "wh.orders.at=1",
                "nope.orders.at=1",
                "src=1",
                "ü.ö.ä=1",
                "a.b.c.d.e=1",
            ]
        )
        if choice == "bookmark":
            extra = ["--bookmark", junk]
        elif choice == "param":
            extra = ["-p", junk]
        elif choice == "blocks":
            extra = ["--blocks", rng.choice(["src", "wh", "nope", "", "src wh"])]
        else:
            extra = ["--state-path", rng.choice(["", ".", "csvs", "csvs/orders.csv", "deep/er/state.sqlite"])]
    return src, dst, extra


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def table_rows(path: Path) -> list[tuple] | None:
    if not path.exists():
        return None
    if ("orders",) not in duckdb_query(path, "SELECT table_name FROM information_schema.tables"):
        return None
    return duckdb_query(path, "SELECT * FROM orders ORDER BY id")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """A folder where the unmutated notebook ran once: its DuckDB file holds what was committed."""
    folder = tmp_path_factory.mktemp("fuzz_baseline")
    (folder / "csvs").mkdir()
    (folder / "csvs" / "orders.csv").write_text("id,at\n" + "".join(f"{i},2024-01-{i:02d}T00:00:00\n" for i in range(1, 11)))
    write_notebook(folder / "fuzz.ipynb", [cell("%%di_source src", SOURCE), cell("%%di_destination wh --upstream src", DESTINATION)])
    assert main(["run", "-q", str(folder / "fuzz.ipynb")]) == 0
    return folder


def test_fuzzed_cells_and_arguments_fail_clearly_and_lose_nothing(baseline, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative --state-path values land here
    capsys.readouterr()
    committed = table_rows(baseline / "out.duckdb")
    assert committed is not None and len(committed) == 10
    rng = random.Random(SEED)
    outcomes: dict[int, int] = {}
    for number in range(CASES):
        src, dst, extra = mutate(rng)
        folder = tmp_path / f"case{number}"
        shutil.copytree(baseline, folder)
        # lone surrogates in mutated cells are written as they are (a strict UTF-8 write fails on them)
        (folder / "fuzz.ipynb").write_text(nbformat.writes(new_notebook([src, dst])), encoding="utf-8", errors="surrogatepass")
        code = main(["run", "-q", str(folder / "fuzz.ipynb"), *extra])
        out = capsys.readouterr()
        text = out.out + out.err
        where = f"case {number}: {extra}\n--- source\n{src}\n--- destination\n{dst}\n--- output\n{text[-3000:]}"
        assert isinstance(code, int) and code in (0, 1, 2, 3), where
        assert "Traceback" not in text and "unexpected " not in text, where
        outcomes[code] = outcomes.get(code, 0) + 1
        if code in (1, 2):
            assert "error:" in out.err or "block '" in out.err, where
            assert out.err.count("error:") <= 1, where
            assert table_rows(folder / "out.duckdb") == committed, where  # nothing committed is lost or half-replaced
        shutil.rmtree(folder, ignore_errors=True)
    print("exit status -> cases:", dict(sorted(outcomes.items())))
    assert outcomes.get(0, 0) > 10 and outcomes.get(1, 0) + outcomes.get(2, 0) > CASES // 3, outcomes
