"""One mask for every secret, wherever a message leaves a block.

Why one registry per process rather than per block: a secret reaches many
messages that know nothing about the block it belongs to (a connection error
raised by a driver, the executor's record of a failed block, a Singer tap's
stderr, the CLI's last paragraph, the kernel's exception).  So every value that
is a secret is *remembered* once — each value ``SecretStore.get`` hands out
(every ``{{ secret('...') }}``), and each rendered value of a config field
declared ``secret=True`` when a block runs — and ``redact`` masks all of them,
by value, in any text.  A ``Redactor`` adds values of its own (a Singer
config's values under secret-looking keys) for the messages it handles.

Forms: a driver may print a value JSON-escaped, Python-quoted, URL-encoded (a
password inside a connection URL) or quoted for libpq, so each of those forms is
masked too.  Longer values first, so a secret holding another is masked whole.

Short secrets (1-2 characters) are masked only where they stand alone, not
inside a longer word or number (``user "ab"`` -> ``user "***"``, while
``tabs`` stays): masking every ``a`` in every message would make messages
unreadable and would show the secret by where the masks fall, and a secret that
short can be guessed in a few thousand tries anyway, so refusing it would only
break local setups (a trust-auth server given ``password: x``) without keeping
anything secret.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

MASK = "***"
SHORT = 3
"""Secrets shorter than this are masked only as whole tokens (see the module's docstring)."""

SECRET_KEY_PATTERN = re.compile(r"pass|secret|token|key|api|credential|auth", re.IGNORECASE)
"""Keys inside a nested secret config (a Singer tap's ``config``) whose values are secrets."""

NOT_SECRET_KEY_PATTERN = re.compile(
    r"^(primary|partition|sort|replication|foreign|unique|bookmark)[_-]?keys?$|key[_-]?propert", re.IGNORECASE
)
"""Key-like names that hold column names, not secrets."""

_WORD = "A-Za-z0-9"


def is_secret_key(name: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(name)) and not NOT_SECRET_KEY_PATTERN.search(name)


def forms(value: str) -> set[str]:
    """The ways a driver or a tap may print ``value``: as is, JSON-escaped, Python-quoted,
    URL-encoded, libpq-quoted."""
    import urllib.parse  # here: most runs have no secret, and start-up time counts

    found = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value, safe=""),
        value.replace("\\", "\\\\").replace("'", "\\'"),
    }
    return {f for f in found if f}


def _compile(values: Iterable[str]) -> re.Pattern[str] | None:
    variants: set[str] = set()
    for value in values:
        variants |= forms(value)
    if not variants:
        return None
    parts = []
    for v in sorted(variants, key=lambda s: (-len(s), s)):
        escaped = re.escape(v)
        parts.append(escaped if len(v) >= SHORT else f"(?<![{_WORD}]){escaped}(?![{_WORD}])")
    return re.compile("|".join(parts))


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        text = str(value)
        return text or None
    return None


class Redactor:
    """Masks a fixed set of secret values, and every value the process remembers."""

    def __init__(self, secrets: Iterable[Any] = ()) -> None:
        self.values = {t for t in (_as_text(s) for s in secrets) if t}
        self._pattern = _compile(self.values)

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return redact(text)


_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def remember(*values: Any) -> None:
    """Mask these values (strings or numbers; others are ignored) in every later ``redact``."""
    global _pattern
    new = {t for t in (_as_text(v) for v in values) if t} - _known
    if not new:
        return
    with _lock:
        _known.update(new)
        _pattern = _compile(_known)


def redact(text: str) -> str:
    """``text`` with every remembered secret (in each of its forms) replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def secret_values(value: Any, *, under_secret_key: bool = False) -> list[str]:
    """The secret leaves of a config value, longest first: inside a mapping (a Singer tap's
    ``config``) the values under secret-looking keys, and everything under such a key
    (``credentials: {...}``); a plain value only when ``under_secret_key``.

    Why not every leaf of a secret mapping: a tap's config also holds hosts, ports and schema
    names, and masking those would make half of every message ``***``."""
    found: set[str] = set()

    def walk(v: Any, is_secret: bool) -> None:
        if isinstance(v, Mapping):
            for k, item in v.items():
                walk(item, is_secret or is_secret_key(str(k)))
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item, is_secret)
        elif is_secret:
            text = _as_text(v)
            if text:
                found.add(text)

    walk(value, under_secret_key)
    return sorted(found, key=len, reverse=True)


def block_secrets(config: Mapping[str, Any], secret_fields: Iterable[str], used: Iterable[Any] = ()) -> list[str]:
    """What to mask for one block, longest first: its secret fields' rendered values and the
    ``secret()`` values it used.

    The values of secret fields and of ``secret()`` are remembered for the whole process; values
    found by key name inside a nested secret mapping (a Singer ``config``) are only this block's:
    that guess also catches things like ``token_column: id``, which would mask every ``id``."""
    certain = {t for t in (_as_text(v) for v in used) if t}
    guessed: set[str] = set()
    for name in secret_fields:
        value = config.get(name)
        if isinstance(value, (Mapping, list, tuple)):
            guessed.update(secret_values(value))
        else:
            certain.update(secret_values(value, under_secret_key=True))
    remember(*certain)
    return sorted(certain | guessed, key=len, reverse=True)


class _RedactedError(Exception):
    """Stands in the chain for an exception whose text could not be masked in place."""


_E = TypeVar("_E", bound=BaseException)


def redact_exception(exc: _E, redactor: Any = None) -> _E:
    """Mask secrets in ``exc`` and the exceptions it was raised from (in place; returns ``exc``).

    A ``DIError``'s message and fix, and every exception's string arguments, are masked; an
    exception whose text still shows a secret after that (its ``__str__`` does not come from its
    arguments) is replaced in the chain by one holding its masked text.
    """
    mask = redactor or redact
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _redact_in_place(current, mask)
        for attr in ("__cause__", "__context__"):
            linked = getattr(current, attr)
            if linked is None:
                continue
            _redact_in_place(linked, mask)
            try:
                text = str(linked)
            except Exception:  # noqa: BLE001 - a broken __str__ shows nothing, so leaks nothing
                continue
            if mask(text) != text:
                stand_in = _RedactedError(f"{type(linked).__qualname__}: {mask(text)}")
                stand_in.__traceback__ = linked.__traceback__
                stand_in.__cause__, stand_in.__context__ = linked.__cause__, linked.__context__
                stand_in.__suppress_context__ = linked.__suppress_context__
                setattr(current, attr, stand_in)
        current = current.__cause__ or current.__context__
    return exc


def _redact_in_place(exc: BaseException, mask: Any) -> None:
    for attr in ("message", "fix"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            try:
                setattr(exc, attr, mask(value))
            except (AttributeError, TypeError):
                pass
    try:
        exc.args = tuple(mask(a) if isinstance(a, str) else a for a in exc.args)
    except (AttributeError, TypeError):
        pass
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [mask(n) if isinstance(n, str) else n for n in notes]
