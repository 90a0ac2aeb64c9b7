"""Replication slots and publications for LOG_BASED streams: requirements, names, creation, position.

Why these choices (see docs/architecture.md, "Log-based sync"):

- **One slot and one publication per stream**, named from the (notebook, block, stream) the state is
  kept under, so two pipelines never share a slot (a slot has one confirmed position; a shared one
  would let one pipeline skip the other's changes).
- **The first run creates the slot on a replication connection** (psycopg 3 opens one with
  ``replication=database`` and runs ``CREATE_REPLICATION_SLOT ... LOGICAL pgoutput EXPORT_SNAPSHOT`` as
  a simple query).  The exported snapshot is exactly the database as of the slot's consistent point,
  so the initial copy read in it and the changes decoded after it neither miss nor repeat a change.
- **Later runs read with ``pg_logical_slot_peek_binary_changes``** up to the WAL position current when
  the run started, through a server-side cursor (bounded memory), and the slot is advanced only to the
  position a destination has committed (the saved bookmark), at the start of the next run.  psycopg 3
  has no streaming replication protocol; psycopg2's would add a second driver for a stream we stop
  after a fixed position anyway.  Peeking never moves the slot, so a crash anywhere re-reads from the
  committed position and the key upserts make that harmless.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from ...errors import ConfigError
from .pgoutput import format_lsn, parse_lsn

SLOT_PREFIX = "jdi_"
"""Slots (and publications) this connector names start with this; ``jupyter-di`` finds its own by it."""
MAX_NAME = 63
_SNAPSHOT_NAME = re.compile(r"^[0-9A-Fa-f-]+$")


def slot_name(prefix: str | None, state_key: str | None, stream: str) -> str:
    """``<prefix or jdi_<hash of notebook and block>>_<stream>``: lower case letters, digits and ``_``
    (what a slot name allows), at most 63 characters; a hash of the stream keeps cut or changed
    names distinct."""
    clean = re.sub(r"[^a-z0-9_]", "_", stream.lower())
    base = prefix or f"{SLOT_PREFIX}{hashlib.sha1((state_key or stream).encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
    base = re.sub(r"[^a-z0-9_]", "_", base.lower())
    name = f"{base}_{clean}"
    if clean != stream or len(name) > MAX_NAME:
        tag = hashlib.sha1(stream.encode("utf-8", "surrogatepass")).hexdigest()[:6]
        name = f"{base}_{clean[: max(1, MAX_NAME - len(base) - 8)]}_{tag}"
    return name[:MAX_NAME]


@dataclass(frozen=True)
class SlotInfo:
    name: str
    plugin: str | None
    database: str | None
    active: bool
    confirmed_flush: int | None
    retained_bytes: int | None
    """WAL the server keeps for this slot (from its restart position to the current position)."""
    lost: bool
    """The server removed WAL the slot still needed (``max_slot_wal_keep_size``): its changes are gone."""


SLOT_SQL = """
SELECT slot_name, plugin, database, active, confirmed_flush_lsn::text,
       (pg_current_wal_lsn() - restart_lsn)::int8, coalesce(wal_status = 'lost', false)
