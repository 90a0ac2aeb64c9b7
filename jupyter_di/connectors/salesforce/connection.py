"""Config, log-in and the HTTP client of the Salesforce destination.

Why a small client of our own on ``http.client`` rather than simple-salesforce: the destination
uses nine REST calls (token, describe, query, collections, five of Bulk API 2.0) and needs things a
general client leaves to its caller or does differently: one persistent TLS connection per write
(a handshake per request costs more than the work of a 200-record request), a token refreshed once
on ``401 INVALID_SESSION_ID`` with the request retried, every failure turned into one ``DIError``
with no secret in it, CSV bodies streamed from our own files, and no dependency on ``requests``,
``zeep`` and ``lxml`` (simple-salesforce's log-in goes through SOAP).  simple-salesforce still
checks our stand-in server in the tests, so both speak the same API.

TLS: ``verify`` is a CA bundle; without it ``REQUESTS_CA_BUNDLE``, then ``SSL_CERT_FILE`` (the
variables ``requests`` and OpenSSL read), then the system's trust store.  There is no switch to
turn verification off: a token would go to whoever answers.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, ConnectionFailed, DIError
from ...redaction import Redactor
from ..base import ConfigField

DEFAULT_API_VERSION = "64.0"
LOGIN_URL = "https://login.salesforce.com"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
RETRY_STATUSES = {500, 502, 503, 504}
MAX_RETRIES = 4
IDLE_SECONDS = 5.0
"""A kept connection idle longer than this is not trusted with a POST (servers drop idle connections)."""

CONFIG_SCHEMA = [
    ConfigField("instance_url", description="https://MyDomain.my.salesforce.com (required with access_token; else the log-in says it)."),
    ConfigField("api_version", default=DEFAULT_API_VERSION, description="REST API version, e.g. 64.0."),
    ConfigField("verify", "path", description="CA bundle to trust (default: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, the system's)."),
    ConfigField("access_token", secret=True, description="A session ID / OAuth access token (no refresh possible)."),
    ConfigField(
        "login_url", default=LOGIN_URL, description="OAuth server: https://login.salesforce.com, test.salesforce.com or My Domain."
    ),
    ConfigField("client_id", description="The connected app's consumer key (OAuth username-password or JWT bearer flow)."),
    ConfigField("client_secret", secret=True, description="The connected app's consumer secret (username-password flow)."),
    ConfigField("username", description="The Salesforce user (OAuth flows)."),
    ConfigField("password", secret=True, description="The user's password (username-password flow)."),
    ConfigField("security_token", secret=True, description="Appended to the password (username-password flow)."),
    ConfigField("private_key", secret=True, description="PEM private key of the connected app's certificate (JWT bearer flow)."),
    ConfigField(
        "bulk_threshold", "integer", default=2000, minimum=0, description="Streams with more rows per run go through Bulk API 2.0."
    ),
    ConfigField(
        "bulk_upload_mb", "number", default=100, minimum=0.001, maximum=100, description="Largest CSV per Bulk API 2.0 job, in MB."
    ),
    ConfigField("bulk_timeout", "number", default=3600, minimum=1, description="Seconds to wait for one Bulk API 2.0 job to finish."),
    ConfigField(
        "max_rejected_rows", "integer", default=0, minimum=0, description="Rows Salesforce may reject per stream before the block fails."
    ),
    ConfigField("timeout", "number", default=120, minimum=0.1, maximum=3600, description="Seconds to wait for each response."),
    ConfigField(
        "streams",
        "object",
        default={},
        description="Per stream: column_mapping {column: Field__c}, delete_missing, max_rejected_rows, rejected_rows_file.",
    ),
]
SECRET_FIELDS = [f.name for f in CONFIG_SCHEMA if f.secret]


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def ssl_context(verify: str | None) -> ssl.SSLContext:
    """Trust ``verify``, else ``REQUESTS_CA_BUNDLE``, else ``SSL_CERT_FILE``, else the system's store."""
    bundle = verify or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if bundle:
        path = Path(bundle).expanduser()
        if not path.is_file():
            raise ConfigError(f"CA bundle {str(path)!r} does not exist.", fix="set verify to a PEM file of trusted certificates.")
        return ssl.create_default_context(cafile=str(path))
    return ssl.create_default_context()


