"""Singer target benchmark: one Singer stream from a file into PostgreSQL, three targets in one run.

    python benchmarks/singer_target.py                    # 1,000,000 records, its own throwaway server
    python benchmarks/singer_target.py --records 200000
    python benchmarks/singer_target.py --host H --port P --username U   # an existing server ($PGPASSWORD)

The stream: one SCHEMA (8 properties: integer key ``id``, ``updated_at`` date-time, ``name``,
``email``, integer ``quantity``, number ``price``, boolean ``active``, nullable ``note``), the
records, and a STATE every 100,000 records; written once to
~/.cache/jupyter-di/bench-data/ and fed to each target on stdin from that file.

The targets, each into a fresh database, each with its defaults:
- ``jupyter-di target postgresql`` (this checkout, run with this interpreter);
- ``meltanolabs-target-postgres`` 0.8.1 (Meltano SDK);
- ``pipelinewise-target-postgres`` 2.1.2.
The two baselines are installed into their own virtualenvs under
~/.cache/jupyter-di/bench-venvs/ on first use.  Each target runs as a child process; the table
shows records per second over the child's wall time (start-up included), the child's CPU seconds
(user + system; on a shared machine the steadier measure) and peak RSS (``os.wait4``; the server's
work is not in them), and each row is checked: the table holds every record once, with the last values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = Path.home() / ".cache" / "jupyter-di"
VENVS = CACHE / "bench-venvs"
DATA = CACHE / "bench-data"
STREAM = "bench_orders"
STATE_EVERY = 100_000

BASELINES = {
    "meltanolabs-target-postgres": ("meltanolabs-target-postgres==0.8.1", "target-postgres"),
    "pipelinewise-target-postgres": ("pipelinewise-target-postgres==2.1.2", "target-postgres"),
}

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "updated_at": {"type": "string", "format": "date-time"},
        "name": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "quantity": {"type": ["integer", "null"]},
        "price": {"type": ["number", "null"]},
        "active": {"type": ["boolean", "null"]},
        "note": {"type": ["string", "null"]},
    },
}


def data_file(records: int) -> Path:
    """The Singer messages, written once per size."""
    path = DATA / f"singer-{STREAM}-{records}.jsonl"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps({"type": "SCHEMA", "stream": STREAM, "schema": SCHEMA, "key_properties": ["id"]}) + "\n")
        for i in range(1, records + 1):
            record = {
                "id": i,
                "updated_at": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
                "name": f"customer {i} ü",
                "email": f"user{i}@example.com",
                "quantity": i % 1000,
                "price": round((i % 100000) / 100.0, 2),
                "active": i % 2 == 0,
                "note": None if i % 5 == 0 else f"note {i}",
            }
            f.write('{"type":"RECORD","stream":"' + STREAM + '","record":' + json.dumps(record, ensure_ascii=False) + "}\n")
            if i % STATE_EVERY == 0:
                f.write(json.dumps({"type": "STATE", "value": {"bookmarks": {STREAM: {"id": i}}}}) + "\n")
        f.write(json.dumps({"type": "STATE", "value": {"bookmarks": {STREAM: {"id": records}}}}) + "\n")
    tmp.rename(path)
    return path


def baseline_executable(name: str) -> Path:
    requirement, script = BASELINES[name]
    folder = VENVS / requirement.replace("==", "-")
    exe = folder / "bin" / script
    if (folder / ".complete").exists() and exe.exists():
        return exe
    print(f"installing {requirement} into {folder} ...", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", requirement], check=True)
    (folder / ".complete").write_text(requirement)
    return exe


def run_child(cmd: list[str], stdin_path: Path, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one target on the file; wall seconds, peak RSS (MB), the states it printed."""
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    os.chmod(config_path, 0o600)
    out_path, err_path = workdir / "stdout", workdir / "stderr"
    try:
        with open(stdin_path, "rb") as stdin, open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen([*cmd, "--config", str(config_path)], stdin=stdin, stdout=out, stderr=err, env=env, cwd=workdir)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
    finally:
        config_path.unlink()  # it holds the password
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{cmd[0]} exited {code}: {err_path.read_text(errors='replace')[-2000:]}")
    states = [line for line in out_path.read_text().splitlines() if line.strip().startswith("{")]
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024, "states": states}


