"""localstripe (a stateful fake Stripe server from the registry), extended where it lacks what the
real Stripe API has, served on 127.0.0.1 for the Stripe source's tests and benchmark.

    with LocalStripe() as server:                 # in a thread of this process
        client = server.client()                  # Stripe's official `stripe` client, pointed at it
        client.v1.customers.create(params={"name": "Ada"})
        server.base_url, server.api_key

    python -m tests.support.localstripe_server    # a process of its own; prints base_url and api_key

localstripe's own command line binds every interface; this builds its aiohttp app and binds
127.0.0.1 only.  What is extended here, each as the Stripe API reference documents it (the
connector is never bent to localstripe's gaps):

* **Lists** (``GET /v1/<objects>``): newest first (localstripe returns insertion order), ``limit``
  1-100, ``starting_after`` / ``ending_before`` paging with ``has_more``, ``created`` as a number or
  ``created[gt|gte|lt|lte]`` on every list (localstripe: charges ``gt`` only, and events), ``expand[]``
  with ``data.`` paths, ``customer`` where the object has one; subscriptions leave out canceled ones
  unless ``status=all`` or ``status=canceled``; unknown parameters are a 400.
* **Events**: ``type`` with ``*`` wildcards (``customer.*``), ``types[]`` (up to 20 exact names), and
  the events localstripe does not emit: ``charge.succeeded`` / ``charge.failed`` (however the charge was made) / ``charge.updated`` / ``charge.refunded``,
  ``product.updated`` / ``product.deleted``, ``plan.updated`` / ``plan.deleted``, ``price.*``,
  ``coupon.*``, ``invoiceitem.*``, ``invoice.updated`` / ``invoice.deleted``,
  ``customer.subscription.updated``, ``payment_intent.created`` / ``payment_intent.updated``,
  ``refund.created`` / ``refund.updated``, ``charge.dispute.*``.  A ``*.deleted`` event carries the
  object as it was.
* **Objects localstripe lacks**: the account (``/v1/account``, ``/v1/accounts/<id>``), prices (``/v1/prices``: create, retrieve, update, list; Stripe has no
  price deletion), disputes (``/v1/disputes``: retrieve, update, list; Stripe opens them from the card
  network, so tests open one with ``POST /_config/disputes`` {charge, amount, reason}).
* **Auth**: only this server's key is accepted (localstripe takes any ``sk_`` key); a wrong one is a
  401 with Stripe's error body.
* **Throttling and failures on demand**: ``throttle(n, retry_after)`` answers the next ``n`` GETs
  with 429 and ``Retry-After``, ``fail(n, status)`` with a 5xx, as Stripe does under load.
* **A request log** (method, path, query, the headers the tests look at) and a request counter.
* The store is kept in memory only (localstripe pickles the whole store to /tmp on every write:
  quadratic, and shared between processes).
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import itertools
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import localstripe.resources as ls
import localstripe.server as ls_server
import localstripe.webhooks
from aiohttp import web
from localstripe.errors import UserError

ls.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]  # memory only (see above)
ls.Store.try_load_from_disk = lambda self: None  # type: ignore[method-assign]
_schedule_webhook = ls.schedule_webhook


def _webhook_if_registered(event: Any) -> None:
    """localstripe schedules a delivery task (sleeping a second) for every event, webhooks or not."""
    if localstripe.webhooks._webhooks:
        _schedule_webhook(event)


ls.schedule_webhook = _webhook_if_registered

_seq = itertools.count()
"""Creation order of objects, the tie-break of lists within one second (newest first)."""


def _stamp(obj: Any) -> None:
    obj._seq = next(_seq)


# -------------------------------------------------------------------------------------- objects localstripe lacks


class Price(ls.StripeObject):
    """A price (Stripe's successor of plans)."""

    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        currency: str | None = None,
        unit_amount: Any = None,
        product: str | None = None,
        recurring: dict[str, Any] | None = None,
        nickname: str | None = None,
        active: Any = True,
        metadata: dict[str, Any] | None = None,
        lookup_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        unit_amount = ls.try_convert_to_int(unit_amount)
        if not isinstance(currency, str) or not isinstance(unit_amount, int) or not isinstance(product, str):
            raise UserError(400, "Missing required param: currency, unit_amount or product.")
        ls.Product._api_retrieve(product)  # 404 when unknown
        super().__init__()
        self.active = ls.try_convert_to_bool(active)
        self.billing_scheme = "per_unit"
        self.currency = currency
        self.lookup_key = lookup_key
        self.metadata = metadata or {}
        self.nickname = nickname
        self.product = product
        if recurring:
            recurring = {
                "interval": recurring.get("interval"),
                "interval_count": int(recurring.get("interval_count", 1)),
                "usage_type": "licensed",
            }
        self.recurring = recurring
        self.tax_behavior = "unspecified"
        self.type = "recurring" if recurring else "one_time"
        self.unit_amount = unit_amount
        self.unit_amount_decimal = str(unit_amount)

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Prices cannot be deleted; set active=false.")


class Dispute(ls.StripeObject):
    """A dispute on a charge (opened by the card network at Stripe; here by ``/_config/disputes``)."""

    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: str | None = None, amount: Any = None, reason: str = "general", metadata: Any = None, **kwargs: Any):
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        charge_obj = ls.Charge._api_retrieve(charge)
        super().__init__()
        self.amount = ls.try_convert_to_int(amount) if amount is not None else charge_obj.amount
        self.balance_transactions: list[Any] = []
        self.charge = charge
        self.currency = charge_obj.currency
        self.evidence = {"customer_name": None, "uncategorized_text": None}
        self.is_charge_refundable = False
        self.metadata = metadata or {}
        self.payment_intent = charge_obj.payment_intent
        self.reason = reason
        self.status = "needs_response"

    @classmethod
    def _api_create(cls, **data: Any) -> Any:
        raise UserError(405, "Disputes are opened by the card network.")

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Disputes cannot be deleted.")


