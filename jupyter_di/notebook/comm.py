"""Kernel side of the comm between the kernel and the jupyter-di JupyterLab extension.

Responsibilities:
- own the comm target ``jupyter_di`` and every comm open on it (one per connected notebook view);
- send typed, versioned messages to the extension (cell source/metadata write-back, the block
  graph, block status);
- dispatch the extension's requests (``run_pipeline``, ``run_block``, ``request_graph``) to
  Python handlers registered by the magics, and answer each with one ``ack``.

The protocol is documented in ``docs/comm-protocol.md``.  Why a comm and not
``set_next_input``: a panel edit or a run button arrives as a comm message, with no execute reply
to carry a payload, and it may need to rewrite a cell other than the executing one.

Either side may open the comm.  The extension opens one when it connects to a kernel (that
works once the bridge is registered, e.g. after a page reload); :meth:`FrontendBridge.register`
opens one towards the front end (that covers ``%load_ext`` running after the page loaded).  A
comm counts as connected only once the front end has said ``hello`` on it, so a headless run
(nbclient, papermill), where nobody answers, never reports ``connected``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..block_kind import BlockKind

log = logging.getLogger(__name__)

TARGET_NAME = "jupyter_di"
PROTOCOL_VERSION = 1

#: Requests the extension may send, each answered by one ``ack``.
REQUEST_TYPES = ("run_pipeline", "run_block", "request_graph", "request_run")
#: Values a block's ``status`` may take in ``graph`` and ``status`` messages.
BLOCK_STATUSES = ("pending", "running", "done", "failed", "skipped", "idle")
"""``BlockStatus`` values, plus ``idle``: a block of the notebook that has not run in this kernel."""
BLOCK_KINDS = tuple(kind.value for kind in BlockKind)

Handler = Callable[[dict[str, Any]], Any]


def _default_comm_factory(target_name: str, data: dict[str, Any]) -> Any:
    """Open a kernel-initiated comm with ipykernel's Comm class (via the ``comm`` package)."""
    import comm  # ipykernel patches comm.create_comm to build its own Comm

    return comm.create_comm(target_name=target_name, data=data)


