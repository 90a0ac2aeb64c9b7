"""Connections to a Trino coordinator for the trino destination: config, sessions, errors.

Why a module of its own: the writer opens one session for its catalog queries and one per
statement in flight, all from the same config, and every failure must become one message that
names the coordinator and never shows the password or the JWT (``redaction.Redactor``).
Secrets go only over HTTPS (the client refuses them over plain HTTP, and so do we, earlier and in
plain words).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError, ConnectionFailed, DIError, SchemaMismatch
from ...redaction import Redactor
from ..base import ConfigField, Connector
from ..config_check import int_option

DEFAULT_PORT = 8080
DEFAULT_SCHEMA = "default"
DEFAULT_CONCURRENCY = 4
DEFAULT_STATEMENT_BYTES = 900_000
"""Under Trino's default ``query.max-length`` (1,000,000 characters)."""
DEFAULT_COMMIT_ROWS = 1_000_000
HTTP_SCHEMES = ("http", "https")

CONFIG_SCHEMA = [
    ConfigField("host", required=True, description="Trino coordinator host name or IP address."),
    ConfigField("port", "integer", default=DEFAULT_PORT, description="Coordinator port.", minimum=1, maximum=65535),
    ConfigField("user", required=True, description="Trino user the statements run as."),
    ConfigField("catalog", required=True, description="Catalog to write into (e.g. iceberg, delta, hive, memory)."),
    ConfigField("schema", default=DEFAULT_SCHEMA, description="Schema to write into (created if missing)."),
    ConfigField("http_scheme", default="http", description="http or https.", choices=HTTP_SCHEMES),
    ConfigField("password", secret=True, description="Password (basic authentication); HTTPS only."),
    ConfigField("jwt", secret=True, description="JSON Web Token (bearer authentication); HTTPS only."),
    ConfigField("verify", description='HTTPS: path of a CA bundle to verify the server with, or "false" (quoted) to skip verification.'),
    ConfigField(
        "session_properties", "object", description="Trino session properties set on every statement, e.g. {query_max_run_time: 1h}."
    ),
    ConfigField(
        "max_concurrent_statements",
        "integer",
        default=DEFAULT_CONCURRENCY,
        description="INSERT statements in flight at once while loading.",
        minimum=1,
        maximum=64,
    ),
    ConfigField(
        "max_statement_bytes",
        "integer",
        default=DEFAULT_STATEMENT_BYTES,
        description="Largest INSERT statement sent, in bytes (keep it under the server's query.max-length).",
        minimum=10_000,
    ),
    ConfigField(
        "commit_rows",
        "integer",
        default=DEFAULT_COMMIT_ROWS,
        description="INCREMENTAL streams: rows per commit (one INSERT ... SELECT or MERGE from the staging table, then the bookmark is saved).",
        minimum=1,
    ),
    ConfigField(
        "staging_location",
        description=(
            "Bulk loads: a folder or object store URL (s3://bucket/prefix; credentials from the environment) that this process "
            "writes Parquet files to and the server reads through staging_catalog. Unset: rows go as SQL statements."
        ),
    ),
    ConfigField(
        "staging_server_location",
        description="The staging_location as the server's staging_catalog names it (e.g. local:///staging); default: staging_location.",
    ),
    ConfigField("staging_catalog", description="Bulk loads: a Hive catalog of the server that reads staging_location (external tables)."),
    ConfigField(
        "staging_schema",
        description="Bulk loads: the staging_catalog schema for the external tables (created if missing); default: schema.",
    ),
]


class TrinoConfig:
    """A validated connector config.  Its repr never shows the password or the JWT."""

    def __init__(self, config: dict[str, Any]) -> None:
        missing = [k for k in ("host", "user", "catalog") if not config.get(k)]
        if missing:
            raise ConfigError(f"Trino config is missing {', '.join(missing)}.", fix=f"set {', '.join(missing)} in the block's config.")
        self.host = str(config["host"])
        self.port = int_option(config, "port", DEFAULT_PORT, "Trino")
        self.user = str(config["user"])
        self.catalog = str(config["catalog"])
        self.schema = str(config.get("schema") or DEFAULT_SCHEMA)
        self.http_scheme = str(config.get("http_scheme") or "http").lower()
        if self.http_scheme not in HTTP_SCHEMES:
            raise ConfigError(f"http_scheme {self.http_scheme!r} is not http or https.", fix="set http_scheme to http or https.")
        self.password = "" if config.get("password") is None else str(config["password"])
        self.jwt = "" if config.get("jwt") is None else str(config["jwt"])
        if self.password and self.jwt:
            raise ConfigError("Trino config sets both password and jwt.", fix="keep one of them.")
        if (self.password or self.jwt) and self.http_scheme != "https":
            raise ConfigError(
                "Trino accepts a password or a JWT only over HTTPS; this config uses http.",
                fix="set http_scheme: https (and verify, if the server's certificate is not from a public CA).",
            )
        self.verify = _verify(config.get("verify"))
        props = config.get("session_properties") or {}
        if not isinstance(props, dict):
            raise ConfigError(
                "Trino session_properties must be a mapping of names to values.", fix="e.g. session_properties: {query_max_run_time: 1h}."
            )
        self.session_properties = {str(k): str(v) for k, v in props.items()}
        self.concurrency = int_option(config, "max_concurrent_statements", DEFAULT_CONCURRENCY, "Trino")
        self.statement_bytes = int_option(config, "max_statement_bytes", DEFAULT_STATEMENT_BYTES, "Trino")
        self.commit_rows = int_option(config, "commit_rows", DEFAULT_COMMIT_ROWS, "Trino")
        for key, value, low in (
            ("max_concurrent_statements", self.concurrency, 1),
            ("max_statement_bytes", self.statement_bytes, 10_000),
            ("commit_rows", self.commit_rows, 1),
        ):
            if value < low:
                raise ConfigError(f"Trino config {key} must be at least {low}, got {value}.", fix=f"leave {key} out or raise it.")
        self.staging_location = str(config["staging_location"]) if config.get("staging_location") else None
        self.staging_server_location = str(config.get("staging_server_location") or self.staging_location or "")
        self.staging_catalog = str(config["staging_catalog"]) if config.get("staging_catalog") else None
        self.staging_schema = str(config.get("staging_schema") or self.schema)
        if self.staging_location and not self.staging_catalog:
            raise ConfigError(
                "Trino config sets staging_location but no staging_catalog.",
                fix="set staging_catalog to a Hive catalog of the server that reads staging_location, or leave staging_location out.",
            )
        self.redact = Redactor([self.password, self.jwt])

    def __repr__(self) -> str:
        return f"TrinoConfig(host={self.host!r}, port={self.port}, user={self.user!r}, catalog={self.catalog!r}, schema={self.schema!r})"

    def where(self) -> str:
        return f"Trino at {self.http_scheme}://{self.host}:{self.port} (user {self.user!r}, catalog {self.catalog!r})"

    def connect(self) -> TrinoSession:
        return TrinoSession(self)


