"""Stream configuration of the http_api source, and walking its pages.

Why separate: the paging styles (none, page, offset, cursor, link_header) are
the part of an HTTP API that differs most between services; each is a few
lines here, and each yields the list of records of one page, lazily, so the
caller can stop paging early (``limit``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from ...errors import ConfigError
from .._shared.http_client import HttpClient, Response

PAGING_TYPES = ("none", "page", "offset", "cursor", "link_header")
_MISSING = object()


@dataclass
class StreamConfig:
    """One entry of the connector's ``streams`` config."""

    name: str
    path: str
    records_path: str = ""
    primary_key: list[str] = field(default_factory=list)
    paging: dict[str, Any] = field(default_factory=dict)
    cursor_param: str | None = None
    cursor_field: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def paging_type(self) -> str:
        return str(self.paging.get("type") or "none")

    @classmethod
    def parse(cls, name: str, raw: Any) -> StreamConfig:
        if not isinstance(raw, dict) or not raw.get("path"):
            raise ConfigError(
                "every http_api stream needs a `path`.",
                stream=name,
                fix="write e.g. `streams: {customers: {path: /v1/customers, records_path: data}}`.",
            )
        paging = raw.get("paging") or {}
        if isinstance(paging, str):
            paging = {"type": paging}
        if paging.get("type", "none") not in PAGING_TYPES:
            raise ConfigError(
                f"unknown paging type {paging.get('type')!r}.",
                stream=name,
                fix=f"use one of: {', '.join(PAGING_TYPES)}.",
            )
        if paging.get("type") == "cursor" and not (paging.get("next_cursor_path") or paging.get("cursor_record_field")):
            raise ConfigError(
                "cursor paging needs `next_cursor_path` (where the response holds the next cursor) "
                "or `cursor_record_field` (the last record's field to pass on, e.g. id).",
                stream=name,
                fix="add one of them under paging.",
            )
        incremental = raw.get("incremental") or {}
        pk = raw.get("primary_key") or []
        return cls(
            name=name,
            path=str(raw["path"]),
            records_path=str(raw.get("records_path") or ""),
            primary_key=[pk] if isinstance(pk, str) else list(pk),
            paging=dict(paging),
            cursor_param=incremental.get("cursor_param"),
            cursor_field=incremental.get("cursor_field"),
            params=dict(raw.get("params") or {}),
        )


def dig(data: Any, dotted: str) -> Any:
    """The value at a dotted path (``meta.next``; list indexes allowed), or _MISSING."""
    value = data
    for part in [p for p in dotted.split(".") if p]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def records_of(response: Response, cfg: StreamConfig) -> list[dict[str, Any]]:
    """The records list at ``records_path``, or a ConfigError naming what exists instead."""
    found = dig(response.data, cfg.records_path)
    if found is _MISSING or not isinstance(found, list):
        top = response.data
        keys = ", ".join(repr(k) for k in top) if isinstance(top, dict) else f"a JSON {type(top).__name__}"
        problem = "does not exist" if found is _MISSING else f"is a {type(found).__name__}, not a list"
        raise ConfigError(
            f"records_path {cfg.records_path!r} {problem} in the response; its top level has: {keys}.",
            stream=cfg.name,
            fix="set records_path to the dotted path of the list of records (empty when the response is the list).",
        )
    bad = next((r for r in found if not isinstance(r, dict)), None)
    if bad is not None:
        raise ConfigError(
            f"records_path {cfg.records_path!r} holds {type(bad).__name__} values, not objects.",
            stream=cfg.name,
            fix="point records_path at a list of JSON objects.",
        )
    return found


def pages(client: HttpClient, cfg: StreamConfig, extra_params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
    """Records of each page, in the API's order, requested only as the caller iterates."""
    p = cfg.paging
    params = {**cfg.params, **(extra_params or {})}
    kind = cfg.paging_type
    size = p.get("page_size", 100 if kind in ("page", "offset") else None)

    def size_param(default: str | None) -> dict[str, Any]:
        name = p.get("size_param", default)
        return {name: size} if name and size else {}

    def fetch(extra: dict[str, Any]) -> tuple[Response, list[dict[str, Any]]]:
        response = client.get_json(client.url_for(cfg.path, {**params, **extra}))
        return response, records_of(response, cfg)

    def short(records: list[Any]) -> bool:
        return not records or (size is not None and bool(size) and len(records) < int(size))

    if kind == "none":
        yield fetch({})[1]
    elif kind == "page":
        page = int(p.get("start_page", 1))
        while True:
            _, records = fetch({p.get("page_param", "page"): page, **size_param("per_page")})
            if records:
                yield records
            if short(records):
                return
            page += 1
    elif kind == "offset":
        offset = 0
        while True:
            _, records = fetch({p.get("offset_param", "offset"): offset, **size_param("limit")})
            if records:
                yield records
            if short(records):
                return
            offset += len(records)
    elif kind == "cursor":
        yield from _cursor_pages(fetch, p, size_param("limit"), cfg)
    else:  # link_header
        url: str | None = client.url_for(cfg.path, {**params, **size_param(None)})
        seen = set()
        while url and url not in seen:
            seen.add(url)
            response = client.get_json(url)
            records = records_of(response, cfg)
            if records:
                yield records
            link = next_link(response.headers)
            url = client.join(response.url, link) if link else None


def _cursor_pages(
    fetch: Callable[[dict[str, Any]], tuple[Response, list[dict[str, Any]]]],
    p: dict[str, Any],
    sizes: dict[str, Any],
    cfg: StreamConfig,
) -> Iterator[list[dict[str, Any]]]:
    """Cursor paging: the next cursor from the response body, or from the last record (Stripe)."""
    param = p.get("cursor_param", "cursor")
    cursor: Any = None
    seen: set[str] = set()
    while True:
        response, records = fetch({param: cursor, **sizes} if cursor is not None else dict(sizes))
        if records:
            yield records
        if p.get("has_more_path"):
            more = dig(response.data, p["has_more_path"])
            if more is _MISSING or not more:
                return
        if p.get("next_cursor_path"):
            cursor = dig(response.data, p["next_cursor_path"])
        elif records:
            cursor = records[-1].get(p["cursor_record_field"])
        else:
            cursor = None
        if cursor is _MISSING or cursor in (None, "") or not records or str(cursor) in seen:
            return
        seen.add(str(cursor))


def next_link(headers: Message) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header, if any."""
    for value in headers.get_all("Link") or []:
        for part in value.split(","):
            if ";" not in part:
                continue
            target, *attrs = part.split(";")
            rels = [a.strip() for a in attrs if a.strip().lower().startswith("rel=")]
            if any("next" in r[4:].strip("\"' ").lower().split() for r in rels):
                return target.strip().strip("<>")
    return None
