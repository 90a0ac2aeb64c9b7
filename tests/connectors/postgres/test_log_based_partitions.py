"""A partitioned table is one LOG_BASED stream: its partitions' changes are published as the parent's
(``publish_via_partition_root``), including rows that move between partitions."""

from __future__ import annotations

import pytest

from jupyter_di.errors import ConfigError

from .test_log_based import Sync, Target, log_pg, same, source_rows, sql  # noqa: F401 - the fixture


def make_partitioned(cfg) -> None:
    sql(
        cfg,
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(10,2), big text, tags int[], at timestamptz) PARTITION BY RANGE (id)",
        "CREATE TABLE items_low PARTITION OF items FOR VALUES FROM (0) TO (100)",
        "CREATE TABLE items_high PARTITION OF items FOR VALUES FROM (100) TO (10000)",
        "INSERT INTO items (id, v, n) SELECT g, 'v' || g, g FROM generate_series(1, 5) g",
        "INSERT INTO items (id, v, n) VALUES (150, 'high', 1)",
    )


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_a_partitioned_table_is_one_stream(log_pg, tmp_path, kind):
    make_partitioned(log_pg)
    target = Target(kind, log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path, delete_mode="hard")
    sync.run()
    assert sync.last_rows == 6 and same(target.rows(), source_rows(log_pg))
    sql(
        log_pg,
        "INSERT INTO items (id, v) VALUES (7, 'low'), (700, 'high')",
        "UPDATE items SET v = 'changed' WHERE id IN (2, 150)",
        "DELETE FROM items WHERE id = 3",
        "UPDATE items SET id = 300 WHERE id = 4",  # moves from items_low to items_high
        "CREATE TABLE items_more PARTITION OF items FOR VALUES FROM (10000) TO (20000)",
        "INSERT INTO items (id, v) VALUES (15000, 'attached later')",
    )
    sync.run()
    assert [r[0] for r in target.rows()] == [1, 2, 5, 7, 150, 300, 700, 15000]
    assert same(target.rows(), source_rows(log_pg))


def test_a_given_publication_must_publish_via_the_root(log_pg, tmp_path):
    make_partitioned(log_pg)
    sql(log_pg, "CREATE PUBLICATION leaves FOR TABLE items")
    sync = Sync(dict(log_pg, publication="leaves"), Target("duckdb", log_pg, tmp_path), tmp_path)
    with pytest.raises(ConfigError) as refused:
        sync.run()
    assert "partitioned table public.items" in str(refused.value)
    assert 'ALTER PUBLICATION "leaves" SET (publish_via_partition_root = true)' in str(refused.value)
    sql(log_pg, "ALTER PUBLICATION leaves SET (publish_via_partition_root = true)")
    sync.run()
    sql(log_pg, "INSERT INTO items (id, v) VALUES (8, 'eight')")
    sync.run()
    assert same(sync.target.rows(), source_rows(log_pg))
