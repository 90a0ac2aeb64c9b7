"""``column_types`` at a Trino destination: the engine reads each override, the catalog keeps it.

Why two checks: Trino's parser knows every Trino type (``SELECT typeof(CAST(NULL AS t))`` also gives
the type's own spelling, ``int`` -> ``integer``), but a catalog may store another type than the one
asked for without a word: Iceberg keeps ``varchar(20)`` as ``varchar``, ``timestamp(3) with time
zone`` as ``timestamp(6) with time zone`` and ``smallint`` as ``integer``; Delta Lake keeps
``varchar(n)`` as ``varchar``.  A table whose columns silently differ from the stream's settings is
"silently wrong", so the catalog is asked too: an empty probe table with the overridden types is
created, its columns are read back from ``information_schema.columns`` and it is dropped.  Any
difference is one error naming the column and the type the catalog keeps, before a row is written.

The text reaches SQL only after the shared "reads as a type name" check
(``_shared/column_types.check_setting``): words, one ``(n)`` or ``(n, m)``, no quotes or semicolons.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from ...errors import ConfigError
from .._shared import column_types
from .._shared.sql_names import quote_ident
from ..base import internal_name
from .connection import TrinoConfig, TrinoError, TrinoSession

SYSTEM = "Trino"


def engine_types(session: TrinoSession, types: Mapping[str, str], *, stream: str) -> dict[str, str]:
    """Each override (column name lower-cased, as Trino folds it) as Trino spells the type; an override
    that is no type name, or one Trino does not know, is a ``ConfigError`` naming the column."""
    checked = column_types.check_setting(dict(types), block=None, stream=stream)
    out: dict[str, str] = {}
    for column, type_text in checked.items():
        try:
            rows = session.run(f"SELECT typeof(CAST(NULL AS {type_text}))")
        except TrinoError as exc:
            raise column_types.unparsable(column, type_text, SYSTEM, exc.message, stream=stream) from None
        out[column.lower()] = str(rows[0][0])
    return out


def table_types(session: TrinoSession, catalog: str, schema: str, table: str) -> list[tuple[str, str]]:
    """A table's (column, type) pairs in table order from ``information_schema.columns`` (names as
    Trino folds them: lower case); [] when there is no such table."""
    rows = session.run(
        f"SELECT column_name, data_type FROM {quote_ident(catalog)}.information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema.lower(), table.lower()],
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def check_stored(
    session: TrinoSession, cfg: TrinoConfig, types: Mapping[str, str], *, connector: str, stream: str, probe: str | None = None
) -> None:
    """Refuse an override (``types``: as ``engine_types`` spells them) the catalog would store as another
    type, or not at all; asked of an empty probe table in the destination schema, dropped at once
    (``probe``: its name; the writer uses its staging prefix, so a killed run's probe is swept with its
    staging tables)."""
    if not types:
        return
    probe = probe or internal_name("types", cfg.catalog, cfg.schema, uuid.uuid4().hex)
    rel = ".".join(quote_ident(p) for p in (cfg.catalog, cfg.schema, probe))
    items = list(types.items())
    try:
        try:
            session.run(f"CREATE TABLE {rel} ({', '.join(f'c{i} {t}' for i, (_c, t) in enumerate(items))})")
        except TrinoError:
            _refused_alone(session, rel, items, cfg, connector=connector, stream=stream)
            raise
        stored = [t for _c, t in table_types(session, cfg.catalog, cfg.schema, probe)]
    finally:
        session.run(f"DROP TABLE IF EXISTS {rel}")
    for (column, wanted), kept in zip(items, stored):
        if kept != wanted:
            raise ConfigError(
                f"column_types: catalog {cfg.catalog!r} ({connector}) stores type {wanted!r} as {kept!r}, "
                f"so column {column!r} would not have the type asked for; nothing was written.",
                stream=stream,
                fix=f"write {kept!r} for {column!r} (the type this catalog keeps), remove the override, "
                "or write into a catalog that keeps the type (memory, PostgreSQL ...).",
            )


def _refused_alone(session: TrinoSession, rel: str, items: list[tuple[str, str]], cfg: TrinoConfig, *, connector: str, stream: str) -> None:
    """The probe with every override failed: find the column whose type the catalog refuses."""
    for column, wanted in items:
        try:
            session.run(f"CREATE TABLE {rel} (c0 {wanted})")
        except TrinoError as exc:
            system = f"catalog {cfg.catalog!r} ({connector})"
            raise column_types.unparsable(column, wanted, system, exc.message, stream=stream) from None
        session.run(f"DROP TABLE IF EXISTS {rel}")
