"""The spec's six-step example (notebooks/spec_example.ipynb), run headless twice.

Real parts: a seeded PostgreSQL database, localstripe (a stateful fake Stripe server from the
registry, extended in tests/support/localstripe_server.py) holding customers and charges made with
Stripe's official client, the ``jupyter-di run`` CLI in a subprocess and the Salesforce stand-in
(tests/support/salesforce_server.py) it exports to, read back record by record.
The second run follows an insert and an update in PostgreSQL and must read only the changed orders
(plus the row at the inclusive bookmark) and leave the report right.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import stripe

from tests.support.localstripe_server import CARD, LocalStripe
from tests.support.notebooks import cli_process, rows_read
from tests.support.salesforce_server import SalesforceServer

ROOT = Path(__file__).resolve().parents[1]
UTC = dt.timezone.utc
DECLINED = {**CARD, "number": "4000000000000341"}  # Stripe's test card that attaches, then declines charges
CUSTOMERS = [
    ("Ada Lovelace", "Ada@Example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Alan Turing", "ALAN@example.com"),
    ("Edsger Dijkstra", "edsger@example.com"),
    ("Barbara Liskov", "barbara@example.com"),
    ("Ken Thompson", "ken@example.com"),
]
CHARGES = [(0, 1990), (0, 725), (1, 500), (2, 12000), (2, 300), (3, 4200), (5, 999), (5, 1500), (1, 250)]
"""(customer index, amount in cents); customer 5's card declines, so its charges are not paid"""

# (id, customer index, status, total, updated_at): messy statuses, one order without a customer
ORDERS = [
    (1, 0, "  Paid ", "19.90", "2024-03-01T10:00:00Z"),
    (2, 1, "PENDING", "5.00", "2024-03-01T11:00:00Z"),
    (3, 2, "paid", "120.00", "2024-03-02T09:30:00Z"),
    (4, None, "paid", "1.00", "2024-03-02T10:00:00Z"),
    (5, 0, "Refunded", "7.25", "2024-03-03T08:00:00Z"),
    (6, 5, "paid", "42.00", "2024-03-04T12:00:00Z"),
]


def seed_shop(client: Any) -> list[str]:
    """The shop's Stripe customers and charges; the customers' ids, in CUSTOMERS order."""
    ids = []
    for i, (name, email) in enumerate(CUSTOMERS):
        pm = client.v1.payment_methods.create(params={"type": "card", "card": DECLINED if i == 5 else CARD})
        cus = client.v1.customers.create(
            params={"name": name, "email": email, "payment_method": pm.id, "invoice_settings": {"default_payment_method": pm.id}}
        )
        ids.append(cus.id)
    for index, amount in CHARGES:
        try:
            client.v1.charges.create(params={"amount": amount, "currency": "usd", "customer": ids[index]})
        except stripe.CardError:
            pass  # declined: Stripe keeps the failed charge
    return ids


def orders_with_ids(orders: list[tuple], ids: list[str]) -> list[tuple]:
    return [(oid, None if i is None else ids[i], status, total, updated) for oid, i, status, total, updated in orders]


def expected_report(orders: list[tuple], ids: list[str]) -> list[tuple]:
    """orders (with customer indexes) as the report should show them."""
    rows = []
    for oid, index, status, total, updated in sorted(orders):
        if index is None:
            continue  # cleaned out: cannot be merged with Stripe
        name, email = CUSTOMERS[index]
        paid = [amount for i, amount in CHARGES if i == index and index != 5]
        when = dt.datetime.fromisoformat(updated.replace("Z", "+00:00"))
        rows.append(
            (oid, ids[index], name, email.lower(), status.strip().lower(), decimal.Decimal(total), when, len(paid), sum(paid) / 100)
        )
    return rows


def report_rows(crm: SalesforceServer) -> list[tuple]:
    """The Order_Report__c records in Salesforce (the stand-in), as report rows."""
    out = []
    for r in sorted(crm.rows("Order_Report__c"), key=lambda r: r["Order_Id__c"]):
        when = dt.datetime.strptime(r["Updated_At__c"], "%Y-%m-%dT%H:%M:%S.%f%z")
        total = decimal.Decimal(str(r["Total__c"]))
        out.append(
            (
                int(r["Order_Id__c"]),
                r["Customer_Id__c"],
                r["Customer_Name__c"],
                r["Customer_Email__c"],
                r["Status__c"],
                total,
                when,
                int(r["Paid_Charges__c"]),
                round(r["Paid_Amount__c"], 2),
            )
        )
    return out