class FrontendBridge:
    """The kernel's end of the ``jupyter_di`` comm; every send is a no-op without a front end."""

    def __init__(
        self,
        kernel: Any = None,
        comm_factory: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self.kernel = kernel
        self._comm_factory = comm_factory or _default_comm_factory
        self._comms: dict[str, Any] = {}  # comm_id -> comm
        self._greeted: set[str] = set()  # comm ids on which the front end said hello
        self._handlers: dict[str, Handler] = {}
        # The last graph and statuses, replayed to a front end that connects later (page reload).
        self._graph: list[dict[str, Any]] | None = None
        self._statuses: dict[str, dict[str, Any]] = {}
        self._runs: list[dict[str, Any]] | None = None  # the newest runs of the run history
        #: Failures the front end reported for our messages (e.g. an unknown cell id), newest last.
        self.frontend_errors: deque[dict[str, Any]] = deque(maxlen=50)
        # Status messages may come from worker threads (parallel streams) while the main thread
        # opens or closes comms.
        self._lock = threading.Lock()

    # -- wiring ---------------------------------------------------------------------------

    def register(self, offer: bool = True) -> bool:
        """Register the comm target and (``offer``) open a comm to the front end; False without a kernel.

        Why ``offer``: a comm the kernel opens reaches every client, and the nbclient-based
        ones (nbconvert, papermill, ``jupyter execute``) log ``No handler found for comm
        target 'jupyter_di'`` for it.  The session offers only to a notebook front end (its
        execute requests carry a cell id; nbclient's carry none), which is where the extension
        may be waiting for it.
        """
        manager = getattr(self.kernel, "comm_manager", None)
        if manager is None:
            return False
        manager.register_target(TARGET_NAME, self._on_comm_open)
        if not offer:
            return True
        try:
            comm = self._comm_factory(TARGET_NAME, {"type": "hello", "version": PROTOCOL_VERSION})
        except Exception:  # noqa: BLE001 - no front end able to take comms: stay unconnected
            log.debug("could not open a jupyter_di comm to the front end", exc_info=True)
            return True
        self._adopt(comm, greeted=False)
        return True

    def on_request(self, type_name: str, handler: Handler) -> None:
        """Call ``handler(message)`` for each ``type_name`` request from the extension.

        The handler runs inside the comm message handler, i.e. on the kernel's shell thread like
        a cell execution; its return value is ignored, an exception becomes ``ack`` with
        ``success: false`` and the exception's message.
        """
        if type_name not in REQUEST_TYPES:
            raise ValueError(f"unknown request type {type_name!r}; expected one of {REQUEST_TYPES}")
        self._handlers[type_name] = handler

    @property
    def connected(self) -> bool:
        """True when at least one front end with the extension said hello on an open comm."""
        with self._lock:
            return bool(self._greeted)

    # -- kernel -> extension --------------------------------------------------------------

    def replace_cell_source(self, cell_id: str, source: str) -> bool:
        """Replace the source of the cell whose id is ``cell_id``; True when sent to a front end."""
        return self._send({"type": "replace_cell_source", "cell_id": cell_id, "source": source})

    def set_cell_metadata(self, cell_id: str, key: str, value: Any) -> bool:
        """Set ``metadata[key] = value`` on the cell ``cell_id``; True when sent to a front end."""
        return self._send({"type": "set_cell_metadata", "cell_id": cell_id, "key": key, "value": value})

    def publish_graph(self, blocks: list[dict[str, Any]]) -> None:
        """Send the whole block graph (see docs/comm-protocol.md for a block's fields)."""
        normalised = [_normalise_block(b) for b in blocks]
        with self._lock:
            self._graph = normalised
            self._statuses = {}
        self._send({"type": "graph", "blocks": normalised})

    def publish_status(
        self,
        name: str,
        status: str,
        duration_s: float | None = None,
        message: str | None = None,
    ) -> None:
        """Send one block's status change (pending, running, done, failed, ...)."""
        if status not in BLOCK_STATUSES:
            raise ValueError(f"unknown block status {status!r}; expected one of {BLOCK_STATUSES}")
        msg = {"type": "status", "name": name, "status": status, "duration_s": duration_s, "message": message}
        with self._lock:
            self._statuses[name] = msg
        self._send(msg)

    def publish_runs(self, runs: list[dict[str, Any]]) -> None:
        """Send the newest runs of the run history (the side panel's Runs view), newest first.

        Each run: ``id``, ``started``, ``ended``, ``origin``, ``status``, ``rows``, ``error`` (the
        first failed block's, or null).  A run started from the side panel has no cell to show
        its report in; this list is where the user finds it.
        """
        with self._lock:
            self._runs = list(runs)
        self._send({"type": "runs", "runs": list(runs)})

    def send_run(self, run_id: int, run: dict[str, Any] | None) -> None:
        """Send one run's whole record (``jupyter-di runs show``'s content), asked for by ``request_run``
        when the user clicks the run in the Runs view; ``run`` None: no such run of this notebook."""
        self._send({"type": "run", "id": run_id, "run": run})

    # -- internals ------------------------------------------------------------------------

    def _send(self, msg: dict[str, Any], only: Any = None) -> bool:
        with self._lock:
            targets = [only] if only is not None else [self._comms[i] for i in self._greeted]
        sent = False
        for comm in targets:
            try:
                comm.send(msg)
                sent = True
            except Exception:  # noqa: BLE001 - a dead comm must not break the run
                log.debug("jupyter_di comm send failed", exc_info=True)
        return sent

    def _adopt(self, comm: Any, greeted: bool) -> None:
        comm_id = comm.comm_id
        with self._lock:
            self._comms[comm_id] = comm
            if greeted:
                self._greeted.add(comm_id)
        comm.on_msg(self._on_msg_for(comm))
        comm.on_close(lambda _msg, cid=comm_id: self._forget(cid))

    def _forget(self, comm_id: str) -> None:
        with self._lock:
            self._comms.pop(comm_id, None)
            self._greeted.discard(comm_id)

    def _on_comm_open(self, comm: Any, open_msg: dict[str, Any]) -> None:
        """Target callback: the extension opened a comm and said hello in the open data."""
        data = open_msg.get("content", {}).get("data") or {}
        self._adopt(comm, greeted=False)
        self._hello(comm, data)

    def _on_msg_for(self, comm: Any) -> Callable[[dict[str, Any]], None]:
        def on_msg(msg: dict[str, Any]) -> None:
            data = msg.get("content", {}).get("data") or {}
            self._dispatch(comm, data)

        return on_msg

    def _hello(self, comm: Any, data: dict[str, Any]) -> None:
        version = data.get("version")
        if data.get("type") != "hello" or version != PROTOCOL_VERSION:
            error = (
                f"jupyter_di protocol version {version!r} is not supported by the kernel "
                f"(expects {PROTOCOL_VERSION}); reinstall jupyter-di so both sides match"
            )
            self._send(_ack("hello", False, error), only=comm)
            return
        with self._lock:
            self._greeted.add(comm.comm_id)
        self._send({**_ack("hello", True), "version": PROTOCOL_VERSION}, only=comm)
        self._replay(comm, even_empty=False)

    def _replay(self, comm: Any, even_empty: bool) -> None:
        """Send the last graph and every status since, so a late front end catches up."""
        with self._lock:
            graph, statuses, runs = self._graph, list(self._statuses.values()), self._runs
        if graph is not None or even_empty:
            self._send({"type": "graph", "blocks": graph or []}, only=comm)
        for status in statuses:
            self._send(status, only=comm)
        if runs is not None:
            self._send({"type": "runs", "runs": runs}, only=comm)

    def _dispatch(self, comm: Any, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "hello":
            self._hello(comm, data)
            return
        if kind == "ack":
            if not data.get("success", True):
                self.frontend_errors.append(data)
                log.warning("jupyter_di front end: %s failed: %s", data.get("request_type"), data.get("error"))
            return
        if kind not in REQUEST_TYPES:
            self._send(_ack(str(kind), False, f"unknown jupyter_di request type {kind!r}"), only=comm)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            if kind == "request_graph":
                self._send(_ack(kind, True), only=comm)
                self._replay(comm, even_empty=True)
                return
            error = f"the kernel has no handler for {kind}; run `%load_ext jupyter_di` first"
            self._send(_ack(kind, False, error), only=comm)
            return
        try:
            handler(data)
        except Exception as exc:  # noqa: BLE001 - reported to the front end, not swallowed
            log.debug("jupyter_di handler for %s failed", kind, exc_info=True)
            self._send(_ack(kind, False, str(exc) or type(exc).__name__), only=comm)
            return
        self._send(_ack(kind, True), only=comm)


def _ack(request_type: str, success: bool, error: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "ack", "request_type": request_type, "success": success}
    if error is not None:
        msg["error"] = error
    return msg


def _normalise_block(block: dict[str, Any]) -> dict[str, Any]:
    """Give a graph block every field of the protocol, so the front end never guesses."""
    kind = block.get("kind", "python")
    status = block.get("status", "idle")
    if kind not in BLOCK_KINDS:
        raise ValueError(f"block {block.get('name')!r}: unknown kind {kind!r}; expected one of {BLOCK_KINDS}")
    if status not in BLOCK_STATUSES:
        raise ValueError(f"block {block.get('name')!r}: unknown status {status!r}; expected one of {BLOCK_STATUSES}")
    return {
        "name": block["name"],
        "kind": str(kind),
        "upstream": list(block.get("upstream") or []),
        "cell_id": block.get("cell_id"),
        "status": status,
        "duration_s": block.get("duration_s"),
        "message": block.get("message"),
    }


_bridges: dict[int, FrontendBridge] = {}


def get_bridge(kernel: Any = None, offer: bool = True) -> FrontendBridge:
    """The one registered bridge of ``kernel`` (created on first use); unregistered without a kernel.

    Registering the comm target twice would orphan the first bridge's comms, so magics and
    notebook code share this instance.
    """
    if kernel is None:
        return FrontendBridge(None)
    bridge = _bridges.get(id(kernel))
    if bridge is None or bridge.kernel is not kernel:
        bridge = FrontendBridge(kernel)
        bridge.register(offer=offer)
        _bridges[id(kernel)] = bridge
    return bridge