# -------------------------------------------------------------------------------------- events localstripe does not emit


def _event(kind: str, obj: Any) -> None:
    ls.Event(kind, obj)  # stored (and stamped) by its constructor


def _emit_on(cls: Any, *, create: str | None = None, update: str | None = None, delete: str | None = None) -> None:
    """Wrap a class's create/update/delete so they emit the events Stripe documents for them."""
    if create:
        original_create = cls._api_create.__func__

        def api_create(klass: Any, **data: Any) -> Any:
            obj = original_create(klass, **data)
            _event(create, obj)
            return obj

        cls._api_create = classmethod(api_create)
    if update:
        original_update = cls._api_update.__func__

        def api_update(klass: Any, id: str, **data: Any) -> Any:
            obj = original_update(klass, id, **data)
            _event(update, obj)
            return obj

        cls._api_update = classmethod(api_update)
    if delete:
        original_delete = cls._api_delete.__func__

        def api_delete(klass: Any, id: str) -> Any:
            obj = klass._api_retrieve(id)
            _event(delete, obj)  # a *.deleted event carries the object as it was
            return original_delete(klass, id)

        cls._api_delete = classmethod(api_delete)


_emit_on(ls.Charge, update="charge.updated")
_initialize_charge = ls.Charge._initialize_charge


