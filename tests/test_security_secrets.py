"""Secrets never print, and a killed run leaves nothing behind (issue 13, items 2 and 3).

- A PostgreSQL source whose host, database, user and password are all ``{{ secret() }}`` fails
  (nothing listens on the port, or the database does not exist): the run exits 1 and no secret
  value shows up in the CLI's stdout/stderr, in a notebook executed by nbconvert (short and full
  errors), in the state file, or in the temp folder.
- A Singer tap that prints its config to stderr (JSON, a Python dict, a URL with the password
  URL-encoded) and fails: its error and the ``jupyter_di.singer`` log show ``***`` instead.
- ``jupyter-di run`` killed with SIGKILL while a tap reads: the tap's config file (the only file
  holding a secret while the run lives) is gone within seconds, and so is the run's spill folder;
  if the watchdog that removes them dies with the run, the next run removes them as it starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import nbformat
import pytest

from jupyter_di import redaction, run_dirs
from jupyter_di.cli import main
from jupyter_di.connectors.base import ReadRequest, StreamSettings
from jupyter_di.connectors.singer import SingerSource
from jupyter_di.errors import DIError
from jupyter_di.secrets import SecretStore
from tests.support.notebooks import cli_process, start_run, write_notebook

SECRET_TAP = Path(__file__).resolve().parent / "support" / "secret_tap.py"
BIN = Path(sys.executable).parent
PASSWORD = "p@ss:w/rd Zq9'\"x"
"""Characters a driver escapes or encodes: the masked forms must cover them."""


def forms(value: str) -> set[str]:
    """How a leaked value could look: as is, JSON-escaped, URL-encoded."""
    return {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}


def leaks(secrets: list[str], *, texts: dict[str, str] = {}, folders: list[Path] = ()) -> list[str]:  # noqa: B006
    """Where any form of any secret shows: in a text, or in a file under a folder."""
    found = []
    needles = {f for s in secrets for f in forms(s)}
    for label, text in texts.items():
        found += [f"{label}: {n!r}" for n in needles if n in text]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found += [f"{path}: {n!r}" for n in needles if n.encode() in data]
    return found


def base_env(tmp_path: Path) -> dict[str, str]:
    """A private temp folder (TMPDIR) and secret store; no identity from the surroundings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_DI_") and k != "JPY_SESSION_NAME"}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env.update(TMPDIR=str(tmp_path / "tmp"), JUPYTER_DI_SECRETS_FILE=str(tmp_path / "secrets.json"))
    return env