def fresh_database(server: dict[str, Any], name: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(host=server["host"], port=server["port"], user=server["username"], dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return {**server, "database": name}


def check_table(db: dict[str, Any], schema: str, records: int) -> str:
    """Every record once, with its values (spot check of the last one)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=db["host"], port=db["port"], user=db["username"], dbname=db["database"]) as conn:
        table = sql.Identifier(schema, STREAM)
        count, distinct = conn.execute(sql.SQL("SELECT count(*), count(DISTINCT id) FROM {}").format(table)).fetchone()
        last = conn.execute(sql.SQL("SELECT name, quantity, active, note FROM {} WHERE id = %s").format(table), (records,)).fetchone()
    want = (f"customer {records} ü", records % 1000, records % 2 == 0, None if records % 5 == 0 else f"note {records}")
    if count != records or distinct != records or tuple(last) != want:
        return f"WRONG: {count} rows, {distinct} ids, last {last}"
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--username", default="postgres")
    parser.add_argument("--only", nargs="+", help="run only these targets")
    args = parser.parse_args()

    started_server = None
    if args.host:
        server = {"host": args.host, "port": args.port or 5432, "username": args.username}
    else:
        from tests.support import postgres

        started_server = postgres.start()
        server = {"host": started_server["JDI_TEST_PG_HOST"], "port": int(started_server["JDI_TEST_PG_PORT"]), "username": "postgres"}
    password = os.environ.get("PGPASSWORD", "")
    baseline_password = password or "unused"  # the baselines require the key; trust authentication ignores it
    path = data_file(args.records)
    size_mb = path.stat().st_size / 1e6
    print(f"{args.records:,} records ({size_mb:,.0f} MB of Singer messages) from {path}", flush=True)

    cases = {
        "jupyter-di target postgresql": lambda db: (
            [sys.executable, "-m", "jupyter_di.cli", "target", "postgresql"],
            {"host": db["host"], "port": db["port"], "username": db["username"], "password": password, "database": db["database"]},
            "public",
        ),
        "meltanolabs-target-postgres": lambda db: (
            [str(baseline_executable("meltanolabs-target-postgres"))],
            {
                "host": db["host"],
                "port": db["port"],
                "user": db["username"],
                "password": baseline_password,
                "database": db["database"],
                "default_target_schema": "public",
            },
            "public",
        ),
        "pipelinewise-target-postgres": lambda db: (
            [str(baseline_executable("pipelinewise-target-postgres"))],
            {
                "host": db["host"],
                "port": db["port"],
                "user": db["username"],
                "password": baseline_password,
                "dbname": db["database"],
                "default_target_schema": "public",
            },
            "public",
        ),
    }
    rows = []
    workroot = DATA / "runs"
    try:
        for i, (label, make) in enumerate(cases.items()):
            if args.only and not any(o in label for o in args.only):
                continue
            db = fresh_database(server, f"bench_singer_{i}")
            cmd, config, schema = make(db)
            workdir = workroot / str(i)
            workdir.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ, PYTHONPATH=str(ROOT)) if "jupyter-di" in label else None
            print(f"running {label} ...", file=sys.stderr, flush=True)
            try:
                result = run_child(cmd, path, config, workdir, env)
                check = check_table(db, schema, args.records)
                rate = args.records / result["seconds"]
                rows.append((label, result["seconds"], rate, result["cpu"], result["rss_mb"], len(result["states"]), check))
            except Exception as exc:  # noqa: BLE001 - a failing baseline is a row, not the end of the run
                nan = float("nan")
                rows.append((label, nan, nan, nan, nan, 0, f"failed: {str(exc)[:200]}"))
    finally:
        if started_server:
            from tests.support import postgres

            postgres.stop(started_server["JDI_TEST_PG_DATA"])

    print()
    print(f"{'target':32} {'seconds':>9} {'records/s':>11} {'CPU s':>7} {'peak RSS MB':>12} {'states':>7}  check")
    for label, seconds, rate, cpu, rss, states, check in rows:
        print(f"{label:32} {seconds:9.1f} {rate:11,.0f} {cpu:7.1f} {rss:12.0f} {states:7d}  {check}")
    ours = next((r[2] for r in rows if r[0].startswith("jupyter-di")), None)
    baselines = [r[2] for r in rows if not r[0].startswith("jupyter-di") and r[2] == r[2]]
    if ours and baselines:
        print(f"\njupyter-di / faster baseline: {ours / max(baselines):.1f}x")


if __name__ == "__main__":
    main()
