"""The executor: dependency order, concurrency bound, failures skip their downstream."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from jupyter_di.pipeline.block import Block
from jupyter_di.pipeline.executor import Executor
from jupyter_di.pipeline.graph import Graph


def graph_of(edges):
    return Graph(Block(name=n, kind="python", body="", upstream=u) for n, u in edges.items())


class Overlap:
    """The most blocks that ran at one moment."""

    def __init__(self):
        self.now = self.max = 0
        self._lock = threading.Lock()

    @contextmanager
    def running(self):
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1


class Recorder:
    def __init__(self):
        self.events = []

    def block_changed(self, run):
        self.events.append((run.name, run.status))


def test_runs_in_dependency_order_and_independent_blocks_concurrently():
    graph = graph_of({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    finished = []
    overlap = Overlap()

    def run_block(name, run):
        with overlap.running():
            time.sleep(0.15 if name in "bc" else 0.01)
        finished.append(name)

    report = Executor(max_workers=4).run(graph, graph.topological_order(), run_block)
    assert report.ok
    assert finished[0] == "a" and finished[-1] == "d"
    assert set(finished[1:3]) == {"b", "c"}
    assert overlap.max == 2  # b and c overlapped
    assert all(r.status == "done" and r.duration is not None for r in report.runs.values())


def test_pool_bound_is_respected():
    graph = graph_of({f"n{i}": [] for i in range(6)})
    overlap = Overlap()

    def run_block(name, run):
        with overlap.running():
            time.sleep(0.05)

    Executor(max_workers=2).run(graph, graph.topological_order(), run_block)
    assert overlap.max == 2


def test_failure_skips_downstream_with_reason_and_keeps_unrelated_blocks():
    graph = graph_of({"a": [], "b": ["a"], "c": ["b"], "x": []})
    recorder = Recorder()

    def run_block(name, run):
        if name == "a":
            raise ValueError("boom")

    report = Executor(max_workers=2, observers=[recorder]).run(graph, graph.topological_order(), run_block)
    assert not report.ok
    assert report.runs["a"].status == "failed" and report.runs["a"].error == "ValueError: boom"
    assert report.runs["b"].status == "skipped" and report.runs["b"].reason == "upstream 'a' failed"
    assert report.runs["c"].status == "skipped" and report.runs["c"].reason == "upstream 'a' failed"
    assert report.runs["x"].status == "done"
    message = report.failure_message()
    assert "block 'a' failed: ValueError: boom" in message and "'b' (upstream 'a' failed)" in message
    assert ("a", "running") in recorder.events and ("a", "failed") in recorder.events and ("c", "skipped") in recorder.events