def _verify(value: Any) -> bool | str:
    if value is None or value is True or (isinstance(value, str) and value.strip().lower() in ("", "true", "yes")):
        return True
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "no")):
        return False
    return str(value)


def _pinned_session(verify: bool | str) -> Any:
    """An HTTP session whose ``verify`` is the block's, whatever the environment says: requests lets
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA bundle (and ``verify: false``), so a
    configured bundle would silently not be the one used."""
    import requests

    class PinnedSession(requests.Session):
        def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            settings = super().merge_environment_settings(*args, **kwargs)
            settings["verify"] = self.verify
            return settings

    session = PinnedSession()
    session.verify = verify
    return session


class TrinoSession:
    """One client connection (autocommit: every statement commits on its own)."""

    def __init__(self, cfg: TrinoConfig) -> None:
        try:
            import trino
        except ImportError:
            raise ConfigError(
                "the trino destination needs the `trino` Python client, which is not installed.",
                fix="pip install 'jupyter-di[trino]' (or: pip install trino).",
            ) from None
        self.cfg = cfg
        auth: Any = None
        if cfg.password:
            auth = trino.auth.BasicAuthentication(cfg.user, cfg.password)
        elif cfg.jwt:
            auth = trino.auth.JWTAuthentication(cfg.jwt)
        self._conn = trino.dbapi.connect(
            host=cfg.host,
            port=cfg.port,
            user=cfg.user,
            catalog=cfg.catalog,
            http_scheme=cfg.http_scheme,
            auth=auth,
            verify=cfg.verify,
            session_properties=cfg.session_properties or None,
            http_session=None if cfg.verify is True else _pinned_session(cfg.verify),
            source="jupyter-di",
            legacy_prepared_statements=False,  # EXECUTE IMMEDIATE (Trino 418+): no probe statement per connection
            request_timeout=120.0,
        )

    def run(self, statement: str, params: Sequence[Any] | None = None) -> list[list[Any]]:
        """Run one statement to its end; its rows.  Errors become ``TrinoError`` (secrets masked)."""
        cur = self._conn.cursor()
        try:
            if params is None:
                cur.execute(statement)
            else:
                cur.execute(statement, list(params))
            return cur.fetchall()
        except Exception as exc:
            raise self.error(exc) from None
        finally:
            cur.close()

    def error(self, exc: BaseException) -> DIError:
        import trino.exceptions as te

        if isinstance(exc, te.TrinoQueryError) and exc.error_name == "INVALID_SESSION_PROPERTY":
            return ConfigError(
                f"{self.cfg.where()} refused a session property: {self.cfg.redact(exc.message)}",
                fix="check session_properties in the block's config.",
            )
        if isinstance(exc, te.TrinoQueryError):
            return TrinoError(self.cfg.redact(exc.message), exc.error_name or "", exc.error_type or "")
        text = self.cfg.redact(str(exc)).strip().splitlines()
        reason = text[0] if text else type(exc).__name__
        if isinstance(exc, te.HttpError) and ("401" in reason or "403" in reason):
            return ConnectionFailed(f"{self.cfg.where()} refused the credentials: {reason}", fix="check user, password or jwt.")
        return ConnectionFailed(
            f"could not reach {self.cfg.where()}: {reason}",
            fix="check host, port and http_scheme, and that the coordinator is running and reachable from here.",
        )

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # nothing to release on a broken connection
            pass


class TrinoError(SchemaMismatch):
    """A statement Trino refused; ``name`` is Trino's error name (``NOT_SUPPORTED``, ``TABLE_NOT_FOUND`` ...)."""

    def __init__(self, message: str, name: str, kind: str) -> None:
        super().__init__(f"Trino: {message} ({name})" if name else f"Trino: {message}")
        self.name = name
        self.kind = kind


class TrinoConnector(Connector):
    """Config parsing and the connection check."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._cfg = TrinoConfig(config)

    def check(self) -> None:
        session = self._cfg.connect()
        try:
            rows = session.run("SELECT connector_name FROM system.metadata.catalogs WHERE catalog_name = ?", [self._cfg.catalog])
        finally:
            session.close()
        if not rows:
            raise ConfigError(
                f"{self._cfg.where()} has no catalog {self._cfg.catalog!r}.", fix="set catalog to one that SHOW CATALOGS lists."
            )
