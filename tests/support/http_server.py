"""A small Stripe-like HTTP JSON API, served from a thread on 127.0.0.1, for tests and examples.

Why: the http_api connector must be tested against a real HTTP server with
real paging, auth failures and transient errors, without the internet.  The
dataset is small but realistic (ids, epoch ``created``/``updated``, amounts in
cents, currencies, nested ``metadata`` objects and lists), so an example
notebook can use it as a stand-in for Stripe.

Endpoints: ``/v1/customers`` and ``/v1/charges``.  Paging style is chosen by
the ``paging`` query parameter:

* (absent) or ``stripe``: ``limit`` + ``starting_after`` -> ``{"object": "list", "data", "has_more"}``
* ``none``: everything -> ``{"data": [...]}``
* ``page``: ``page`` (1-based) + ``per_page`` -> ``{"data", "page", "total_pages"}``
* ``offset``: ``offset`` + ``limit`` -> ``{"data", "offset", "total"}``
* ``cursor``: ``cursor`` + ``limit`` -> ``{"data", "meta": {"next_cursor"}}`` (opaque cursor)
* ``link``: ``page`` + ``per_page`` -> a bare JSON list, next page in the ``Link`` header

Incremental filters (inclusive): ``updated_since`` (on ``updated``) and
``created[gte]`` (on ``created``).  Records come in id order, which is not
the ``updated`` order.  ``/v1/html`` answers with an HTML page.

Auth: ``Authorization: Bearer <token>`` when the server has a token.
``fail_next(n, status)`` makes the next ``n`` API requests fail (503, 429...).
Every request is logged in ``requests`` as ``(path, query dict, headers dict)``.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

BASE_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z
NAMES = ["Ada Lovelace", "Zoë Ångström", "李雷", 'O\'Brien, "Pat"', "Grace Hopper", "José Núñez"]
PLANS = ["free", "pro", "enterprise"]


def make_customers(n: int = 23) -> list[dict[str, Any]]:
    return [
        {
            "id": f"cus_{i:04d}",
            "object": "customer",
            "created": BASE_TIME + i * 3600,
            "updated": BASE_TIME + (i * 7 % 10) * 86_400,  # not in id order, with ties
            "email": f"user{i}@example.com",
            "name": NAMES[i % len(NAMES)],
            "balance": (i * 1337) % 5000 - 1000,
            "currency": "usd" if i % 3 else "eur",
            "delinquent": i % 4 == 0,
            "metadata": {"plan": PLANS[i % 3], "region": "eu" if i % 2 else "us", "seats": i % 5 + 1},
            "tags": [f"t{i % 3}", "vip"] if i % 5 == 0 else [],
        }
        for i in range(1, n + 1)
    ]


def make_charges(n: int = 57, customers: int = 23) -> list[dict[str, Any]]:
    return [
        {
            "id": f"ch_{j:04d}",
            "object": "charge",
            "amount": 500 + (j * 1373) % 10_000,
            "currency": "usd" if j % 4 else "eur",
            "customer": f"cus_{(j % customers) + 1:04d}",
            "created": BASE_TIME + j * 1800,
            "updated": BASE_TIME + (j * 11 % 13) * 43_200,
            "paid": j % 6 != 0,
            "status": "succeeded" if j % 6 else "failed",
            "description": None if j % 7 == 0 else f"Order #{1000 + j}",
            "metadata": {"order_id": f"ord_{j:05d}", "source": "web" if j % 2 else "app"},
        }
        for j in range(1, n + 1)
    ]


class ApiServer:
    """The server and its dataset; use as a context manager or start()/stop()."""

    def __init__(self, token: str | None = "sk_test_4eC39HqLyjWDarjtT1zdp7dc") -> None:
        self.token = token
        self.data = {"customers": make_customers(), "charges": make_charges()}
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * n)

    def api_requests(self, resource: str) -> list[dict[str, str]]:
        """Query dicts of the requests made to ``/v1/<resource>``."""
        return [q for p, q, _ in self.requests if p == f"/v1/{resource}"]

    def start(self) -> ApiServer:
        server = self

        class Handler(_Handler):
            api = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def _int(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    def _send(self, status: int, body: Any, *, content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        raw = body.encode("utf-8") if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type if content_type != "application/json" else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.api.requests.append((url.path, query, dict(self.headers.items())))
        if url.path == "/v1/html":
            return self._send(200, "<html><body>Hello</body></html>", content_type="text/html; charset=utf-8")
        failure = self.api._take_failure()
        if failure is not None:
            return self._send(failure, {"error": {"message": "try again later"}}, headers={"Retry-After": "0"})
        if self.api.token and self.headers.get("Authorization") != f"Bearer {self.api.token}":
            return self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
        resource = url.path.removeprefix("/v1/")
        if not url.path.startswith("/v1/") or resource not in self.api.data:
            return self._send(404, {"error": {"message": f"Unrecognized request URL (GET: {url.path})"}})
        rows = self.api.data[resource]
        if "updated_since" in query:
            rows = [r for r in rows if r["updated"] >= _int(query, "updated_since", 0)]
        if "created[gte]" in query:
            rows = [r for r in rows if r["created"] >= _int(query, "created[gte]", 0)]
        self._page(url.path, query, rows)

    def _page(self, path: str, query: dict[str, str], rows: list[dict[str, Any]]) -> None:
        paging = query.get("paging", "stripe")
        if paging == "none":
            return self._send(200, {"data": rows})
        if paging in ("page", "link"):
            size = max(1, _int(query, "per_page", 10))
            page = max(1, _int(query, "page", 1))
            chunk = rows[(page - 1) * size : page * size]
            total_pages = (len(rows) + size - 1) // size
            if paging == "page":
                return self._send(200, {"data": chunk, "page": page, "total_pages": total_pages})
            headers = {}
            if page < total_pages:
                nxt = urlencode({**query, "page": page + 1})
                headers["Link"] = f'<{path}?{nxt}>; rel="next", <{path}?{urlencode({**query, "page": 1})}>; rel="first"'
            return self._send(200, chunk, headers=headers)
        if paging == "offset":
            size = max(1, _int(query, "limit", 10))
            offset = max(0, _int(query, "offset", 0))
            return self._send(200, {"data": rows[offset : offset + size], "offset": offset, "total": len(rows)})
        if paging == "cursor":
            size = max(1, _int(query, "limit", 10))
            start = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if query.get("cursor") else 0
            end = start + size
            nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(rows) else None
            return self._send(200, {"data": rows[start:end], "meta": {"next_cursor": nxt}})
        size = min(100, max(1, _int(query, "limit", 10)))
        start = 0
        if query.get("starting_after"):
            ids = [r["id"] for r in rows]
            start = ids.index(query["starting_after"]) + 1 if query["starting_after"] in ids else len(rows)
        chunk = rows[start : start + size]
        return self._send(200, {"object": "list", "url": path, "has_more": start + size < len(rows), "data": chunk})


if __name__ == "__main__":  # python -m tests.support.http_server: serve until Ctrl-C
    with ApiServer() as srv:
        print(f"serving {srv.base_url} (token {srv.token})", flush=True)
        threading.Event().wait()
