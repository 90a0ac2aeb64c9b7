"""Kernel side of the jupyter_di comm, without a browser: exact messages sent, handler dispatch."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from jupyter_di.notebook.comm import PROTOCOL_VERSION, TARGET_NAME, FrontendBridge, get_bridge

_ids = itertools.count()


class FakeComm:
    """Records what the kernel sends; lets a test play the front end's messages."""

    def __init__(self, open_data: dict[str, Any] | None = None) -> None:
        self.comm_id = f"comm-{next(_ids)}"
        self.open_data = open_data
        self.sent: list[dict[str, Any]] = []
        self._on_msg = None
        self._on_close = None

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(data)

    def on_msg(self, callback) -> None:  # noqa: ANN001
        self._on_msg = callback

    def on_close(self, callback) -> None:  # noqa: ANN001
        self._on_close = callback

    # front end side
    def receive(self, data: dict[str, Any]) -> None:
        self._on_msg({"content": {"comm_id": self.comm_id, "data": data}})

    def close_from_frontend(self) -> None:
        self._on_close({"content": {"comm_id": self.comm_id, "data": {}}})


class FakeCommManager:
    def __init__(self) -> None:
        self.targets: dict[str, Any] = {}

    def register_target(self, name: str, callback) -> None:  # noqa: ANN001
        self.targets[name] = callback


class FakeKernel:
    def __init__(self) -> None:
        self.comm_manager = FakeCommManager()


class Factory:
    """Kernel-initiated comms: what register() opens towards the front end."""

    def __init__(self) -> None:
        self.opened: list[FakeComm] = []

    def __call__(self, target_name: str, data: dict[str, Any]) -> FakeComm:
        assert target_name == TARGET_NAME
        comm = FakeComm(open_data=data)
        self.opened.append(comm)
        return comm


HELLO = {"type": "hello", "version": PROTOCOL_VERSION}


def frontend_opens(kernel: FakeKernel, data: dict[str, Any] | None = None) -> FakeComm:
    """Play the extension opening a comm on the target, with hello in the open data."""
    comm = FakeComm()
    kernel.comm_manager.targets[TARGET_NAME](comm, {"content": {"comm_id": comm.comm_id, "data": data or HELLO}})
    return comm


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def factory() -> Factory:
    return Factory()


@pytest.fixture
def bridge(kernel: FakeKernel, factory: Factory) -> FrontendBridge:
    b = FrontendBridge(kernel, comm_factory=factory)
    assert b.register() is True
    return b


def test_no_kernel_every_send_is_a_noop() -> None:
    b = FrontendBridge(None)
    assert b.register() is False
    assert b.connected is False
    assert b.replace_cell_source("c1", "x = 1") is False
    assert b.set_cell_metadata("c1", "jupyter_di", {"a": 1}) is False
    assert b.publish_graph([{"name": "a"}]) is None
    assert b.publish_status("a", "done", 0.5) is None
    assert get_bridge(None).connected is False


def test_register_offers_a_comm_but_is_not_connected_until_hello(bridge: FrontendBridge, kernel: FakeKernel, factory: Factory) -> None:
    assert TARGET_NAME in kernel.comm_manager.targets
    [offered] = factory.opened
    assert offered.open_data == HELLO
    # nobody answered (headless run): not connected, nothing sent
    assert bridge.connected is False
    assert bridge.replace_cell_source("c1", "y") is False
    assert offered.sent == []
    # the extension answers hello on the kernel's comm
    offered.receive(HELLO)
    assert bridge.connected is True
    assert offered.sent == [{"type": "ack", "request_type": "hello", "success": True, "version": 1}]
    assert bridge.replace_cell_source("c1", "y = 2") is True
    assert offered.sent[-1] == {"type": "replace_cell_source", "cell_id": "c1", "source": "y = 2"}