def _charge_outcome(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``charge.succeeded`` or ``charge.failed`` for every charge, however it was made (directly, by a
    payment intent, by an invoice)."""
    try:
        return _initialize_charge(self, *args, **kwargs)
    finally:
        _event("charge.succeeded" if self.status == "succeeded" else "charge.failed", self)


ls.Charge._initialize_charge = _charge_outcome  # type: ignore[method-assign]
_emit_on(ls.Product, update="product.updated", delete="product.deleted")
_emit_on(ls.Plan, update="plan.updated", delete="plan.deleted")
_emit_on(Price, create="price.created", update="price.updated")
_emit_on(ls.Coupon, create="coupon.created", update="coupon.updated", delete="coupon.deleted")
_emit_on(ls.InvoiceItem, create="invoiceitem.created", update="invoiceitem.updated", delete="invoiceitem.deleted")
_emit_on(ls.Invoice, update="invoice.updated", delete="invoice.deleted")
_emit_on(ls.Subscription, update="customer.subscription.updated")
_emit_on(ls.PaymentIntent, create="payment_intent.created", update="payment_intent.updated")
_emit_on(Dispute, update="charge.dispute.updated")


def _refund_created(original: Any) -> Any:
    def api_create(klass: Any, **data: Any) -> Any:
        refund = original(klass, **data)
        _event("refund.created", refund)
        _event("charge.refunded", ls.Charge._api_retrieve(refund.charge))  # the charge's amount_refunded changed
        return refund

    return classmethod(api_create)


ls.Refund._api_create = _refund_created(ls.Refund._api_create.__func__)
_emit_on(ls.Refund, update="refund.updated")

_original_init = ls.StripeObject.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    _stamp(self)


ls.StripeObject.__init__ = _init  # type: ignore[method-assign]

_by_kind: dict[str, dict[str, Any]] = {}
"""The store's objects by kind ("customer": {key: object}): localstripe scans the whole store for
every list, and a customer's or charge's export lists its subscriptions or refunds, so a page of 100
charges scanned the store 100 times (minutes for the benchmark's 15,000 objects)."""


def _setitem(self: Any, key: str, value: Any) -> None:
    dict.__setitem__(self, key, value)
    _by_kind.setdefault(key.partition(":")[0], {})[key] = value


def _delitem(self: Any, key: str) -> None:
    dict.__delitem__(self, key)
    _by_kind.get(key.partition(":")[0], {}).pop(key, None)


def _clear(self: Any) -> None:
    dict.clear(self)
    _by_kind.clear()


def _objects(kind: str) -> list[Any]:
    return list(_by_kind.get(kind, {}).values())


def _base_list_all(cls: Any, url: Any, limit: Any = None, starting_after: Any = None, **kwargs: Any) -> Any:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    li = ls.List(url, limit=limit, starting_after=starting_after)
    li._list = _objects(cls.object)
    return li


ls.Store.__setitem__ = _setitem  # type: ignore[assignment]
ls.Store.__delitem__ = _delitem  # type: ignore[assignment]
ls.Store.clear = _clear  # type: ignore[assignment]
ls.StripeObject._api_list_all = classmethod(_base_list_all)  # type: ignore[assignment]


# -------------------------------------------------------------------------------------- lists as Stripe pages them

LISTS: dict[str, Any] = {
    "customers": ls.Customer,
    "charges": ls.Charge,
    "invoices": ls.Invoice,
    "invoiceitems": ls.InvoiceItem,
    "products": ls.Product,
    "prices": Price,
    "plans": ls.Plan,
    "subscriptions": ls.Subscription,
    "payment_intents": ls.PaymentIntent,
    "refunds": ls.Refund,
    "balance_transactions": ls.BalanceTransaction,
    "payouts": ls.Payout,
    "disputes": Dispute,
    "coupons": ls.Coupon,
    "events": ls.Event,
}
COMMON_PARAMS = {"limit", "starting_after", "ending_before", "created", "expand"}
EXTRA_PARAMS = {"events": {"type", "types", "delivery_success"}, "subscriptions": {"status", "customer"}}


def _error(status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status, headers=headers)


def _created_filter(raw: Any) -> list[Any]:
    if raw is None:
        return []
    bounds = raw if isinstance(raw, dict) else {"eq": raw}
    tests = []
    for op, value in bounds.items():
        number = ls.try_convert_to_int(value)
        if op not in ("gt", "gte", "lt", "lte", "eq") or not isinstance(number, int):
            raise UserError(400, f"Invalid created[{op}]: must be an integer Unix timestamp.")
        tests.append(
            {
                "gt": lambda c, n=number: c > n,
                "gte": lambda c, n=number: c >= n,
                "lt": lambda c, n=number: c < n,
                "lte": lambda c, n=number: c <= n,
                "eq": lambda c, n=number: c == n,
            }[op]
        )
    return tests


def list_objects(resource: str, query: dict[str, Any]) -> dict[str, Any]:
    """One page of a list, as Stripe pages it (see the module docstring)."""
    cls = LISTS[resource]
    unknown = (
        set(query)
        - COMMON_PARAMS
        - EXTRA_PARAMS.get(resource, set())
        - ({"customer"} if hasattr(cls, "customer") or resource in ("charges", "invoices", "invoiceitems", "payment_intents") else set())
    )
    if unknown:
        raise UserError(400, f"Received unknown parameter: {sorted(unknown)[0]}")
    limit = ls.try_convert_to_int(query.get("limit", 10))
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise UserError(400, "Invalid limit: must be an integer between 1 and 100.")
    tests = _created_filter(query.get("created"))
    items = _objects(cls.object)
    items = [o for o in items if all(t(o.created) for t in tests)]
    if "customer" in query:
        items = [o for o in items if getattr(o, "customer", None) == query["customer"]]
    if resource == "subscriptions":
        status = query.get("status")
        if status is None:
            items = [o for o in items if o.status != "canceled"]
        elif status != "all":
            items = [o for o in items if o.status == status]
    if resource == "events":
        if "type" in query and "types" in query:
            raise UserError(400, "You may only specify one of these parameters: type, types.")
        if "type" in query:
            pattern = str(query["type"])
            items = [o for o in items if fnmatch.fnmatchcase(o.type, pattern)]
        if "types" in query:
            names = query["types"] if isinstance(query["types"], list) else [query["types"]]
            if len(names) > 20:
                raise UserError(400, "types: at most 20 event types.")
            items = [o for o in items if o.type in names]
    items.sort(key=lambda o: (o.created, getattr(o, "_seq", 0)), reverse=True)
    start, end = 0, len(items)
    if query.get("starting_after"):
        ids = [o.id for o in items]
        if query["starting_after"] not in ids:
            raise UserError(400, f"No such object: {query['starting_after']}")  # Stripe: the cursor must exist
        start = ids.index(query["starting_after"]) + 1
        page = items[start : start + limit]
        more = start + limit < end
    elif query.get("ending_before"):
        ids = [o.id for o in items]
        if query["ending_before"] not in ids:
            raise UserError(400, f"No such object: {query['ending_before']}")
        end = ids.index(query["ending_before"])
        page = items[max(0, end - limit) : end]
        more = end - limit > 0
    else:
        page = items[:limit]
        more = limit < len(items)
    expand = query.get("expand") or []
    expand = [p[len("data.") :] for p in (expand if isinstance(expand, list) else [expand]) if p.startswith("data.")]
    return {"object": "list", "url": "/v1/" + resource, "has_more": more, "data": [o._export(expand=expand) for o in page]}


# -------------------------------------------------------------------------------------- the server


@dataclass
class LocalStripe:
    """The extended localstripe app on 127.0.0.1 (a free port unless given), in a daemon thread."""

    port: int = 0
    api_key: str = field(default_factory=lambda: "sk_test_" + secrets.token_hex(12))
    requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    """(method, path, query, {header: value} for Stripe-Account and Authorization) of every request."""
    count: int = 0
    busy: float = 0.0
    """Seconds the server spent answering (what a benchmark subtracts to see the client's own time)."""
    _faults: list[tuple[int, float | None]] = field(default_factory=list)

    # ---- test controls
    def throttle(self, times: int = 1, retry_after: float = 1.0) -> None:
        """The next ``times`` GETs answer 429 with ``Retry-After: retry_after``."""
        self._faults.extend([(429, retry_after)] * times)

    def fail(self, times: int = 1, status: int = 500) -> None:
        """The next ``times`` GETs answer ``status`` (a 5xx)."""
        self._faults.extend([(status, None)] * times)

    def reset_log(self) -> None:
        self.requests.clear()
        self.count = 0

    def gets(self, path: str | None = None) -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
        return [r for r in self.requests if r[0] == "GET" and (path is None or r[1] == path)]

    def open_dispute(self, charge: str, amount: int | None = None, reason: str = "fraudulent") -> dict[str, Any]:
        return self.call(lambda: self._open_dispute(charge, amount, reason))

    def backdate(self, object_id: str, seconds: int) -> None:
        """Move an object's ``created`` (and its events') back in time, as if made ``seconds`` ago."""

        def move() -> None:
            for obj in ls.store.values():
                if getattr(obj, "id", None) == object_id:
                    obj.created -= seconds
                if isinstance(obj, ls.Event) and obj.data.get("object", {}).get("id") == object_id:
                    obj.created -= seconds
                    obj.data["object"]["created"] = obj.data["object"].get("created", 0) - seconds

        self.call(move)

    def clear(self) -> None:
        self.call(ls.store.clear)

    def call(self, fn: Any) -> Any:
        """Run ``fn`` on the server's loop (the store is the loop's) and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    @staticmethod
    def _open_dispute(charge: str, amount: int | None, reason: str) -> dict[str, Any]:
        dispute = Dispute(charge=charge, amount=amount, reason=reason)
        _event("charge.dispute.created", dispute)
        return dispute._export()

    # ---- the official client, pointed here
    def client(self) -> Any:
        import stripe

        return stripe.StripeClient(self.api_key, base_addresses={"api": self.base_url}, max_network_retries=0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- life cycle
    def _app(self) -> web.Application:
        @web.middleware
        async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                return await handler(request)
            finally:
                self.busy += time.perf_counter() - started

        @web.middleware
        async def extend(request: web.Request, handler: Any) -> web.StreamResponse:
            self.count += 1
            headers = {k: v for k, v in request.headers.items() if k in ("Stripe-Account", "Authorization")}
            query = ls_server.unflatten_data(request.query) if request.query else {}
            self.requests.append((request.method, request.path, query, headers))
            if request.path.startswith("/v1/") and not self._authorized(request):
                return _error(401, "Invalid API Key provided.")
            if request.method == "GET" and request.path.startswith("/v1/") and self._faults:
                status, retry_after = self._faults.pop(0)
                if status == 429:
                    return _error(429, "Too many requests hit the API too quickly.", "rate_limit_error", {"Retry-After": str(retry_after)})
                return _error(status, "An error occurred with our connection to Stripe.", "api_error")
            try:
                if request.method == "GET" and request.path.startswith("/v1/") and request.path[4:] in LISTS:
                    return web.json_response(list_objects(request.path[4:], query))
                if request.method == "POST" and request.path == "/_config/disputes":
                    data = await ls_server.get_post_data(request) or {}
                    return web.json_response(self._open_dispute(data.get("charge"), data.get("amount"), data.get("reason", "fraudulent")))
                return await handler(request)
            except UserError as exc:
                return exc.to_response()

        app = web.Application(middlewares=[timed, extend, ls_server.error_middleware, ls_server.save_store_middleware])
        for cls in (Price, Dispute):
            plural = "/v1/" + cls.object + "s"
            app.router.add_route("POST", plural, ls_server.api_create(cls, plural))
            app.router.add_route("GET", plural + "/{id}", ls_server.api_retrieve(cls, plural))
            app.router.add_route("POST", plural + "/{id}", ls_server.api_update(cls, plural))

        async def account(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "id": request.match_info.get("id", "acct_localstripe"),
                    "object": "account",
                    "country": "US",
                    "default_currency": "usd",
                    "settings": {"dashboard": {"display_name": "localstripe", "timezone": "Etc/UTC"}},
                }
            )

        app.router.add_get("/v1/account", account)
        app.router.add_get("/v1/accounts/{id}", account)
        for resource in ls_server.app.router.resources():  # localstripe's own routes
            for route in resource:
                app.router.add_route(route.method, resource.canonical, route.handler)
        return app

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            value = base64.b64decode(value.encode()).decode("utf-8", "replace").split(":")[0]
        elif scheme != "Bearer":
            return False
        return secrets.compare_digest(value, self.api_key)

    def __enter__(self) -> LocalStripe:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def start() -> None:
            self._runner = web.AppRunner(self._app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="localstripe", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("localstripe did not start")
        self.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


def main() -> None:
    """Serve until stopped; print the base URL and the key (shell ``export`` lines)."""
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    with LocalStripe(port=port) as server:
        print(f"export STRIPE_BASE_URL={server.base_url}\nexport STRIPE_API_KEY={server.api_key}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()


# -------------------------------------------------------------------------------------- test data, through the official client

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def seed(client: Any, customers: int, charges: int, *, extras: bool = True) -> dict[str, list[str]]:
    """Customers (each with a card) and charges spread over them, made with Stripe's own client; with
    ``extras`` one or more of every other object the source reads.  Returns the ids made, by stream."""
    made: dict[str, list[str]] = {"customers": [], "charges": []}
    pm = client.v1.payment_methods.create(params={"type": "card", "card": CARD})
    for i in range(customers):
        cus = client.v1.customers.create(
            params={
                "name": f"Customer {i}",
                "email": f"c{i}@example.com",
                "payment_method": pm.id,
                "invoice_settings": {"default_payment_method": pm.id},
            }
        )
        made["customers"].append(cus.id)
    for i in range(charges):
        customer = made["customers"][i % len(made["customers"])]
        made["charges"].append(client.v1.charges.create(params={"amount": 100 + i, "currency": "usd", "customer": customer}).id)
    if extras:
        first = made["customers"][0]
        product = client.v1.products.create(params={"name": "Widget"})
        made["products"] = [product.id]
        made["prices"] = [client.v1.prices.create(params={"currency": "usd", "unit_amount": 500, "product": product.id}).id]
        made["plans"] = [
            client.v1.plans.create(params={"id": "gold", "amount": 999, "currency": "usd", "interval": "month", "product": product.id}).id
        ]
        made["coupons"] = [client.v1.coupons.create(params={"id": f"OFF{i}", "percent_off": 10, "duration": "once"}).id for i in range(3)]
        made["invoice_items"] = [client.v1.invoice_items.create(params={"customer": first, "amount": 300, "currency": "usd"}).id]
        made["subscriptions"] = [client.v1.subscriptions.create(params={"customer": first, "items": [{"plan": "gold"}]}).id]
        made["refunds"] = [client.v1.refunds.create(params={"charge": made["charges"][0], "amount": 10}).id]
        made["payouts"] = [client.v1.payouts.create(params={"amount": 100, "currency": "eur"}).id]
    return made
