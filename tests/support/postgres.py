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
PASSWORD = "s3cret-Pa55word"
"""The ``postgres`` role's password on a ``start_with_password`` cluster."""


def _new_base(base_dir: str | None) -> Path:
    """The folder of a new cluster (``data`` in it), owned by the user the server runs as."""
    base = Path(base_dir or tempfile.mkdtemp(prefix=TEMP_PREFIX))
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
        os.chmod(base, 0o755)
    return base


def _run_server(base: Path, extra: str = "") -> dict[str, str]:
    """Start the cluster in ``base/data`` on a free port; env-style settings (host, port, user, data dir)."""
    data = base / "data"
    port = free_port()
    # wal_level=logical (with slots and WAL senders) for log-based sync (issue 18); a standby needs
    # the same limits (max_connections...) as its primary.
    opts = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c max_connections=200"
        f" -c wal_level=logical -c max_replication_slots=50 -c max_wal_senders=20{extra}"
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


def start(base_dir: str | None = None) -> dict[str, str]:
    """Create and start a cluster; returns env-style settings (host, port, user, data dir)."""
    base = _new_base(base_dir)
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(base / "data"), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return _run_server(base)


def start_with_password(password: str = PASSWORD, base_dir: str | None = None) -> dict[str, str]:
    """A cluster that checks passwords over TCP (scram-sha-256; the shared test server trusts
    everyone), the ``postgres`` role's password ``password``; the same settings as ``start``."""
    base = _new_base(base_dir)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, user="postgres")
    initdb = [str(PG_BIN / "initdb"), "-D", str(base / "data"), "-U", "postgres", "--auth-host=scram-sha-256", "--auth-local=trust"]
    subprocess.run(_as_postgres([*initdb, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]), check=True, stdout=subprocess.DEVNULL)
    pwfile.unlink()
    return _run_server(base)


def start_standby(primary_host: str, primary_port: int, base_dir: str | None = None) -> dict[str, str]:
    """A hot standby of a running server (``pg_basebackup -R``: streaming replication from it), started
    on a free port; the same settings as ``start`` (stop it with ``stop``)."""
    base = _new_base(base_dir)
    backup = [str(PG_BIN / "pg_basebackup"), "-h", primary_host, "-p", str(primary_port), "-U", "postgres", "-D", str(base / "data")]
    subprocess.run(_as_postgres([*backup, "-R", "-X", "stream", "-c", "fast"]), check=True, stdout=subprocess.DEVNULL)
    return _run_server(base, " -c hot_standby=on")


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
