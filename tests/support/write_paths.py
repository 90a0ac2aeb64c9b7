"""Which path each PostgreSQL destination write takes: 'copy' (a source's binary COPY data passed
through as it is) or 'arrow' (batches), recorded by wrapping the destination's two write methods."""

from __future__ import annotations

from typing import Any


def record_write_paths(monkeypatch: Any) -> list[str]:
    """Wrap ``PostgresDestination.write`` / ``write_binary_copy`` for one test; the list fills as they run."""
    from jupyter_di.connectors.postgres import PostgresDestination

    taken: list[str] = []
    arrow_write = PostgresDestination.write
    copy_write = PostgresDestination.write_binary_copy

    def write(self, *args, **kwargs):  # noqa: ANN001, ANN202
        taken.append("arrow")
        return arrow_write(self, *args, **kwargs)

    def write_binary_copy(self, *args, **kwargs):  # noqa: ANN001, ANN202
        result = copy_write(self, *args, **kwargs)
        if result is not None:
            taken.append("copy")
        return result

    monkeypatch.setattr(PostgresDestination, "write", write)
    monkeypatch.setattr(PostgresDestination, "write_binary_copy", write_binary_copy)
    return taken
