"""The Stripe source's config fields, and the HTTP client every request goes through.

The key is sent as a bearer token in a header that never follows a redirect to another host and is
masked in every message (``_shared/http_client.py``); ``account_id`` is sent as the
``Stripe-Account`` header (a platform reading a connected account).  Retries follow Stripe's advice
for clients: 429 (honouring ``Retry-After``), 5xx and timeouts, with exponential backoff and jitter,
GETs only (the source sends nothing else).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ...errors import ConfigError
from .._shared.http_client import HttpClient, Response
from ..base import ConfigField

STRIPE_API = "https://api.stripe.com"
PAGE_SIZE = 100
"""Stripe's largest page."""

CONFIG = [
    ConfigField(
        "api_key", "string", required=True, secret=True, description="A secret key (sk_...) or a restricted key (rk_...) with read access."
    ),
    ConfigField("base_url", "string", default=STRIPE_API, description="Root URL of the API: Stripe's, or a proxy or test server."),
    ConfigField("account_id", "string", description="A connected account (acct_...) to read, sent as the Stripe-Account header."),
    ConfigField("start_date", "string", description="ISO-8601 date or time: only objects created from then on (default: all)."),
    ConfigField(
        "lookback_window",
        "integer",
        default=300,
        minimum=0,
        maximum=86_400,
        description="Seconds of events read again on each incremental run (events that became visible late).",
    ),
    ConfigField("expand", "object", default={}, description="stream -> fields to expand, e.g. {charges: [customer]} (JSON columns then)."),
    ConfigField("timeout", "number", default=60, minimum=1, maximum=600, description="Seconds to wait for each response."),
    ConfigField("max_retries", "integer", default=6, minimum=0, maximum=20, description="Retries of a GET on 429, 5xx and timeouts."),
    ConfigField(
        "retry_backoff", "number", default=1.0, minimum=0, maximum=60, description="First retry delay in seconds (doubles, with jitter)."
    ),
]

AUTH_FIX = (
    "check api_key (a secret key sk_..., or a restricted key rk_... with read access to this stream's objects) "
    "and account_id in the block's config."
)


def make_client(config: Mapping[str, Any], stream: str | None) -> HttpClient:
    headers = {"Authorization": f"Bearer {config.get('api_key') or ''}"}
    if config.get("account_id"):
        headers["Stripe-Account"] = str(config["account_id"])
    return HttpClient(
        base_url=str(config.get("base_url") or STRIPE_API),
        headers=headers,
        timeout=float(config.get("timeout") or 60),
        max_retries=int(config.get("max_retries", 6)),
        backoff=float(config.get("retry_backoff", 1.0)),
        stream=stream,
        auth_fix=AUTH_FIX,
    )


def epoch(value: Any, what: str, stream: str | None = None) -> int:
    """Unix seconds of an ISO-8601 date or time (naive means UTC), or of a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{what} {value!r} is not an ISO-8601 date or time.", stream=stream, fix="write e.g. 2024-01-31 or 2024-01-31T12:00:00Z."
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def server_time(response: Response) -> int | None:
    """Stripe's clock (the ``Date`` header) in Unix seconds, if it sent one."""
    value = response.headers.get("Date")
    try:
        return int(parsedate_to_datetime(value).timestamp()) if value else None
    except (TypeError, ValueError):
        return None


@dataclass
class Page:
    records: list[dict[str, Any]]
    response: Response


def list_pages(client: HttpClient, path: str, params: Sequence[tuple[str, Any]]) -> Iterator[Page]:
    """Every page of a Stripe list, newest first: ``limit=100``, then ``starting_after`` the last id
    while ``has_more``; requested only as the caller iterates."""
    after: str | None = None
    while True:
        query = [*params, ("limit", PAGE_SIZE)] + ([("starting_after", after)] if after else [])
        response = client.get_json(client.url_for(path, query))
        data = response.data if isinstance(response.data, dict) else {}
        records = data.get("data")
        if not isinstance(records, list):
            raise ConfigError(
                f"GET {path} did not answer with a Stripe list (no `data`).",
                stream=client.stream,
                fix="check base_url: it must be Stripe's API root (https://api.stripe.com) or a server that speaks its API.",
            )
        yield Page(records, response)
        if not data.get("has_more") or not records:
            return
        after = records[-1].get("id")
        if not after:
            return
