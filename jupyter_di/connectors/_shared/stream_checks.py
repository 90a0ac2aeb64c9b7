"""Checks of a read's stream settings that every source makes, in one place with the system's words.

Why: "an INCREMENTAL read needs a bookmark" is one rule; each source names its bookmark in its own
terms (a table column, a tap's replication key), so the wording is the caller's and the rule is here.
"""

from __future__ import annotations

from ...errors import ConfigError
from ..base import INCREMENTAL, StreamSettings


def require_bookmark_properties(settings: StreamSettings, *, what: str, fix: str) -> None:
    """Refuse an INCREMENTAL read without ``bookmark_properties``: ``INCREMENTAL replication needs
    {what}.``, naming the stream, with ``fix``."""
    if settings.replication_method == INCREMENTAL and not settings.bookmark_properties:
        raise ConfigError(f"INCREMENTAL replication needs {what}.", stream=settings.stream, fix=fix)
