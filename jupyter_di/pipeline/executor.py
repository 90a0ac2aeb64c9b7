"""Runs a plan of blocks in dependency order, independent blocks concurrently.

Why threads: most blocks wait on databases, APIs and subprocesses, which
release the GIL; threads also share the notebook namespace and outputs without
pickling.  The pool is bounded (``max_workers``).  A failed block marks every
downstream block in the plan as skipped, with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from ..redaction import redact, redact_exception
from .graph import Graph
from .observer import RunObserver
from .run_record import DONE, FAILED, PENDING, RUNNING, SKIPPED, BlockRun, RunReport

BlockFunction = Callable[[str, BlockRun], None]
"""Runs one block by name; raises to fail it.  May fill ``run.summary``/``run.cached``."""


def describe_error(exc: BaseException) -> str:
    """The error recorded for a failed block, secrets masked (it reaches the kernel, the CLI, the
    lab extension and saved notebooks)."""
    from ..errors import DIError

    text = str(exc) if isinstance(exc, DIError) else f"{type(exc).__name__}: {exc}"
    return redact(text)


def _redact_warnings(summary: dict) -> None:
    for warning in summary.get("warnings") or []:
        if isinstance(warning, dict) and isinstance(warning.get("message"), str):
            warning["message"] = redact(warning["message"])


def _failed_upstream(exc: BaseException) -> str | None:
    from ..errors import UpstreamFailed

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UpstreamFailed):
            return seen.upstream
        seen = seen.__cause__ or seen.__context__
    return None


class Executor:
    def __init__(self, max_workers: int = 4, observers: list[RunObserver] | None = None) -> None:
        self.max_workers = max(1, max_workers)
        self.observers = list(observers or [])

    tick_seconds = 0.5
    """How often observers get ``tick()`` on the calling thread while blocks run (live displays)."""

    def _tick(self) -> None:
        for observer in self.observers:
            try:
                observer.tick()
            except Exception:  # noqa: BLE001 - a broken display must never break a run
                pass

    def _notify(self, run: BlockRun) -> None:
        for observer in self.observers:
            try:
                observer.block_changed(run)
            except Exception:  # a broken display must never break a run
                pass

    def run(
        self,
        graph: Graph,
        plan: list[str],
        run_block: BlockFunction,
        streams_from: Callable[[str, str], bool] | None = None,
        fused: Mapping[str, str] | None = None,
    ) -> RunReport:
        """Run ``plan`` (a topologically ordered list of block names).

        ``streams_from(child, parent)`` says that ``child`` may start as soon as
        ``parent`` has published its outputs (``BlockRun.publish``) instead of
        when it is done: a destination block tailing a running source block.
        If the parent then fails, the child fails with it (its reads raise).

        ``fused`` (parent -> child, ``fusion.py``): a child that writes its parent's streams
        straight from the source starts the moment the parent publishes, on the parent's slot even
        when every worker is busy: the parent waits for it to take them.
        """
        fused = fused or {}
        started = time.perf_counter()
        report = RunReport(runs={name: BlockRun(name) for name in plan})
        in_plan = set(plan)
        waiting_on = {n: {u for u in graph[n].upstream if u in in_plan} for n in plan}
        children: dict[str, list[str]] = {n: [] for n in plan}
        for n in plan:
            for u in waiting_on[n]:
                children[u].append(n)
        for run in report.runs.values():
            self._notify(run)
        report.planning_seconds = time.perf_counter() - started

        published: dict[Future, str] = {}

        def execute(name: str) -> None:
            run = report.runs[name]
            try:
                run_block(name, run)
            except BaseException as exc:  # noqa: BLE001 - reported, never swallowed silently
                upstream = _failed_upstream(exc)
                if upstream is not None:  # stopped by the upstream it streamed from: not its own failure
                    run.finish(SKIPPED)
                    run.reason = f"upstream '{upstream}' failed"
                    return
                run.finish(FAILED, describe_error(redact_exception(exc)))
                run.exception = exc  # secrets masked in place: the kernel may raise it
            else:
                _redact_warnings(run.summary)
                run.finish(DONE)

        def skip_downstream(name: str, reason: str) -> None:
            for child in children[name]:
                run = report.runs[child]
                if run.status == PENDING:
                    run.status, run.reason = SKIPPED, reason
                    self._notify(run)
                    skip_downstream(child, reason)

        ready = [n for n in plan if not waiting_on[n]]
        running: dict[Future, str] = {}
        extra = sum(1 for parent, child in fused.items() if parent in report.runs and child in report.runs)
        with ThreadPoolExecutor(max_workers=self.max_workers + extra, thread_name_prefix="jupyter-di") as pool:

            def start(name: str) -> None:
                run = report.runs[name]
                if streams_from is not None and any(streams_from(c, name) for c in children[name]):
                    signal: Future = Future()
                    run.on_publish = lambda signal=signal: signal.done() or signal.set_result(None)
                    published[signal] = name
                run.start()
                self._notify(run)
                running[pool.submit(execute, name)] = name

            while ready or running:
                while ready and len(running) < self.max_workers:
                    name = ready.pop(0)
                    if report.runs[name].status == PENDING:
                        start(name)
                if not running:
                    break
                finished, _ = wait([*running, *published], timeout=self.tick_seconds, return_when=FIRST_COMPLETED)
                self._tick()
                for future in finished:
                    if future in published:
                        name = published.pop(future)
                        for child in children[name]:
                            if streams_from is not None and streams_from(child, name):
                                waiting_on[child].discard(name)
                                if not waiting_on[child] and report.runs[child].status == PENDING:
                                    if fused.get(name) == child:
                                        start(child)
                                    else:
                                        ready.append(child)
                        continue
                    if future not in running:
                        continue  # the publication signal of a block whose end was handled first
                    name = running.pop(future)
                    for signal in [f for f, n in published.items() if n == name]:
                        del published[signal]  # finished without publishing
                    run = report.runs[name]
                    self._notify(run)
                    if run.status == FAILED:
                        skip_downstream(name, f"upstream '{name}' failed")
                        continue
                    if run.status == SKIPPED:
                        skip_downstream(name, run.reason or f"upstream '{name}' was skipped")
                        continue
                    for child in children[name]:
                        waiting_on[child].discard(name)
                        if not waiting_on[child] and report.runs[child].status == PENDING:
                            ready.append(child)
        report.total_seconds = time.perf_counter() - started
        assert all(r.status != RUNNING for r in report.runs.values())
        return report