def cli(notebook: Path, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return cli_process("run", str(notebook), *args, env=env, timeout=timeout)


PG_CELL = """%%di_source shop
source: postgresql
config:
  host: "{{ secret('pg_host') }}"
  port: PORT
  database: "{{ secret('pg_db') }}"
  username: "{{ secret('pg_user') }}"
  password: "{{ secret('pg_pw') }}"
  connect_timeout: 5
streams:
  orders: {}
"""


@pytest.fixture
def pg_case(request, tmp_path):
    """(notebook folder, env, secret values) for a PostgreSQL source that cannot connect."""
    folder = tmp_path / "nb"
    folder.mkdir()
    env = base_env(tmp_path)
    tag = uuid.uuid4().hex[:6]
    if request.param == "refused":  # a loopback address nothing listens on
        secrets = {"pg_host": "127.13.37.42", "pg_db": f"db_zq9{tag}", "pg_user": f"u_zq9{tag}", "pg_pw": PASSWORD}
        port, role = 1, None
    else:  # the real server, a real login role, a database that does not exist
        import psycopg

        server = request.getfixturevalue("pg_server")
        role = f"u_zq9{tag}"
        with psycopg.connect(host=server["host"], port=server["port"], user=server["username"], dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
        secrets = {"pg_host": server["host"], "pg_db": f"db_zq9{tag}", "pg_user": role, "pg_pw": PASSWORD}
        port = server["port"]
    env.update({f"JUPYTER_DI_SECRET_{k.upper()}": v for k, v in secrets.items()})
    write_notebook(folder / "shop.ipynb", ["%load_ext jupyter_di", PG_CELL.replace("PORT", str(port))])
    yield folder, env, list(secrets.values())
    if role:
        import psycopg

        with psycopg.connect(host=server["host"], port=server["port"], user=server["username"], dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


CASES = [pytest.param("refused", id="nothing-listens"), pytest.param("wrong_database", id="wrong-database", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("pg_case", CASES, indirect=True)
def test_cli_never_prints_postgres_secrets(pg_case, tmp_path):
    folder, env, secrets = pg_case
    done = cli(folder / "shop.ipynb", env)
    assert done.returncode == 1, done.stderr
    assert "could not connect to PostgreSQL at ***" in done.stderr and "database '***', user '***'" in done.stderr
    assert (folder / ".jupyter_di" / "state.sqlite").exists()
    assert leaks(secrets, texts={"stdout": done.stdout, "stderr": done.stderr}, folders=[folder, tmp_path / "tmp"]) == []
    assert list((tmp_path / "tmp").iterdir()) == []  # the run removed its own folder


@pytest.mark.parametrize("short_errors", [True, False], ids=["short-errors", "full-traceback"])
@pytest.mark.parametrize("pg_case", CASES, indirect=True)
def test_nbconvert_executed_notebook_holds_no_secret(pg_case, short_errors, tmp_path):
    folder, env, secrets = pg_case
    nb = nbformat.read(folder / "shop.ipynb", as_version=4)
    nb.cells[0].source += f"\n%config JupyterDI.short_errors = {short_errors}"
    nbformat.write(nb, folder / "shop.ipynb")
    env["JUPYTER_DI_PIPELINE"] = "shop"
    program = (
        BIN / "jupyter-nbconvert"
        if (BIN / "jupyter-nbconvert").exists()
        else Path(shutil.which("jupyter-nbconvert") or "jupyter-nbconvert")
    )
    done = subprocess.run(
        [str(program), "--to", "notebook", "--execute", "--allow-errors", "shop.ipynb", "--output", "shop.out"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    executed = (folder / "shop.out.ipynb").read_text("utf-8")
    outputs = json.dumps([o for cell in json.loads(executed)["cells"] for o in cell.get("outputs", [])])
    assert "could not connect to PostgreSQL at ***" in outputs, outputs[-3000:]  # a UsageError is a stderr stream
    assert (
        leaks(secrets, texts={"nbconvert stdout": done.stdout, "nbconvert stderr": done.stderr}, folders=[folder, tmp_path / "tmp"]) == []
    )


# -- Singer: a tap that prints its config --------------------------------------------------------------


def tap_launcher(folder: Path) -> str:
    """An executable that runs tests/support/secret_tap.py with this Python."""
    path = folder / "tap-secret"
    path.write_text(f"#!{sys.executable}\nimport os, sys\nos.execv(sys.executable, [sys.executable, {str(SECRET_TAP)!r}, *sys.argv[1:]])\n")
    path.chmod(0o755)
    return str(path)


def tap_cell(exe: str, mode: str, **extra: str) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    return (
        f"%%di_source tap\nsource: singer\nconfig:\n  executable: {exe}\n  config:\n    mode: {mode}\n"
        "    host: \"{{ secret('tap_host') }}\"\n    user: \"{{ secret('tap_user') }}\"\n    password: \"{{ secret('tap_pw') }}\"\n"
        f"{lines}streams:\n  items: {{}}\n"
    )


TAP_SECRETS = {"tap_host": "db.zq9-internal.example", "tap_user": "svc_zq9_loader", "tap_pw": PASSWORD}


def test_singer_tap_printing_its_config_is_masked_in_the_error(tmp_path):
    env = base_env(tmp_path)
    env.update({f"JUPYTER_DI_SECRET_{k.upper()}": v for k, v in TAP_SECRETS.items()})
    notebook = write_notebook(tmp_path / "tap.ipynb", ["%load_ext jupyter_di", tap_cell(tap_launcher(tmp_path), "leak")])
    done = cli(notebook, env)
    assert done.returncode == 1, done.stderr
    assert (
        "exit code 2" in done.stderr and "config as a dict:" in done.stderr and "connecting to postgresql://***:***@***/db" in done.stderr
    )
    assert leaks(list(TAP_SECRETS.values()), texts={"stdout": done.stdout, "stderr": done.stderr}, folders=[tmp_path]) == []


def test_singer_stderr_log_and_error_mask_secret_store_values(tmp_path, monkeypatch, caplog):
    """In process: the host is under no secret-looking key, but it came from the secret store."""
    monkeypatch.setenv("JUPYTER_DI_SECRETS_FILE", str(tmp_path / "secrets.json"))
    store = SecretStore()
    for name, value in TAP_SECRETS.items():
        store.set(name, value)
    config = {"mode": "leak", "host": store.get("tap_host"), "user": store.get("tap_user"), "password": store.get("tap_pw")}
    caplog.set_level(logging.INFO, logger="jupyter_di.singer")
    with pytest.raises(DIError) as err:
        SingerSource({"executable": tap_launcher(tmp_path), "config": config}).read(ReadRequest(StreamSettings("items")))
    text = str(err.value)
    assert "connecting to postgresql://***:***@***/db" in text and "user '***' with ***" in text
    assert "connecting to postgresql://***:***@***/db" in caplog.text
    assert leaks(list(TAP_SECRETS.values()), texts={"error": text, "log": caplog.text}) == []


# -- kill -9 mid-read ----------------------------------------------------------------------------------


def run_folders(tmp: Path, pid: int) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if re.fullmatch(rf"jupyter-di-[a-z]+-{pid}-[0-9a-f]{{8}}", p.name))


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie has closed everything
    except FileNotFoundError:
        return True


def watchdog_of(pid: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--watch" in argv and argv[-2:] == [str(pid).encode(), b""] and argv[1:3] == [b"-I", b"-S"]:
                return int(proc.name)
    return None


def start_killable_run(tmp_path: Path) -> tuple[subprocess.Popen, Path, dict[str, str], int]:
    """``jupyter-di run`` of a notebook whose tap reads forever; returns once the tap is reading and
    the source spools its batches.  (process, temp folder, env, tap pid)"""
    env = base_env(tmp_path)
    env.update({f"JUPYTER_DI_SECRET_{k.upper()}": v for k, v in TAP_SECRETS.items()})
    folder = tmp_path / "nb"
    folder.mkdir()
    pid_file = tmp_path / "tap.pid"
    notebook = write_notebook(
        folder / "slow.ipynb",
        ["%load_ext jupyter_di\n%config JupyterDI.batch_size = 10", tap_cell(tap_launcher(tmp_path), "slow", pid_file=str(pid_file))],
    )
    proc = start_run(notebook, env=env, start_new_session=True)
    tmp = tmp_path / "tmp"
    # a Singer source spools the tap's batches (its own run folder) until the tap ends
    spooling = lambda: pid_file.exists() and any(f.rglob("*.arrow") for f in run_folders(tmp, proc.pid) if "-singerspool-" in f.name)  # noqa: E731
    try:
        wait_for(lambda: proc.poll() is not None or spooling(), what="the tap to read and the source to spool")
    except AssertionError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc, tmp, env, int(pid_file.read_text())


def kill_run(proc: subprocess.Popen, tap_pid: int) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the run's process group, as the crash tests do
    proc.wait()
    proc.stderr.close()
    wait_for(lambda: process_gone(tap_pid), 10, "the orphaned tap to die of its closed stdout")


@pytest.fixture
def killable_run(tmp_path):
    """``start_killable_run``; whatever the test asserts, the run and its tap end with it."""
    started = []

    def start():
        started.append(start_killable_run(tmp_path))
        return started[-1]

    yield start
    for proc, _tmp, _env, tap_pid in started:
        if proc.poll() is None:
            kill_run(proc, tap_pid)
        elif not process_gone(tap_pid):
            os.kill(tap_pid, signal.SIGKILL)


def secret_files(folder: Path) -> list[Path]:
    """Files under ``folder`` holding the password in any form (a JSON config escapes its quote)."""
    needles = [f.encode() for f in forms(PASSWORD)]
    return [p for p in folder.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


@pytest.mark.timeout(120)
def test_kill_minus_nine_mid_read_leaves_no_config_and_no_spill(tmp_path, killable_run):
    proc, tmp, _env, tap_pid = killable_run()
    # while the run lives: the tap's config is one 0600 file in a 0700 run folder of the temp folder
    held = secret_files(tmp_path)
    assert len(held) == 1 and held[0].name == "config.json", held
    assert held[0].parent.parent == tmp and held[0].parent.name.startswith(f"jupyter-di-singer-{proc.pid}-")
    assert held[0].stat().st_mode & 0o777 == 0o600 and held[0].parent.stat().st_mode & 0o777 == 0o700
    assert len(run_folders(tmp, proc.pid)) == 3  # the spill folder, the tap's and its spool
    kill_run(proc, tap_pid)
    # the watchdog removes the dead run's folders at once: no next run needed
    wait_for(lambda: not run_folders(tmp, proc.pid), 10, "the watchdog to remove the killed run's folders")
    assert secret_files(tmp_path) == []
    assert leaks(list(TAP_SECRETS.values()), folders=[tmp_path / "nb", tmp]) == []


@pytest.mark.timeout(120)
def test_next_run_removes_what_a_killed_run_and_its_watchdog_left(tmp_path, killable_run):
    """The backstop: the watchdog was killed too (as by an OOM kill of both, or a power cut)."""
    proc, tmp, env, tap_pid = killable_run()
    wait_for(lambda: watchdog_of(proc.pid) is not None, 10, "the run's watchdog")
    os.kill(watchdog_of(proc.pid), signal.SIGKILL)
    kill_run(proc, tap_pid)
    left = run_folders(tmp, proc.pid)
    assert len(left) == 3 and len(secret_files(tmp_path)) == 1  # the spill folder, the tap's folder (its config) and its spool
    other = write_notebook(tmp_path / "nb" / "other.ipynb", ["%%di_block hello\n@data_loader\ndef load(*args, **kwargs):\n    return 1\n"])
    done = cli(other, env)
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in left)
    assert secret_files(tmp_path) == [] and list(tmp.iterdir()) == []


# -- the shared mask -------------------------------------------------------------------------------------


def test_mask_covers_driver_forms_and_short_secrets_only_as_tokens():
    redaction.remember("Zq9-pa:ss/w'rd", "q7")
    text = "url postgresql://u:Zq9-pa%3Ass%2Fw%27rd@h/db json \"Zq9-pa:ss/w'rd\" repr 'Zq9-pa:ss/w\\'rd' user \"q7\" but not q77 nor aq7"
    masked = redaction.redact(text)
    assert "Zq9" not in masked and "%3A" not in masked
    assert 'user "***"' in masked and "q77" in masked and "aq7" in masked


def test_exception_chain_is_masked_in_place():
    redaction.remember("h0st-zq9.example")
    try:
        try:
            raise OSError('could not translate host name "h0st-zq9.example"')
        except OSError as inner:
            raise DIError("could not connect to h0st-zq9.example", fix="check h0st-zq9.example") from inner
    except DIError as exc:
        redaction.redact_exception(exc)
        assert "h0st" not in str(exc) and "h0st" not in str(exc.__cause__) and "***" in str(exc)


def test_a_run_folder_is_kept_while_its_process_lives_and_swept_after(tmp_path):
    alive = run_dirs.RunDir("run", base=tmp_path)
    for thread in threading.enumerate():  # the sweep the new folder started: it must not race the one below
        if thread.name == "jupyter-di-sweep":
            thread.join()
    dead = tmp_path / "jupyter-di-run-999999-0123abcd"  # a folder whose owner died: its lock is free
    dead.mkdir()
    (dead / ".lock").write_text("999999\n")
    (dead / "spill.arrow").write_bytes(b"x" * 10)
    legacy = tmp_path / "jupyter-di-abc_1234"  # an older version's folder, a day old
    legacy.mkdir()
    os.utime(legacy, (time.time() - 2 * run_dirs.LEGACY_AGE,) * 2)
    fresh_legacy = tmp_path / "jdi-singer-xyz_9876"
    fresh_legacy.mkdir()
    assert sorted(run_dirs.sweep(tmp_path)) == sorted([dead, legacy])
    assert alive.path.exists() and fresh_legacy.exists()
    alive.close()
    assert not alive.path.exists()


def test_cli_main_masks_usage_errors(tmp_path, monkeypatch, capsys):
    """Errors raised before any block runs (here: a plan error quoting a value) are masked too."""
    monkeypatch.setenv("JUPYTER_DI_SECRET_ZQ9_NAME", "zq9-secret-block")
    SecretStore(tmp_path / "none.json").get("zq9_name")
    nb = write_notebook(tmp_path / "n.ipynb", ["%%di_block a\n@data_loader\ndef load(*args, **kwargs):\n    return 1\n"])
    assert main(["run", str(nb), "--blocks", "zq9-secret-block"]) == 2
    err = capsys.readouterr().err
    assert "zq9-secret-block" not in err and "***" in err


def test_secret_store_removes_a_copy_left_by_a_killed_write(tmp_path):
    store = SecretStore(tmp_path / "store" / "secrets.json")
    store.set("a", "one")
    stale = tmp_path / "store" / ".secrets-killed"
    stale.write_text('{"a": "one"}')
    os.utime(stale, (time.time() - 3600,) * 2)
    store.set("b", "two")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["secrets.json"]
    assert (tmp_path / "store" / "secrets.json").stat().st_mode & 0o777 == 0o600