def test_frontend_opened_comm_gets_exact_messages(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    comm = frontend_opens(kernel)
    assert bridge.connected is True
    assert bridge.replace_cell_source("cell-a", "%%di_source s\nsource: duckdb\n") is True
    assert bridge.set_cell_metadata("cell-a", "jupyter_di", {"streams": ["orders"]}) is True
    bridge.publish_graph(
        [
            {"name": "creds", "kind": "python", "cell_id": "c0"},
            {"name": "shop", "kind": "source", "upstream": ("creds",), "cell_id": "c1", "status": "idle"},
        ]
    )
    bridge.publish_status("shop", "done", duration_s=1.25, message="2 streams, 10 rows")
    assert comm.sent == [
        {"type": "ack", "request_type": "hello", "success": True, "version": 1},
        {"type": "replace_cell_source", "cell_id": "cell-a", "source": "%%di_source s\nsource: duckdb\n"},
        {"type": "set_cell_metadata", "cell_id": "cell-a", "key": "jupyter_di", "value": {"streams": ["orders"]}},
        {
            "type": "graph",
            "blocks": [
                {"name": "creds", "kind": "python", "upstream": [], "cell_id": "c0", "status": "idle", "duration_s": None, "message": None},
                {
                    "name": "shop",
                    "kind": "source",
                    "upstream": ["creds"],
                    "cell_id": "c1",
                    "status": "idle",
                    "duration_s": None,
                    "message": None,
                },
            ],
        },
        {"type": "status", "name": "shop", "status": "done", "duration_s": 1.25, "message": "2 streams, 10 rows"},
    ]


def test_wrong_protocol_version_is_refused(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    comm = frontend_opens(kernel, {"type": "hello", "version": 99})
    assert bridge.connected is False
    [ack] = comm.sent
    assert ack["type"] == "ack" and ack["request_type"] == "hello" and ack["success"] is False
    assert "protocol version 99" in ack["error"] and "reinstall jupyter-di" in ack["error"]
    assert bridge.replace_cell_source("c", "x") is False


def test_closed_comm_is_forgotten(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    comm = frontend_opens(kernel)
    comm.close_from_frontend()
    assert bridge.connected is False
    assert bridge.replace_cell_source("c", "x") is False
    assert len(comm.sent) == 1  # only the hello ack


def test_late_frontend_gets_last_graph_and_statuses_replayed(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    bridge.publish_graph([{"name": "a", "kind": "source", "status": "pending"}])
    bridge.publish_status("a", "failed", 0.1, "wrong password for user etl")
    comm = frontend_opens(kernel)
    assert [m["type"] for m in comm.sent] == ["ack", "graph", "status"]
    assert comm.sent[1]["blocks"][0]["name"] == "a"
    assert comm.sent[2] == {"type": "status", "name": "a", "status": "failed", "duration_s": 0.1, "message": "wrong password for user etl"}


def test_handlers_dispatch_and_ack(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    calls: list[dict[str, Any]] = []
    bridge.on_request("run_pipeline", calls.append)
    bridge.on_request("run_block", calls.append)
    comm = frontend_opens(kernel)
    comm.sent.clear()
    comm.receive({"type": "run_pipeline", "blocks": ["a", "b"]})
    comm.receive({"type": "run_block", "name": "b"})
    assert calls == [{"type": "run_pipeline", "blocks": ["a", "b"]}, {"type": "run_block", "name": "b"}]
    assert comm.sent == [
        {"type": "ack", "request_type": "run_pipeline", "success": True},
        {"type": "ack", "request_type": "run_block", "success": True},
    ]


def test_handler_errors_and_missing_handlers_are_acked_with_the_reason(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    def boom(msg: dict[str, Any]) -> None:
        raise RuntimeError(f"block {msg['name']!r} does not exist")

    bridge.on_request("run_block", boom)
    comm = frontend_opens(kernel)
    comm.sent.clear()
    comm.receive({"type": "run_block", "name": "nope"})
    comm.receive({"type": "run_pipeline"})
    comm.receive({"type": "drop_tables"})
    assert comm.sent == [
        {"type": "ack", "request_type": "run_block", "success": False, "error": "block 'nope' does not exist"},
        {
            "type": "ack",
            "request_type": "run_pipeline",
            "success": False,
            "error": "the kernel has no handler for run_pipeline; run `%load_ext jupyter_di` first",
        },
        {"type": "ack", "request_type": "drop_tables", "success": False, "error": "unknown jupyter_di request type 'drop_tables'"},
    ]


def test_request_graph_without_handler_answers_from_the_cache(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    comm = frontend_opens(kernel)
    bridge.publish_graph([{"name": "x", "kind": "destination", "upstream": ["a"], "cell_id": "c9"}])
    comm.sent.clear()
    comm.receive({"type": "request_graph"})
    assert comm.sent[0] == {"type": "ack", "request_type": "request_graph", "success": True}
    assert comm.sent[1]["type"] == "graph" and comm.sent[1]["blocks"][0]["upstream"] == ["a"]


def test_request_graph_handler_wins_over_cache(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    bridge.on_request("request_graph", lambda _msg: bridge.publish_graph([{"name": "fresh"}]))
    comm = frontend_opens(kernel)
    comm.sent.clear()
    comm.receive({"type": "request_graph"})
    assert [m["type"] for m in comm.sent] == ["graph", "ack"]
    assert comm.sent[0]["blocks"][0]["name"] == "fresh"


def test_frontend_failure_acks_are_kept(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    comm = frontend_opens(kernel)
    comm.receive(
        {"type": "ack", "request_type": "replace_cell_source", "success": False, "error": "no cell with id 'zzz' in this notebook"}
    )
    comm.receive({"type": "ack", "request_type": "set_cell_metadata", "success": True})
    assert list(bridge.frontend_errors) == [
        {"type": "ack", "request_type": "replace_cell_source", "success": False, "error": "no cell with id 'zzz' in this notebook"}
    ]


def test_every_open_frontend_receives_messages(bridge: FrontendBridge, kernel: FakeKernel) -> None:
    one, two = frontend_opens(kernel), frontend_opens(kernel)
    bridge.publish_status("a", "running")
    assert one.sent[-1] == two.sent[-1] == {"type": "status", "name": "a", "status": "running", "duration_s": None, "message": None}


def test_invalid_values_are_rejected(bridge: FrontendBridge) -> None:
    with pytest.raises(ValueError, match="unknown request type 'run_everything'"):
        bridge.on_request("run_everything", print)
    with pytest.raises(ValueError, match="unknown block status 'ok'"):
        bridge.publish_status("a", "ok")
    with pytest.raises(ValueError, match="block 'a': unknown kind 'sql'"):
        bridge.publish_graph([{"name": "a", "kind": "sql"}])


def test_get_bridge_is_one_per_kernel(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[FakeComm] = []
    monkeypatch.setattr(
        "jupyter_di.notebook.comm._default_comm_factory",
        lambda target, data: opened.append(FakeComm(data)) or opened[-1],
    )
    first = get_bridge(kernel)
    assert get_bridge(kernel) is first
    assert kernel.comm_manager.targets[TARGET_NAME] == first._on_comm_open
    assert len(opened) == 1
