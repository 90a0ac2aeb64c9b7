"""Start a throwaway PostgreSQL server for the tests (and for .ci/run), with wal_level=logical.

PostgreSQL refuses to run as root, so when we are root the cluster is created
and started as the ``postgres`` user.  It listens on 127.0.0.1 on a free port,
trusts local connections, and lives in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("JDI_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


TEMP_PREFIX = "jdi-pg-"


def start(base_dir: str | None = None) -> dict[str, str]:
    """Create and start a cluster; returns env-style settings (host, port, user, data dir)."""
    base = Path(base_dir or tempfile.mkdtemp(prefix=TEMP_PREFIX))
    data = base / "data"
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
        os.chmod(base, 0o755)
    port = free_port()
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # wal_level=logical (with slots and WAL senders) for log-based sync (issue 18).
    opts = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c max_connections=200"
        " -c wal_level=logical -c max_replication_slots=50 -c max_wal_senders=20"
    )
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return {"JDI_TEST_PG_HOST": "127.0.0.1", "JDI_TEST_PG_PORT": str(port), "JDI_TEST_PG_USER": "postgres", "JDI_TEST_PG_DATA": str(data)}


def stop(data_dir: str) -> None:
    """Stop the server; a cluster that ``start`` made in a temporary directory is deleted too
    (a benchmark's cluster holds gigabytes)."""
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", data_dir, "-m", "immediate", "stop"]), check=False, stdout=subprocess.DEVNULL
    )
    base = Path(data_dir).parent
    if base.name.startswith(TEMP_PREFIX) and base.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        for key, value in start(sys.argv[1] if len(sys.argv) > 1 else None).items():
            print(f"export {key}={value}")
