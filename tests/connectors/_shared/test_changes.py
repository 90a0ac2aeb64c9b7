"""The change-window planner: each key's changes folded in commit order, as applying them one by one would."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from jupyter_di.connectors._shared.changes import _group_ids, plan_changes
from jupyter_di.connectors.base import DELETED_AT_COLUMN, change_fields

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
FIELDS = [pa.field("id", pa.int64()), pa.field("v", pa.string()), pa.field("big", pa.string())]


def changes(rows: list[tuple]) -> pa.Table:
    """rows: (op, id, v, big, unchanged columns or None); the i-th commits at T0 + i seconds."""
    schema = pa.schema(FIELDS + change_fields())
    cols = [
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[0] for r in rows],
        [T0 + dt.timedelta(seconds=i) for i in range(len(rows))],
        [r[4] for r in rows],
    ]
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, schema)], schema=schema)


def apply(table: dict, steps, soft: bool) -> dict:
    """Run the steps on a dict table {id: {column: value}} the way a SQL destination does."""
    for step in steps:
        if step.truncate:
            if soft:
                for row in table.values():
                    if row.get(DELETED_AT_COLUMN) is None:
                        row[DELETED_AT_COLUMN] = step.mark_time[0].as_py()
            else:
                table.clear()
        for key in step.deletes.to_pylist() if step.deletes is not None else []:
            table.pop(key["id"], None)
        for rows, _ in step.updates:
            for row in rows.to_pylist():
                if row["id"] in table:
                    table[row["id"]].update(row)
        for row in step.upserts.to_pylist() if step.upserts is not None else []:
            table[row["id"]] = {**table.get(row["id"], {}), **row}
    return table


def one_by_one(table: dict, rows: list[tuple], soft: bool) -> dict:
    for i, (op, key, v, big, unchanged) in enumerate(rows):
        when = T0 + dt.timedelta(seconds=i)
        if op == "truncate":
            if soft:
                for row in table.values():
                    row[DELETED_AT_COLUMN] = row.get(DELETED_AT_COLUMN) or when
            else:
                table.clear()
        elif op == "delete":
            if soft:
                if key in table:
                    table[key][DELETED_AT_COLUMN] = when
            else:
                table.pop(key, None)
        else:
            new = {"id": key, "v": v, "big": big}
            for c in unchanged or ():
                del new[c]
            if soft:
                new[DELETED_AT_COLUMN] = None
            if op == "update" and key not in table and unchanged:
                continue  # the destination lacks the row: only its sent columns exist nowhere to update
            table[key] = {**table.get(key, {}), **new}
    return table


def test_last_change_of_each_key_wins_and_unchanged_values_come_from_earlier_changes():
    rows = [
        ("insert", 1, "a", "B1", None),
        ("update", 1, "b", None, ["big"]),
        ("insert", 2, "x", "B2", None),
        ("delete", 2, None, None, None),
        ("update", 3, "c", None, ["big"]),
        ("delete", 4, None, None, None),
        ("update", 5, "e", "B5", None),
    ]
    (hard,) = plan_changes(changes(rows), ["id"], "hard")
    assert sorted(r["id"] for r in hard.deletes.to_pylist()) == [2, 4]
    assert [(u.to_pylist(), must) for u, must in hard.updates] == [([{"id": 3, "v": "c"}], True)]  # big kept as it is
    assert sorted(hard.upserts.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "v": "b", "big": "B1"},  # the insert's big fills the update's gap
        {"id": 5, "v": "e", "big": "B5"},
    ]
    (soft,) = plan_changes(changes(rows), ["id"], "soft")
    assert soft.deletes is None
    upserts = {r["id"]: r for r in soft.upserts.to_pylist()}
    assert upserts[2][DELETED_AT_COLUMN] is not None and upserts[2]["v"] == "x"  # inserted and deleted in one window
    assert upserts[1][DELETED_AT_COLUMN] is None


def test_truncate_splits_the_window():
    rows = [("insert", 1, "a", "A", None), ("truncate", None, None, None, None), ("insert", 2, "b", "B", None)]
    hard = plan_changes(changes(rows), ["id"], "hard")
    assert len(hard) == 1 and hard[0].truncate and hard[0].upserts.to_pylist() == [{"id": 2, "v": "b", "big": "B"}]
    soft = plan_changes(changes(rows), ["id"], "soft")
    assert [s.truncate for s in soft] == [False, True]
    assert soft[1].mark_time[0].as_py() == T0 + dt.timedelta(seconds=1)


@pytest.mark.parametrize("toast", [0.5, 0.0], ids=["some-unchanged", "all-columns"])
def test_random_windows_equal_one_by_one_application(toast: float):
    """Keys with unchanged columns fold in Python, the others with numpy: both against one-by-one."""
    rnd = random.Random(7)
    for soft in (False, True):
        for trial in range(200):
            start = {k: {"id": k, "v": f"s{k}", "big": f"S{k}"} for k in range(1, 6)}
            if soft:
                for row in start.values():
                    row[DELETED_AT_COLUMN] = None
            live = set(start)
            rows: list[tuple] = []
            for _ in range(rnd.randint(1, 25)):
                key = rnd.randint(1, 8)
                roll = rnd.random()
                if roll < 0.03:
                    rows.append(("truncate", None, None, None, None))
                    live.clear()
                elif key not in live:
                    rows.append(("insert", key, f"i{trial}", f"I{trial}", None))
                    live.add(key)
                elif roll < 0.3:
                    rows.append(("delete", key, None, None, None))
                    live.discard(key)
                else:
                    unchanged = ["big"] if rnd.random() < toast else None
                    rows.append(("update", key, f"u{len(rows)}", None if unchanged else f"U{len(rows)}", unchanged))
            expected = one_by_one({k: dict(r) for k, r in start.items()}, rows, soft)
            got = apply({k: dict(r) for k, r in start.items()}, plan_changes(changes(rows), ["id"], "soft" if soft else "hard"), soft)
            assert got == expected, rows


def test_group_ids_of_composite_text_and_null_keys():
    keys = pa.table(
        {
            "a": pa.array([1, 2, 1, 1, 2, 1], pa.int32()),
            "b": pa.array(["x", "x", "y", "x", None, None]),
        }
    )
    ids, groups = _group_ids(keys)
    assert groups == 5
    assert ids[0] == ids[3] and len({int(ids[i]) for i in (0, 1, 2, 4, 5)}) == 5
    big = pa.table({"a": pa.array([2**62, -(2**62), 2**62]), "b": pa.array([b"k", b"k", b"k"])})
    ids, groups = _group_ids(big)
    assert groups == 2 and ids[0] == ids[2] != ids[1]
