"""Long panel actions (discover, test connection, sample data) on a background thread.

Why: a button callback runs on the kernel's shell thread; a slow connector
there would freeze the kernel and the whole notebook.  A job shows an
indeterminate progress bar in its status line, disables its button, and ends
with a success text or the error text (a ``DIError``'s message, never a
traceback), with any secret values masked.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ipywidgets as widgets

from ...errors import DIError
from ...redaction import Redactor
from . import look

OK_STYLE = "color:#2e7d32"
ERROR_STYLE = "color:#c62828"


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with the process's secrets and ``secrets`` masked: the one mask (``redaction.py``)."""
    return Redactor(secrets)(text)


def error_text(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line for the panel: the DIError's own text, or the exception's type and message."""
    text = str(exc) if isinstance(exc, DIError) else f"{type(exc).__name__}: {exc}"
    return mask(text, secrets)


class Status(widgets.HTML):
    """A status line: idle, busy (progress bar), success or error."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs, **look.shared(widgets.HTML))

    def busy(self, text: str) -> None:
        self.value = f"<progress style='width:8em;vertical-align:middle'></progress> {html.escape(text)}"

    def ok(self, text: str) -> None:
        self.value = f"<span style='{OK_STYLE}'>✔ {html.escape(text)}</span>"

    def error(self, text: str) -> None:
        self.value = f"<span style='{ERROR_STYLE}'>✖ {html.escape(text)}</span>"

    def note(self, text: str) -> None:
        self.value = f"<span>{html.escape(text)}</span>"


class Jobs:
    """One worker thread per panel: actions run in order, never on the shell thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jupyter-di-panel")
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def run(
        self,
        label: str,
        work: Callable[[], Any],
        status: Status,
        *,
        done: Callable[[Any], str | None] | None = None,
        button: widgets.Button | None = None,
        secrets: Callable[[], Iterable[str]] = lambda: (),
    ) -> Future:
        """Run ``work()`` in the background; ``done(result)`` returns the success text."""
        status.busy(label + "…")
        if button is not None:
            button.disabled = True

        def job() -> Any:
            try:
                result = work()
                text = done(result) if done is not None else None
                status.ok(text or "Done.")
                return result
            except Exception as exc:  # noqa: BLE001 - shown in the panel, never a traceback
                status.error(error_text(exc, secrets()))
                return exc
            finally:
                if button is not None:
                    button.disabled = False

        future = self._pool.submit(job)
        with self._lock:
            self._futures.append(future)
        return future

    def wait(self, timeout: float = 60) -> None:
        """Wait for every job started so far (tests, benchmarks)."""
        with self._lock:
            futures = list(self._futures)
        for future in futures:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
