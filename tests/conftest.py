"""Shared fixtures: a real PostgreSQL server, fresh databases, temp folders.

The server comes from the environment when ``.ci/run`` started one
(``JDI_TEST_PG_PORT``); otherwise the session starts its own throwaway cluster.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.support import postgres


@contextmanager
def server_from_env(port_var: str, start: Callable[[], dict[str, str]], stop: Callable[[dict[str, str]], None]) -> Iterator[None]:
    """A server for the session: the one the environment names (``.ci/run`` started it and set
    ``port_var``), else one started now, whose settings go into the environment, and stopped after."""
    if os.environ.get(port_var):
        yield
        return
    started = start()
    os.environ.update(started)
    try:
        yield
    finally:
        stop(started)


@pytest.fixture(scope="session")
def pg_server():
    """Connection settings of a running PostgreSQL server (host, port, user)."""
    with server_from_env("JDI_TEST_PG_PORT", postgres.start, lambda env: postgres.stop(env["JDI_TEST_PG_DATA"])):
        yield {
            "host": os.environ["JDI_TEST_PG_HOST"],
            "port": int(os.environ["JDI_TEST_PG_PORT"]),
            "username": os.environ.get("JDI_TEST_PG_USER", "postgres"),
        }


@pytest.fixture(scope="module")
def password_server() -> Iterator[dict]:
    """A PostgreSQL cluster of its own that checks passwords (``postgres.PASSWORD``); the shared one trusts everyone."""
    env = postgres.start_with_password(postgres.PASSWORD)
    try:
        yield {
            "host": "127.0.0.1",
            "port": int(env["JDI_TEST_PG_PORT"]),
            "database": "postgres",
            "username": "postgres",
            "schema": "public",
        }
    finally:
        postgres.stop(env["JDI_TEST_PG_DATA"])


@pytest.fixture(scope="session")
def trino_server():
    """Connection settings of a running Trino server (tests/support/trino_server.py): from the environment
    when .ci/run started one (``JDI_TEST_TRINO_PORT``), else one started for this session."""
    from tests.support import trino_server as server

    with server_from_env("JDI_TEST_TRINO_PORT", server.start, lambda env: server.stop(env["JDI_TEST_TRINO_DIR"])):
        yield {
            **{k[len("JDI_TEST_TRINO_") :].lower(): v for k, v in os.environ.items() if k.startswith("JDI_TEST_TRINO_")},
            "host": os.environ["JDI_TEST_TRINO_HOST"],
            "port": int(os.environ["JDI_TEST_TRINO_PORT"]),
            "user": os.environ.get("JDI_TEST_TRINO_USER", "jdi"),
            "catalog": os.environ.get("JDI_TEST_TRINO_CATALOG", "iceberg"),
        }


@pytest.fixture
def pg_config(pg_server):
    """A fresh, empty database; returns a jupyter-di PostgreSQL config dict for it."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(
        host=pg_server["host"], port=pg_server["port"], user=pg_server["username"], dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {
        "host": pg_server["host"],
        "port": pg_server["port"],
        "database": name,
        "username": pg_server["username"],
        "password": "",
        "schema": "public",
    }
    with psycopg.connect(
        host=pg_server["host"], port=pg_server["port"], user=pg_server["username"], dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_connect(pg_config):
    """Open an autocommit psycopg connection to the fresh test database."""
    import psycopg

    conns = []

    def connect():
        conn = psycopg.connect(
            host=pg_config["host"], port=pg_config["port"], user=pg_config["username"], dbname=pg_config["database"], autocommit=True
        )
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


MARKS_BY_FIXTURE = {
    "pg_server": "postgres",  # pg_config and pg_connect use it too
    "singer_exe": "singer",
    "trino_server": "trino",
    "page": "browser",
    "lab": "browser",
}
"""A test is marked by what it uses, so `-m "not postgres and not browser and not singer"` (the fast
subset, README) cannot miss a test that forgot its marker."""


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's hook signature
    for item in items:
        for fixture, mark in MARKS_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, mark))