def auth_flow(config: Mapping[str, Any]) -> str:
    """Which log-in the config gives: ``access_token``, ``jwt``, ``password`` or ``none``."""
    if config.get("access_token"):
        return "access_token"
    if config.get("private_key"):
        return "jwt"
    if config.get("password"):
        return "password"
    return "none"


def check_credentials(config: Mapping[str, Any]) -> None:
    """One ``ConfigError`` when no log-in is complete (checked with the config, before anything runs)."""
    flow = auth_flow(config)
    if flow == "none":
        raise ConfigError(
            "no credentials: give access_token, or the OAuth username-password flow (client_id, client_secret, username, "
            "password, security_token), or the JWT bearer flow (client_id, username, private_key).",
            fix="add one of them under `config:` (secrets with {{ secret('name') }}).",
        )
    need = {"access_token": ["instance_url"], "jwt": ["client_id", "username"], "password": ["client_id", "client_secret", "username"]}
    missing = [k for k in need[flow] if not config.get(k)]
    if missing:
        raise ConfigError(
            f"the {flow.replace('_', ' ').replace('jwt', 'JWT bearer').replace('password', 'username-password')} "
            f"{'flow ' if flow != 'access_token' else ''}needs {', '.join(missing)}.",
            fix=f"add {missing[0]} under `config:`.",
        )


