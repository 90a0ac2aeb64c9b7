"""Which path each destination write takes: 'copy' (a source's binary COPY data passed through as it
is, or read by the destination itself: DuckDB's postgres scanner) or 'arrow' (batches), recorded by
wrapping the destination's two write methods."""

from __future__ import annotations

from typing import Any


def record_write_paths(monkeypatch: Any, destination_cls: type | None = None) -> list[str]:
    """Wrap ``write`` / ``write_binary_copy`` of ``destination_cls`` (the PostgreSQL destination by
    default) for one test; the list fills as they run."""
    if destination_cls is None:
        from jupyter_di.connectors.postgres import PostgresDestination

        destination_cls = PostgresDestination
    taken: list[str] = []
    arrow_write = destination_cls.write
    copy_write = destination_cls.write_binary_copy

    def write(self, *args, **kwargs):  # noqa: ANN001, ANN202
        taken.append("arrow")
        return arrow_write(self, *args, **kwargs)

    def write_binary_copy(self, *args, **kwargs):  # noqa: ANN001, ANN202
        result = copy_write(self, *args, **kwargs)
        if result is not None:
            taken.append("copy")
        return result

    monkeypatch.setattr(destination_cls, "write", write)
    monkeypatch.setattr(destination_cls, "write_binary_copy", write_binary_copy)
    return taken