FROM pg_replication_slots WHERE slot_type = 'logical' AND {}
"""


def _slot(row: tuple) -> SlotInfo:
    name, plugin, database, active, confirmed, retained, lost = row
    return SlotInfo(name, plugin, database, bool(active), parse_lsn(confirmed) if confirmed else None, retained, bool(lost))


def slot_info(conn: Any, name: str) -> SlotInfo | None:
    row = conn.execute(sql.SQL(SLOT_SQL).format(sql.SQL("slot_name = %s")), (name,)).fetchone()
    return _slot(row) if row else None


def our_slots(conn: Any) -> list[SlotInfo]:
    """Every logical slot of this database named by this connector."""
    rows = conn.execute(
        sql.SQL(SLOT_SQL).format(sql.SQL("database = current_database() AND starts_with(slot_name, %s)")), (SLOT_PREFIX,)
    ).fetchall()
    return [_slot(r) for r in rows]


def current_lsn(conn: Any) -> int:
    return parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])


def check_server(conn: Any, stream: str) -> None:
    """A primary, ``wal_level = logical`` and a role that may use replication slots: one clear error each.

    A standby is refused first, before any publication or slot is touched: PostgreSQL 15 cannot decode
    on a standby (``CREATE_REPLICATION_SLOT`` fails there, and ``CREATE PUBLICATION`` with "read-only
    transaction"); 16 can, with a publication made on the primary and a slot that a failover does not
    carry over, which is not what these streams are built or tested for."""
    in_recovery, version = conn.execute("SELECT pg_is_in_recovery(), current_setting('server_version_num')::int").fetchone()
    if in_recovery:
        raise ConfigError(
            f"LOG_BASED replication reads the change log of a primary server; this server is a standby (in recovery, "
            f"PostgreSQL {version // 10000}), where jupyter-di cannot create the stream's publication and replication slot.",
            stream=stream,
            fix="point the block's host and port at the primary server (FULL_TABLE and INCREMENTAL streams may keep reading the standby).",
        )
    wal_level = conn.execute("SELECT current_setting('wal_level')").fetchone()[0]
    if wal_level != "logical":
        raise ConfigError(
            f"LOG_BASED replication needs the server's wal_level = logical; it is {wal_level!r}.",
            stream=stream,
            fix="set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the "
            "server; on a managed service turn on its logical replication setting.",
        )
    may, user = conn.execute("SELECT rolreplication OR rolsuper, rolname FROM pg_roles WHERE rolname = current_user").fetchone()
    if not may:
        raise ConfigError(
            f"LOG_BASED replication needs a role with the REPLICATION attribute; {user!r} has none.",
            stream=stream,
            fix=f'as a superuser: ALTER ROLE "{user}" WITH REPLICATION (on a managed service, grant its replication role).',
        )


IDENTITY_SQL = """
SELECT c.relreplident, c.relkind, pg_has_role(c.relowner, 'USAGE'),
       (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = c.oid AND i.indisreplident)
FROM pg_class c WHERE c.oid = %s
"""


def replica_key(conn: Any, schema: str, table: str, oid: int, primary_key: list[str], key_properties: list[str], stream: str) -> list[str]:
    """The columns that identify a row in the change stream, or one clear error.

    The primary key (replica identity ``default``), the replica identity index (``using index``), or,
    with ``REPLICA IDENTITY FULL``, the key_properties given (or the table's primary key).  A table
    with neither cannot be published: PostgreSQL then refuses the application's own UPDATEs and
    DELETEs on it, so it is refused here before any publication is touched.
    """
    identity, kind, _owner, index_columns = conn.execute(IDENTITY_SQL, (oid,)).fetchone()
    name = f"{schema}.{table}"
    if kind not in ("r", "p"):
        raise ConfigError(
            f"{name} is not a table (LOG_BASED reads the change log of tables only).",
            stream=stream,
            fix="use FULL_TABLE or INCREMENTAL for views and other relations.",
        )
    fix_identity = f"add a primary key, or run ALTER TABLE {sql.Identifier(schema, table).as_string(None)} REPLICA IDENTITY FULL and set key_properties"
    if identity == "n":
        raise ConfigError(
            f"table {name} has REPLICA IDENTITY NOTHING: its updates and deletes carry no key.", stream=stream, fix=fix_identity
        )
    if identity == "d":
        if not primary_key:
            raise ConfigError(
                f"table {name} has no primary key and no REPLICA IDENTITY FULL, so its updates and deletes cannot be "
                "told apart in the change log (and publishing it would make PostgreSQL refuse them).",
                stream=stream,
                fix=fix_identity + ".",
            )
        return list(key_properties or primary_key)
    if identity == "i":
        return list(key_properties or index_columns or primary_key)
    keys = list(key_properties or primary_key)
    if not keys:
        raise ConfigError(
            f"table {name} has REPLICA IDENTITY FULL but no primary key: which columns identify a row?",
            stream=stream,
            fix="set key_properties to the columns that identify a row (they are upserted and deleted on).",
        )
    return keys


def ensure_publication(conn: Any, name: str, given: bool, schema: str, table: str, oid: int, stream: str) -> None:
    """The publication exists and publishes every change of the table.  Ours (not ``given``) is
    created for the one table; a given one must already include it.

    A partitioned table is one stream: its publication must publish the partitions' changes as the
    parent's (``publish_via_partition_root``), which is the only way the change log names the parent
    (otherwise each change carries its partition's own relation, and the stream would see none)."""
    row = conn.execute(
        "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate, pubviaroot FROM pg_publication WHERE pubname = %s", (name,)
    ).fetchone()
    partitioned = conn.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = %s", (oid,)).fetchone()[0]
    ident = sql.Identifier(schema, table).as_string(None)
    via_root = " WITH (publish_via_partition_root = true)" if partitioned else ""
    if row is None:
        if given:
            raise ConfigError(
                f"publication {name!r} does not exist.",
                stream=stream,
                fix=f'create it as the table\'s owner: CREATE PUBLICATION "{name}" FOR TABLE {ident}{via_root}; or leave `publication` out.',
            )
        owner = conn.execute(IDENTITY_SQL, (oid,)).fetchone()[2]
        if not owner:
            raise ConfigError(
                f"creating a publication for {schema}.{table} needs ownership of the table, which the login role lacks.",
                stream=stream,
                fix=f'as the table\'s owner run CREATE PUBLICATION "{name}" FOR TABLE {ident}{via_root}; and set config publication: {name}.',
            )
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}{}").format(sql.Identifier(name), sql.Identifier(schema, table), sql.SQL(via_root))
        )
        return
    if partitioned and not row[1]:
        raise ConfigError(
            f"publication {name!r} publishes the changes of partitioned table {schema}.{table} under each partition's own "
            "name, so the table's stream would see none of them.",
            stream=stream,
            fix=f'ALTER PUBLICATION "{name}" SET (publish_via_partition_root = true); (or leave `publication` out).',
        )
    if not row[0]:
        raise ConfigError(
            f"publication {name!r} does not publish every kind of change (insert, update, delete, truncate): some would be missed.",
            stream=stream,
            fix=f"ALTER PUBLICATION \"{name}\" SET (publish = 'insert, update, delete, truncate').",
        )
    if not conn.execute(
        "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s AND tablename = %s", (name, schema, table)
    ).fetchone():
        raise ConfigError(
            f"publication {name!r} does not include table {schema}.{table}.",
            stream=stream,
            fix=f'ALTER PUBLICATION "{name}" ADD TABLE {ident}; (as the table\'s owner).',
        )


def drop_slot(conn: Any, name: str) -> bool:
    """Drop the slot if it exists and no one reads it; True when it was dropped."""
    row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (name,)).fetchone()
    if row is None:
        return False
    if row[0]:
        raise ConfigError(
            f"replication slot {name!r} is in use by another connection.",
            fix="wait for the other run to end (or end the process that holds the slot), then run again.",
        )
    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
    return True