class SalesforceClient:
    """Authenticated JSON/CSV requests to one org over one kept-alive HTTPS connection."""

    def __init__(self, config: Mapping[str, Any], *, stream: str | None = None) -> None:
        self.config = config
        self.stream = stream
        self.api_version = str(config.get("api_version") or DEFAULT_API_VERSION).lstrip("vV")
        self.timeout = float(config.get("timeout") or 120)
        self._ssl = ssl_context(config.get("verify"))
        secrets = [str(config[k]) for k in SECRET_FIELDS if config.get(k)]
        self._redactor = Redactor(secrets)
        self._conn: http.client.HTTPSConnection | None = None
        self._origin: tuple[str, int] | None = None
        self._last_used = 0.0
        self.token: str | None = config.get("access_token") or None
        self.instance_url: str | None = (config.get("instance_url") or "").rstrip("/") or None
        self.requests = 0
        check_credentials(config)
        if self.instance_url:
            self._check_url(self.instance_url, "instance_url")

    # -- auth ------------------------------------------------------------------------------
    def _flow(self) -> str:
        return auth_flow(self.config)

    def login(self) -> None:
        """Get a token by the configured OAuth flow (nothing to do for an access_token)."""
        flow = self._flow()
        if flow == "access_token":
            return
        c = self.config
        login_url = str(c.get("login_url") or LOGIN_URL).rstrip("/")
        self._check_url(login_url, "login_url")
        if flow == "password":
            form = {
                "grant_type": "password",
                "client_id": c["client_id"],
                "client_secret": c["client_secret"],
                "username": c["username"],
                "password": str(c["password"]) + str(c.get("security_token") or ""),
            }
        else:
            form = {"grant_type": JWT_GRANT, "assertion": jwt_assertion(c["client_id"], c["username"], login_url, c["private_key"])}
        parts = urllib.parse.urlsplit(login_url)
        body = urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            status, _, raw = self._roundtrip(parts.hostname or "", parts.port or 443, "POST", "/services/oauth2/token", body, headers)
        except (ConnectionError, TimeoutError, http.client.HTTPException, ssl.SSLEOFError) as exc:
            self.close()
            raise self._fail(
                ConnectionFailed,
                f"the log-in at {login_url} failed: {type(exc).__name__}.",
                "check login_url and the network, then run again.",
            ) from None
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {}
        if status != 200 or "access_token" not in data:
            error = data.get("error") or f"HTTP {status}"
            description = data.get("error_description") or ""
            raise self._fail(
                ConnectionFailed,
                f"Salesforce refused the log-in at {login_url} ({flow.replace('jwt', 'JWT bearer').replace('password', 'username-password')} "
                f"flow): {error}{': ' + description if description else ''}.",
                _login_fix(str(error), flow),
            )
        self.token = data["access_token"]
        self._redactor = Redactor([*self._redactor_values(), self.token])
        if not self.config.get("instance_url"):
            self.instance_url = str(data.get("instance_url") or "").rstrip("/")
            self._check_url(self.instance_url, "instance_url")

    def _redactor_values(self) -> list[str]:
        return [str(self.config[k]) for k in SECRET_FIELDS if self.config.get(k)]

    # -- requests --------------------------------------------------------------------------
    def data_path(self, rest: str) -> str:
        return f"/services/data/v{self.api_version}/{rest.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Response:
        """One data API request: a 401 logs in again once and retries; 5xx and resets retry with backoff."""
        if self.token is None:
            self.login()
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
        refreshed = False
        attempt = 0
        while True:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type
            try:
                status, resp_headers, raw = self._data_roundtrip(method, path, body, headers)
            except (ConnectionError, TimeoutError, http.client.HTTPException, ssl.SSLEOFError) as exc:
                if not _repeatable(method, path):
                    raise self._fail(
                        DIError,
                        f"the connection to {self._host()} failed during {method} {_shown(path)} ({type(exc).__name__}): whether "
                        "Salesforce wrote those rows is unknown, and an insert is not repeated blindly.",
                        "check the object in Salesforce, then run again (give the stream an external ID key: upserts are safe to repeat).",
                    ) from None
                if attempt >= MAX_RETRIES:
                    raise self._fail(
                        ConnectionFailed,
                        f"{self._host()} kept failing {method} {_shown(path)} ({type(exc).__name__}) after {MAX_RETRIES} retries.",
                        "check the network and instance_url, then run again (writes are keyed, a rerun is safe).",
                    ) from None
                attempt += 1
                time.sleep(min(10.0, 0.5 * 2**attempt))
                continue
            if status in ok:
                return Response(status, resp_headers, raw)
            errors = _errors(raw)
            code = errors[0][0] if errors else ""
            if status == 401 and not refreshed:
                if self._flow() == "access_token":
                    raise self._fail(
                        ConnectionFailed,
                        f"Salesforce refused the access token ({code or 'HTTP 401'}): the session expired or is invalid.",
                        "give a fresh access_token, or use an OAuth flow (client_id, username and password or private_key) "
                        "so jupyter-di can log in again by itself.",
                    )
                refreshed = True
                self.login()
                continue
            if status in RETRY_STATUSES and attempt < MAX_RETRIES and _repeatable(method, path):
                attempt += 1
                time.sleep(min(10.0, 0.5 * 2**attempt))
                continue
            raise self.api_error(method, path, status, errors)

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """The records a SOQL query returns, following ``nextRecordsUrl`` (2,000 a page)."""
        path = self.data_path("query/?q=" + urllib.parse.quote(soql, safe=""))
        while True:
            page = self.request("GET", path).json()
            yield from page.get("records") or []
            nxt = page.get("nextRecordsUrl")
            if page.get("done", True) or not nxt:
                return
            path = nxt

    def api_error(self, method: str, path: str, status: int, errors: list[tuple[str, str]]) -> DIError:
        text = "; ".join(f"{c}: {m}" if c else m for c, m in errors) or f"HTTP {status}"
        code = errors[0][0] if errors else ""
        if status == 401:
            return self._fail(
                ConnectionFailed, f"Salesforce refused the session again after a new log-in ({text}).", "check the user's API access."
            )
        if code == "REQUEST_LIMIT_EXCEEDED":
            return self._fail(
                ConnectionFailed,
                f"Salesforce's API request limit for the org is used up ({text}).",
                "wait for the 24-hour allocation to recover (Setup > Company Information shows it), then run again.",
            )
        if code == "NOT_FOUND" and "/sobjects/" in path:
            return self._fail(
                ConfigError,
                f"{method} {_shown(path)}: {text}.",
                "check destination_table (an sObject API name: Account, Report__c) and api_version (e.g. 64.0).",
            )
        return self._fail(
            DIError, f"Salesforce answered {method} {_shown(path)} with HTTP {status}: {text}.", "see Salesforce's message above."
        )

    def _fail(self, cls: type[DIError], message: str, fix: str) -> DIError:
        return cls(self._redactor(message), stream=self.stream, fix=self._redactor(fix))

    def _host(self) -> str:
        parts = urllib.parse.urlsplit(self.instance_url or "")
        return f"{parts.hostname}:{parts.port or 443}"

    def _check_url(self, url: str, what: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"{what} {url!r} is not an https:// URL.", fix=f"set {what} like https://MyDomain.my.salesforce.com.")

    def _data_roundtrip(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        parts = urllib.parse.urlsplit(self.instance_url or "")
        return self._roundtrip(parts.hostname or "", parts.port or 443, method, path, body, headers)

    def _roundtrip(
        self, host: str, port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request on the kept connection (reopened once if the server closed it meanwhile)."""
        for fresh in (False, True):
            # a POST is never sent twice, so it goes on a connection that cannot have been dropped while idle
            stale = method == "POST" and time.monotonic() - self._last_used > IDLE_SECONDS
            if self._conn is None or self._origin != (host, port) or fresh or stale:
                self.close()
                try:
                    self._conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl)
                    self._conn.connect()
                except ssl.SSLCertVerificationError as exc:
                    self.close()
                    raise self._fail(
                        ConnectionFailed,
                        f"the TLS certificate of {host}:{port} is not trusted ({exc.verify_message}).",
                        "set verify to the CA bundle that signed it (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE).",
                    ) from None
                except ConnectionRefusedError:
                    self.close()
                    raise self._fail(
                        ConnectionFailed, f"could not connect to {host}:{port}: connection refused.", "check instance_url / login_url."
                    ) from None
                except socket.gaierror:
                    self.close()
                    raise self._fail(ConnectionFailed, f"could not resolve {host}.", "check instance_url / login_url.") from None
                self._origin = (host, port)
            assert self._conn is not None
            try:
                self.requests += 1
                self._conn.request(method, path, body=body, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                self._last_used = time.monotonic()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if fresh or method not in ("GET", "PATCH", "PUT", "DELETE"):
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _errors(raw: bytes) -> list[tuple[str, str]]:
    """(errorCode, message) pairs of a Salesforce error body (a list, or an OAuth-style object)."""
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        text = raw[:200].decode("utf-8", "replace").strip()
        return [("", text)] if text else []
    if isinstance(data, dict):
        data = [data]
    out = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict):
            out.append(
                (str(item.get("errorCode") or item.get("error") or ""), str(item.get("message") or item.get("error_description") or ""))
            )
    return out


def _repeatable(method: str, path: str) -> bool:
    """Whether sending the request again cannot write twice: every method but POST, and the POST that
    creates a Bulk API job (a second, empty job is harmless); not a POST that inserts records."""
    return method != "POST" or _shown(path).rstrip("/").endswith("/jobs/ingest")


def _shown(path: str) -> str:
    return path.split("?", 1)[0]


def _login_fix(error: str, flow: str) -> str:
    if error == "invalid_client_id":
        return "check client_id: it is the connected app's consumer key."
    if error == "invalid_client":
        return "check client_secret: it is the connected app's consumer secret."
    if flow == "jwt":
        return "check that the connected app holds the certificate of private_key, the user is pre-authorized, and login_url is the org's."
    return "check username, password and security_token (the token is reset from the user's settings), and login_url."


def jwt_assertion(client_id: str, username: str, audience: str, private_key: str) -> str:
    """An RS256-signed JWT for the OAuth 2.0 JWT bearer flow (valid 3 minutes, as Salesforce allows)."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError:
        raise ConfigError(
            "the JWT bearer flow needs the 'cryptography' package to sign its assertion.",
            fix="pip install cryptography (or use the username-password flow).",
        ) from None
    pem = private_key
    if "-----BEGIN" not in pem and Path(pem).expanduser().is_file():
        pem = Path(pem).expanduser().read_text()
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            "private_key is not an unencrypted PEM private key.",
            fix="give the connected app certificate's key as PEM text (BEGIN PRIVATE KEY).",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            "private_key must be an RSA key (Salesforce signs with RS256).", fix="use the key of the connected app's certificate."
        )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"iss": client_id, "sub": username, "aud": audience, "exp": int(time.time()) + 180}).encode())
    signature = key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{claims}.{b64(signature)}"
