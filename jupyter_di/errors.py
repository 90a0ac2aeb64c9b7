"""One exception family for everything a user can get wrong.

Why one family: the notebook surface and the CLI both turn a ``DIError`` into a
single short message (no traceback), so every error must carry the block, the
stream and the fix in a uniform way.  Bugs in jupyter-di itself stay ordinary
exceptions and keep their tracebacks.
"""

from __future__ import annotations


class DIError(Exception):
    """A problem the user can fix: names the block, the stream and what to do."""

    def __init__(
        self,
        message: str,
        *,
        block: str | None = None,
        stream: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.block = block
        self.stream = stream
        self.fix = fix

    def with_context(self, *, block: str | None = None, stream: str | None = None) -> DIError:
        """Fill in the block/stream where the raiser did not know them (returns self)."""
        if self.block is None:
            self.block = block
        if self.stream is None:
            self.stream = stream
        return self

    def __str__(self) -> str:
        where = []
        if self.block:
            where.append(f"block '{self.block}'")
        if self.stream:
            where.append(f"stream '{self.stream}'")
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        if self.fix:
            text = f"{text} Fix: {self.fix}"
        return text


class ConfigError(DIError):
    """A block's YAML, settings or connector config is wrong."""


class ConnectionFailed(DIError):
    """A connector could not reach or log in to its system."""


class SchemaMismatch(DIError):
    """Source and destination columns or types do not fit together."""


class GraphError(DIError):
    """The block graph is invalid: a cycle, a duplicate or an unknown upstream."""


class BlockFailed(DIError):
    """A block's own code raised; the original exception is the ``__cause__``."""


class UpstreamFailed(BlockFailed):
    """A block reading a running upstream block's output stopped because that block failed."""

    def __init__(self, upstream: str, *, stream: str | None = None) -> None:
        super().__init__(f"upstream '{upstream}' failed", stream=stream)
        self.upstream = upstream


class ConnectorNotFound(ConfigError):
    """No connector is registered under the requested name."""
