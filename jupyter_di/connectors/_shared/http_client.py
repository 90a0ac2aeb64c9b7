"""GET JSON from an HTTP API with retries, and turn every failure into one clear DIError.

Shared by the HTTP sources (``http_api``, ``stripe``): retries (429 honouring
``Retry-After``, 5xx, timeouts; exponential backoff with jitter, so many clients
throttled together do not come back in step), credentials that never follow a
redirect to another host, and one message per failure that never shows them.
Why the standard library (``urllib.request``): the sources need nothing
beyond GET, headers, timeouts and redirects, so it adds no dependency.
Secrets: configured header values (the token among them) are sent as
"unredirected" headers, so a redirect never carries them to another host, and
are masked in every message (``redaction.Redactor``: the one mask); messages
show the URL path, never the query.
"""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from ...errors import ConfigError, ConnectionFailed, DIError
from ...redaction import Redactor

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_SLEEP = 30.0


@dataclass
class Response:
    status: int
    headers: Message
    url: str
    data: Any


@dataclass
class HttpClient:
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 1.0
    stream: str | None = None
    auth_fix: str = "check the api_key/token and auth_header in the block's config."
    """What a 401/403 message tells the user to do."""
    requests: int = 0
    """HTTP requests sent so far, retries included (benchmarks and tests count them)."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"base_url {self.base_url!r} is not an http(s) URL.",
                fix="set base_url like https://api.example.com.",
            )
        self._origin = (parts.scheme, parts.hostname, parts.port)
        values = [v for v in self.headers.values() if isinstance(v, str) and len(v) >= 4]
        # the token alone too, without its scheme ("Bearer <token>")
        self._redact = Redactor([*values, *(part for v in values for part in v.split() if len(part) >= 8)])
        self._opener = urllib.request.build_opener()

    @property
    def host_port(self) -> str:
        scheme, host, port = self._origin
        return f"{host}:{port or (443 if scheme == 'https' else 80)}"

    def url_for(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None) -> str:
        """``base_url`` + ``path`` (or an absolute same-origin URL) with ``params`` added (a mapping, or
        (name, value) pairs where a name repeats, like Stripe's ``expand[]``)."""
        if "://" in path:
            url = path
        else:
            url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) != self._origin:
            raise ConfigError(
                f"the API pointed at another host ({parts.hostname}), which would receive the credentials.",
                stream=self.stream,
                fix="use a base_url on the host that serves the pages.",
            )
        query = parts.query
        if params:
            pairs = params.items() if isinstance(params, Mapping) else params
            extra = urlencode([(k, _param(v)) for k, v in pairs if v is not None])
            query = f"{query}&{extra}" if query else extra
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def join(self, current: str, link: str) -> str:
        return self.url_for(urljoin(current, link))

    def _fail(self, cls: type[DIError], message: str, fix: str) -> DIError:
        return cls(self._redact(message), stream=self.stream, fix=fix)

    def get_json(self, url: str) -> Response:
        """GET ``url``; retry 429/5xx and timeouts with exponential backoff; parse JSON."""
        path = urlsplit(url).path or "/"
        request = urllib.request.Request(url, method="GET")
        request.add_unredirected_header("Accept", "application/json")
        for name, value in self.headers.items():
            request.add_unredirected_header(name, value)
        attempt = 0
        while True:
            retry_after: float | None = None
            self.requests += 1
            try:
                with self._opener.open(request, timeout=self.timeout) as resp:
                    return self._parse(resp.status, resp.headers, resp.read(), resp.geturl(), path)
            except urllib.error.HTTPError as exc:
                status = exc.code
                body = exc.read()[:300].decode("utf-8", "replace")
                exc.close()
                if status in (401, 403):
                    raise self._fail(
                        ConnectionFailed,
                        f"credentials rejected by {self.host_port} (HTTP {status} for GET {path}).",
                        self.auth_fix,
                    ) from None
                if status not in RETRY_STATUSES:
                    what = "not found" if status == 404 else body.strip() or exc.reason
                    raise self._fail(
                        ConfigError,
                        f"GET {path} returned HTTP {status} ({what}).",
                        "check base_url, the stream's path and params.",
                    ) from None
                retry_after = _retry_after(exc.headers)
                reason = f"HTTP {status}"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, ConnectionRefusedError):
                    raise self._fail(
                        ConnectionFailed,
                        f"could not connect to {self.host_port}: connection refused.",
                        "check base_url and that the API server is running.",
                    ) from None
                if not isinstance(exc.reason, (TimeoutError, socket.timeout, ConnectionResetError)):
                    raise self._fail(
                        ConnectionFailed,
                        f"could not reach {self.host_port}: {exc.reason}.",
                        "check base_url and the network.",
                    ) from None
                reason = f"no answer within {self.timeout}s"
            except (TimeoutError, ConnectionResetError):
                reason = f"no answer within {self.timeout}s"
            if attempt >= self.max_retries:
                raise self._fail(
                    ConnectionFailed,
                    f"{self.host_port} kept failing GET {path} ({reason}) after {self.max_retries} retries.",
                    "try again later, or raise max_retries/timeout.",
                )
            time.sleep(retry_delay(attempt, self.backoff, retry_after))
            attempt += 1

    def _parse(self, status: int, headers: Message, raw: bytes, url: str, path: str) -> Response:
        ctype = headers.get("Content-Type", "")
        try:
            data = json.loads(raw.decode(headers.get_content_charset() or "utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise self._fail(
                ConfigError,
                f"GET {path} returned HTTP {status} with content type {ctype or 'none'!r}, not JSON.",
                "check base_url and the stream's path: they must point at a JSON API endpoint.",
            ) from None
        return Response(status, headers, url, data)


def retry_delay(attempt: int, backoff: float, retry_after: float | None) -> float:
    """Seconds before retry number ``attempt`` + 1: what ``Retry-After`` asks (never less), else
    ``backoff`` doubled per attempt with jitter (a random 50-100% of it), at most ``MAX_SLEEP``."""
    if retry_after is not None:
        return min(MAX_SLEEP, max(0.0, retry_after))
    return min(MAX_SLEEP, max(0.0, backoff * (2**attempt) * random.uniform(0.5, 1.0)))


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