def shop_env(pg_config: dict, api: LocalStripe, crm: SalesforceServer, **overrides: str) -> dict[str, str]:
    """The environment the notebook's templates read (``env_var('SHOP_...')``), nothing from ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_DI_", "SHOP_"))}
    env.update(
        SHOP_PG_HOST=pg_config["host"],
        SHOP_PG_PORT=str(pg_config["port"]),
        SHOP_PG_DATABASE=pg_config["database"],
        SHOP_PG_USER=pg_config["username"],
        SHOP_PG_PASSWORD=pg_config["password"],
        SHOP_STRIPE_BASE_URL=api.base_url,
        SHOP_STRIPE_API_KEY=api.api_key,
        SHOP_SF_LOGIN_URL=crm.url,
        SHOP_SF_CA_BUNDLE=crm.ca_path,
        SHOP_SF_CLIENT_ID="3MVG9-client",
        SHOP_SF_CLIENT_SECRET="client-secret-xyz",
        SHOP_SF_USERNAME="etl@example.com",
        SHOP_SF_PASSWORD="s3cret-Pa55",
        SHOP_SF_SECURITY_TOKEN="TOKEN123",
    )
    env.update(overrides)
    return env


@pytest.fixture
def api():
    with LocalStripe() as server:
        server.customer_ids = seed_shop(server.client())
        yield server


@pytest.fixture
def crm():
    with SalesforceServer() as server:
        yield server


@pytest.fixture
def notebook(tmp_path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "spec_example.ipynb", folder / "spec_example.ipynb")
    return folder / "spec_example.ipynb"


def test_spec_example_runs_headless_then_incrementally(notebook, api, crm, pg_config, pg_connect):
    with pg_connect() as conn:
        conn.execute(
            "CREATE TABLE orders (id integer PRIMARY KEY, customer_id text, status text, total numeric(10,2), updated_at timestamptz NOT NULL)"
        )
        for row in orders_with_ids(ORDERS, api.customer_ids):
            conn.execute("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", row)
    env = shop_env(pg_config, api, crm)

    first = cli_process("run", str(notebook), env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert rows_read(first.stdout, "shop_db", "orders") == 6
    assert rows_read(first.stdout, "stripe", "customers") == len(CUSTOMERS)
    assert rows_read(first.stdout, "stripe", "charges") == len(CHARGES)
    assert report_rows(crm) == expected_report(ORDERS, api.customer_ids)
    assert "order_report" in first.stdout and "Paid_Amount__c" in first.stdout  # the check cell ran in place
    assert crm.count("PATCH", "/composite/sobjects/Order_Report__c/Order_Id__c") == 1  # 5 orders: one collections request
    charges_requests = [(q, h) for _, _, q, h in api.gets("/v1/charges")]
    assert charges_requests and all(q == {"limit": "100"} and h["Authorization"] == f"Bearer {api.api_key}" for q, h in charges_requests)
    state = json.loads(cli_process("state", "show", str(notebook), env=env).stdout)
    assert state == {"bookmarks": {"shop_db.orders": {"updated_at": "2024-03-04T12:00:00+00:00"}}}

    # the shop changes: order 2 is paid, a new order comes in
    changed = list(ORDERS)
    changed[1] = (2, 1, "Paid", "5.00", "2024-03-05T09:00:00Z")
    changed.append((7, 2, " pending", "64.50", "2024-03-05T10:00:00Z"))
    with pg_connect() as conn:
        conn.execute("UPDATE orders SET status = %s, updated_at = %s WHERE id = 2", (changed[1][2], changed[1][4]))
        conn.execute("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", orders_with_ids(changed, api.customer_ids)[-1])

    second = cli_process("run", str(notebook), env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    # only the changes, plus order 6 at the inclusive bookmark
    assert rows_read(second.stdout, "shop_db", "orders") == 3
    assert report_rows(crm) == expected_report(changed, api.customer_ids)
    assert len(crm.rows("Order_Report__c")) == 6  # order 2 updated, order 7 added, none duplicated
    state = json.loads(cli_process("state", "show", str(notebook), env=env).stdout)
    assert state["bookmarks"]["shop_db.orders"] == {"updated_at": "2024-03-05T10:00:00+00:00"}

    # nothing changed: the bookmark row only, and the report stays the same
    third = cli_process("run", "-q", str(notebook), env=env)
    assert third.returncode == 0, third.stderr
    assert rows_read(third.stdout, "shop_db", "orders") == 1
    assert report_rows(crm) == expected_report(changed, api.customer_ids)


def test_spec_example_wrong_api_key_fails_with_one_line_and_no_secret(notebook, api, crm, pg_config):
    env = shop_env(pg_config, api, crm, SHOP_STRIPE_API_KEY="sk_test_wrong_key_123")
    del env["SHOP_PG_PASSWORD"]
    run = cli_process("run", str(notebook), env=env)
    assert run.returncode == 1
    output = run.stdout + run.stderr
    assert "block 'stripe', stream 'customers': credentials rejected" in output and "Fix: check api_key (a secret key sk_" in output
    assert "wrong_key_123" not in output
    assert "'reporting' (upstream 'stripe' failed)" in output
    assert crm.rows("Order_Report__c") == [] and crm.count("POST", "/services/oauth2/token") == 0  # nothing exported
