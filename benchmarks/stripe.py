"""The Stripe source on a local Stripe server: a first sync, then an incremental run after 1% changes
(issue 15), and the same through the Singer tap ``tap-stripe`` in the same run.

    python benchmarks/stripe.py [--customers 5000] [--charges 10000] [--changed 0.01] [--no-tap]

The server is localstripe, extended in tests/support/localstripe_server.py, in a thread of this
process; the data are made through it (Stripe's official client for the changes, localstripe's own
objects for the bulk: 15,000 POSTs through the client would time the client).  Each sync is a whole
``jupyter-di run`` process (Stripe source, customers and charges INCREMENTAL, into a DuckDB file);
the server counts the HTTP requests each run makes.  Target: the incremental run's requests grow with
the changes, not with the data.

tap-stripe (singer-io, installed into its own virtualenv under ~/.cache/jupyter-di) has no setting
for the API's address; it is pointed at the local server by a shim that sets the ``stripe`` library's
``api_base`` before the tap's ``main`` and turns off the tap's request-metrics timer (it parses every
URL as ``https://api.stripe.com/v1/...`` and fails on any other); the tap's sync logic is unchanged.
tap-stripe first retrieves the account, which localstripe lacks (the extension answers it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

import duckdb
import nbformat

ROOT = Path(__file__).resolve().parents[1]
# this file is named stripe.py: its folder must not shadow Stripe's `stripe` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from benchmarks.bytecode import compile_package  # noqa: E402
from tests.support import localstripe_server as ls_server  # noqa: E402
from tests.support.localstripe_server import LocalStripe  # noqa: E402

TAP = "tap-stripe==3.3.0"
TAP_VENV = Path.home() / ".cache" / "jupyter-di" / "bench-venvs" / "tap-stripe-3.3.0"
SHIM = (
    "import sys, stripe, tap_stripe\n"
    "stripe.api_base = sys.argv.pop(1)\n"
    "tap_stripe.apply_request_timer_to_client = lambda client: None  # its metrics timer parses api.stripe.com URLs only\n"
    "sys.exit(tap_stripe.main())\n"
)


def notebook(path: Path) -> None:
    source = (
        "%%di_source stripe\nsource: stripe\nconfig:\n  api_key: \"{{ env_var('STRIPE_API_KEY') }}\"\n"
        "  base_url: \"{{ env_var('STRIPE_BASE_URL') }}\"\n  lookback_window: 0\nstreams:\n"
        "  customers: {replication_method: INCREMENTAL}\n  charges: {replication_method: INCREMENTAL}\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(c)
        for c in (source, "%%di_destination wh --upstream stripe\ndestination: duckdb\nconfig:\n  path: wh.duckdb\n")
    ]
    nbformat.write(nb, path)


def bulk_seed(server: LocalStripe, customers: int, charges: int) -> tuple[list[str], list[str]]:
    """Customers with a card and charges over them, made on the server's loop (events included)."""

    def make() -> tuple[list[str], list[str]]:
        pm = ls_server.ls.PaymentMethod._api_create(type="card", card=dict(ls_server.CARD))
        ids = []
        for i in range(customers):
            cus = ls_server.ls.Customer._api_create(
                name=f"Customer {i}", email=f"c{i}@example.com", payment_method=pm.id, invoice_settings={"default_payment_method": pm.id}
            )
            ids.append(cus.id)
        charge_ids = [
            ls_server.ls.Charge._api_create(amount=100 + i, currency="usd", customer=ids[i % customers]).id for i in range(charges)
        ]
        return ids, charge_ids

    return server.call(make)


def run_jdi(nb: Path, env: dict[str, str], server: LocalStripe) -> dict[str, Any]:
    before, busy = server.count, server.busy
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jupyter_di.cli", "run", str(nb)], capture_output=True, text=True, env=env, cwd=nb.parent)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    rows = 0
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "stripe" and parts[1] == "source" and parts[2] in ("customers", "charges"):
            rows += int(parts[3].replace(",", ""))
    return {"seconds": seconds, "requests": server.count - before, "objects": rows, "distinct": rows, "server": server.busy - busy}