def drop_publication(conn: Any, name: str) -> None:
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))


class ExportedSnapshot:
    """A new slot and the snapshot it exported: valid while this replication connection stays open
    and idle, so it is closed only after the initial copy has been read."""

    def __init__(self, conninfo: str, name: str) -> None:
        import psycopg

        self._conn = psycopg.connect(conninfo, replication="database", autocommit=True)
        try:
            command = sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT").format(sql.Identifier(name))
            result = self._conn.pgconn.exec_(command.as_string(self._conn).encode())
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                message = (result.error_message or b"").decode("utf-8", "replace").strip()
                raise psycopg.OperationalError(message or "CREATE_REPLICATION_SLOT failed")
            self.consistent_point = parse_lsn((result.get_value(0, 1) or b"").decode())
            self.snapshot = (result.get_value(0, 2) or b"").decode()
            if not _SNAPSHOT_NAME.match(self.snapshot):
                raise psycopg.OperationalError(f"unexpected snapshot name {self.snapshot!r}")
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()


def advance(conn: Any, name: str, lsn: int) -> None:
    """Confirm the slot up to ``lsn`` (never backwards): the server may then recycle the WAL before it."""
    conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (name, format_lsn(lsn)))


def peek_query(name: str, upto: int, publication: str) -> sql.Composable:
    """The decoded changes of the slot after its confirmed position, up to ``upto``, as pgoutput bytes
    (values as literals: the query is streamed with COPY, which takes no parameters)."""
    return sql.SQL(
        "SELECT data FROM pg_logical_slot_peek_binary_changes({}, {}::pg_lsn, NULL, 'proto_version', '1', 'publication_names', {})"
    ).format(sql.Literal(name), sql.Literal(format_lsn(upto)), sql.Literal(sql.Identifier(publication).as_string(None)))
