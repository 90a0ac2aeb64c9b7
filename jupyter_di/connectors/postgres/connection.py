"""Connections to PostgreSQL for the postgresql connector: config, conninfo, errors.

Why a module of its own: the source and the destination open two kinds of
connection (psycopg for catalog queries and small statements, ADBC for Arrow
bulk reads and writes over COPY binary) from the same config, and both must
turn a failed login into one ``ConnectionFailed`` that never shows the
password (masked with ``redaction.Redactor``, the one mask).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.conninfo import make_conninfo

from ...errors import ConfigError, ConnectionFailed
from ...redaction import Redactor
from ..base import ConfigField, Connector
from ..config_check import int_option
from .encoding import CLIENT_ENCODING

DEFAULT_PORT = 5432
DEFAULT_SCHEMA = "public"
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_UPSERT_FILLFACTOR = 90
"""Measured, 50k scattered upserts into a 5M-row table: 0.52-0.64 s at 90, 0.93-1.04 s at 100."""
DEFAULT_SLOT_WARN_MB = 1024
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

CONFIG_SCHEMA = [
    ConfigField("host", required=True, description="Server host name or IP address."),
    ConfigField("port", "integer", default=DEFAULT_PORT, description="Server port.", minimum=1, maximum=65535),
    ConfigField("database", required=True, description="Database name."),
    ConfigField("username", required=True, description="Login role."),
    ConfigField("password", secret=True, description="Password of the login role."),
    ConfigField("schema", default=DEFAULT_SCHEMA, description="Schema to read from / write into."),
    ConfigField(
        "sslmode",
        description=f"libpq sslmode: {', '.join(SSL_MODES[:-1])} or {SSL_MODES[-1]}.",
        choices=SSL_MODES,
    ),
    ConfigField(
        "connect_timeout",
        "integer",
        default=DEFAULT_CONNECT_TIMEOUT,
        description="Seconds to wait for a connection.",
        minimum=1,
        maximum=3600,
    ),
    ConfigField(
        "page_rows",
        "integer",
        default=0,
        description="Reading INCREMENTAL streams: rows per query, in keyset pages (WHERE (bookmark, key) > last row "
        "LIMIT n) instead of one query; keeps statements short on a hot standby or a busy primary. Needs an index on "
        "the bookmark and key columns. 0: one query (one snapshot, fastest).",
        minimum=0,
    ),
    ConfigField(
        "slot_name",
        description="LOG_BASED streams: the start of their replication slots' names (one slot per stream: "
        "<slot_name>_<stream>). Default: jdi_ and a hash of the notebook and block, so two pipelines never share a slot.",
    ),
    ConfigField(
        "publication",
        description="LOG_BASED streams: an existing publication that includes their tables. Default: one publication "
        "per stream, created with the slot (needs ownership of the table).",
    ),
    ConfigField(
        "slot_retained_warn_mb",
        "integer",
        default=DEFAULT_SLOT_WARN_MB,
        description="LOG_BASED streams: warn in the run report when a replication slot keeps more WAL than this on the "
        "server (MB); 0: never.",
        minimum=0,
    ),
    ConfigField(
        "upsert_fillfactor",
        "integer",
        default=DEFAULT_UPSERT_FILLFACTOR,
        description="Writing: the fillfactor of tables created for upserts (unique_constraints). Free room in each "
        "page lets PostgreSQL update a row in place (HOT) without touching the key index; 100 packs pages full.",
        minimum=10,
        maximum=100,
    ),
]


class PgConfig:
    """A validated connector config.  Its repr never shows the password."""

    def __init__(self, config: dict[str, Any]) -> None:
        missing = [k for k in ("host", "database", "username") if not config.get(k)]
        if missing:
            raise ConfigError(
                f"PostgreSQL config is missing {', '.join(missing)}.",
                fix=f"set {', '.join(missing)} in the block's config.",
            )
        self.host = str(config["host"])
        self.port = int_option(config, "port", DEFAULT_PORT, "PostgreSQL")
        self.database = str(config["database"])
        self.username = str(config["username"])
        self.password = "" if config.get("password") is None else str(config["password"])
        self.schema = str(config.get("schema") or DEFAULT_SCHEMA)
        self.sslmode = config.get("sslmode") or None
        if self.sslmode is not None and self.sslmode not in SSL_MODES:
            raise ConfigError(f"sslmode {self.sslmode!r} is not a libpq sslmode.", fix=f"use one of {', '.join(SSL_MODES)}.")
        self.connect_timeout = int_option(config, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, "PostgreSQL")
        self.page_rows = int_option(config, "page_rows", 0, "PostgreSQL")
        if self.page_rows < 0:
            raise ConfigError(
                f"page_rows must be 0 or more, got {self.page_rows}.", fix="leave it out (one query), or set rows per page, e.g. 1000000."
            )
        self.slot_name = str(config["slot_name"]) if config.get("slot_name") else None
        self.publication = str(config["publication"]) if config.get("publication") else None
        self.slot_retained_warn_mb = int_option(config, "slot_retained_warn_mb", DEFAULT_SLOT_WARN_MB, "PostgreSQL")
        self.upsert_fillfactor = int_option(config, "upsert_fillfactor", DEFAULT_UPSERT_FILLFACTOR, "PostgreSQL")
        if not 10 <= self.upsert_fillfactor <= 100:
            raise ConfigError(
                f"upsert_fillfactor must be between 10 and 100, got {self.upsert_fillfactor}.",
                fix="leave it out (90), or set a percentage from 10 to 100.",
            )

    def __repr__(self) -> str:
        return f"PgConfig(host={self.host!r}, port={self.port}, database={self.database!r}, username={self.username!r}, schema={self.schema!r})"

    def conninfo(self, *, password: bool = True) -> str:
        """A libpq keyword/value string (values quoted by psycopg); without the password for a reader
        that is given it apart (``PostgresTable``)."""
        params: dict[str, Any] = dict(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.username,
            connect_timeout=self.connect_timeout,
            application_name="jupyter-di",
            client_encoding=CLIENT_ENCODING,  # text as UTF-8 whatever the database's encoding (encoding.py)
        )
        if self.password and password:
            params["password"] = self.password
        if self.sslmode:
            params["sslmode"] = self.sslmode
        return make_conninfo(**params)

    def where(self) -> str:
        return f"PostgreSQL at {self.host}:{self.port} (database {self.database!r}, user {self.username!r})"

    def connection_failed(self, exc: BaseException) -> ConnectionFailed:
        reason = Redactor([self.password])(str(exc)).strip()
        reason = reason.replace("IO: [libpq] Failed to connect: ", "").replace("\n\t", " ").replace("\n", " ")
        return ConnectionFailed(
            f"could not connect to {self.where()}: {reason}",
            fix="check host, port, database, username and password, and that the server accepts connections from here.",
        )

    def psycopg(self, autocommit: bool = True):
        """A psycopg connection; ``ConnectionFailed`` on any connection error."""
        import psycopg

        try:
            return psycopg.connect(self.conninfo(), autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise self.connection_failed(exc) from None

    def adbc(self, autocommit: bool = False):
        """An ADBC session (Arrow over COPY binary); ``ConnectionFailed`` on any connection error."""
        import adbc_driver_manager

        from .adbc import AdbcSession

        try:
            return AdbcSession(self.conninfo(), autocommit=autocommit)
        except adbc_driver_manager.Error as exc:
            raise self.connection_failed(exc) from None


def render(query: sql.Composable) -> str:
    """Render composed SQL (identifiers quoted by psycopg) for drivers other than psycopg."""
    return query.as_string(None)


class PostgresConnector(Connector):
    """Config parsing and the connection check, shared by the PostgreSQL source and destination."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._cfg = PgConfig(config)

    def check(self) -> None:
        with self._cfg.psycopg() as conn:
            conn.execute("SELECT 1")