def tap_executable() -> Path | None:
    python = TAP_VENV / "bin" / "python"
    if (TAP_VENV / ".complete").exists():
        return python
    try:
        venv.create(TAP_VENV, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", TAP], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"tap-stripe could not be installed ({exc}); skipped", file=sys.stderr)
        return None
    (TAP_VENV / ".complete").write_text("ok")
    return python


def run_tap(
    python: Path, work: Path, server: LocalStripe, start_date: str, state: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    config = work / "tap_config.json"
    config.write_text(
        json.dumps({"client_secret": server.api_key, "account_id": "acct_local", "start_date": start_date, "lookback_window": 0})
    )
    shim = work / "tap_shim.py"
    shim.write_text(SHIM)
    catalog_file = work / "tap_catalog.json"
    if not catalog_file.exists():
        found = subprocess.run(
            [str(python), str(shim), server.base_url, "--config", str(config), "--discover"], capture_output=True, text=True
        )
        if found.returncode != 0:
            raise RuntimeError(found.stderr[-2000:])
        catalog = json.loads(found.stdout)
        for entry in catalog["streams"]:
            chosen = entry["tap_stream_id"] in ("customers", "charges")
            for item in entry["metadata"]:
                if item["breadcrumb"] == []:
                    item["metadata"]["selected"] = chosen
        catalog_file.write_text(json.dumps(catalog))
    args = [str(python), str(shim), server.base_url, "--config", str(config), "--catalog", str(catalog_file)]
    if state:
        (work / "tap_state.json").write_text(json.dumps(state))
        args += ["--state", str(work / "tap_state.json")]
    before, busy = server.count, server.busy
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    records, last_state = 0, state or {}
    ids: set[tuple[str, str]] = set()
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("type") == "RECORD":
            records += 1
            ids.add((message["stream"], message["record"].get("id")))
        elif message.get("type") == "STATE":
            last_state = message["value"]
    return {
        "seconds": seconds,
        "requests": server.count - before,
        "objects": records,
        "distinct": len(ids),
        "server": server.busy - busy,
    }, last_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--charges", type=int, default=10000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--no-tap", action="store_true")
    args = parser.parse_args()
    compile_package()
    results: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    server = LocalStripe()
    with server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        customers, charges = bulk_seed(server, args.customers, args.charges)
        start_date = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 86_400))
        print(f"seeded {len(customers):,} customers and {len(charges):,} charges in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        time.sleep(2.1)  # the syncs start in a later second than the data's creation events
        nb = work / "bench.ipynb"
        notebook(nb)
        env = {**os.environ, "STRIPE_BASE_URL": server.base_url, "STRIPE_API_KEY": server.api_key}
        results["jupyter-di first sync"] = run_jdi(nb, env, server)

        python = None if args.no_tap else tap_executable()
        tap_state: dict[str, Any] = {}
        if python is not None:
            try:
                results["tap-stripe first sync"], tap_state = run_tap(python, work, server, start_date, None)
            except RuntimeError as exc:
                notes.append(f"tap-stripe failed against the local server: {str(exc).strip().splitlines()[-1]}")
                python = None
        elif not args.no_tap:
            notes.append("tap-stripe: not installed (see stderr)")

        time.sleep(1.1)  # changes land in a later second than the syncs' cursors
        client = server.client()
        n_customers, n_charges = max(1, int(len(customers) * args.changed)), max(1, int(len(charges) * args.changed))
        for i, cid in enumerate(customers[:: max(1, len(customers) // n_customers)][:n_customers]):
            client.v1.customers.update(cid, params={"name": f"Renamed {i}"})
        for cid in charges[:: max(1, len(charges) // n_charges)][:n_charges]:
            client.v1.charges.update(cid, params={"description": "edited"})
        changed = n_customers + n_charges

        results["jupyter-di incremental"] = run_jdi(nb, env, server)
        results["jupyter-di unchanged"] = run_jdi(nb, env, server)
        if python is not None:
            results["tap-stripe incremental"], tap_state = run_tap(python, work, server, start_date, tap_state)
        with duckdb.connect(str(work / "wh.duckdb"), read_only=True) as con:
            renamed = con.execute("SELECT count(*) FROM customers WHERE name LIKE 'Renamed %'").fetchone()[0]
            edited = con.execute("SELECT count(*) FROM charges WHERE description = 'edited'").fetchone()[0]
            total = con.execute("SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM charges)").fetchone()[0]
        notes.append(
            f"after the incremental run the DuckDB file holds {total:,} objects, {renamed} renamed customers, {edited} edited charges"
        )

    print(f"\nStripe source, {args.customers:,} customers + {args.charges:,} charges, {changed:,} objects changed ({args.changed:.0%})\n")
    print(f"{'run':<26} {'seconds':>8} {'server s':>9} {'objects':>9} {'distinct':>9} {'objects/s':>10} {'HTTP requests':>14}")
    for name, r in results.items():
        rate = r["distinct"] / r["seconds"] if r["seconds"] else 0
        print(
            f"{name:<26} {r['seconds']:>8.2f} {r['server']:>9.2f} {r['objects']:>9,} {r['distinct']:>9,} {rate:>10,.0f} {r['requests']:>14,}"
        )
    print(
        "(seconds: the whole process; server s: of which localstripe spent answering; objects: rows or RECORD messages sent; "
        "distinct: different ids among them; objects/s counts distinct ones over the whole process)"
    )
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
