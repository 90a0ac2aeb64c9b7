"""A notebook's pipeline: its graph, the blocks' outputs, staleness, and runs.

Shared by the kernel (one long-lived ``Pipeline`` per notebook session) and
the CLI (one per ``jupyter-di run``).  Staleness: a block is stale when its
source, an upstream output or the user's variables changed since its last
successful run; otherwise its cached output is reused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..block_kind import BlockKind
from ..errors import ConfigError, GraphError
from ..integration.context import RunContext
from ..integration.reduced import ReducedOutput, pop_child_column, reduced_for_destination
from ..integration.runner import BlockResult
from ..run_dirs import RunDir
from ..settings import SETTINGS, Settings
from ..state.run_lock import run_lock, waiting_message
from ..state.store import StateStore
from .block import Block
from .block_body import run_block_body
from .dask_executor import close_dask, dask_runner
from .dynamic import DynamicRun, scope_of, split_child
from .executor import Executor
from .fusion import fused_pairs
from .graph import Graph
from .observer import RunObserver
from .replica import effective_block
from .run_record import FAILED, BlockRun, RunReport


class Pipeline:
    def __init__(
        self,
        name: str,
        *,
        state_path: Path | str,
        namespace: dict[str, Any] | None = None,
        settings: Settings = SETTINGS,
        identified: bool = True,
        keep_outputs: bool = True,
    ) -> None:
        self.name = name
        self.identified = identified
        """False when a kernel cannot tell which notebook it runs: INCREMENTAL streams then refuse to run."""
        self.keep_outputs = keep_outputs
        """False when nothing reads a block's output once its run is over (``jupyter-di run``): a source
        block whose one reader is a destination may then hand its streams over unspilled (``fusion.py``)."""
        self.graph = Graph()
        self.settings = settings
        self.namespace: dict[str, Any] = namespace if namespace is not None else {}
        self.state = StateStore(state_path)
        self.outputs: dict[str, Any] = {}
        self.summaries: dict[str, dict[str, Any]] = {}
        self.resolved: dict[str, tuple[str, Any]] = {}
        """block -> (source hash, what its source/destination cell resolved to) at its last run"""
        self.versions: dict[str, int] = {}
        self.fingerprints: dict[str, str] = {}
        self.last_status: dict[str, BlockRun] = {}
        self.observers: list[RunObserver] = []
        self._run_dir = RunDir("run")  # spill files; a killed run's folder is removed by the next run (run_dirs.py)
        self.work_dir = self._run_dir.path
        self._lock = threading.Lock()

    def close(self) -> None:
        close_dask(self)
        self._run_dir.close()

    # -- definition ---------------------------------------------------------------------
    def define(self, block: Block) -> None:
        """Register (or redefine) a block; unknown upstreams and cycles are refused."""
        previous = self.graph.blocks.get(block.name)
        replaced_names = [n for n, b in self.graph.blocks.items() if block.cell_id and b.cell_id == block.cell_id and n != block.name]
        self.graph.add(block)
        try:
            self.graph.validate([block.name])
        except GraphError:
            self.graph.remove(block.name)
            if previous is not None:
                self.graph.blocks[block.name] = previous
            raise
        for old in replaced_names:
            self.forget(old)

    def forget(self, name: str) -> None:
        self.graph.remove(name)
        for store in (self.outputs, self.versions, self.fingerprints, self.summaries, self.last_status, self.resolved):
            store.pop(name, None)

    def effective(self, block: Block) -> Block:
        """What ``block`` runs: a replica runs its original's body (``pipeline/replica.py``)."""
        return effective_block(self.graph.blocks, block)

    # -- staleness ------------------------------------------------------------------------
    def fingerprint(self, name: str, params: dict[str, Any]) -> str:
        block = self.graph[name]
        digest = hashlib.sha1(self.effective(block).source_hash().encode())
        digest.update(json.dumps(params, sort_keys=True, default=str).encode())
        for up in block.upstream:
            digest.update(f"{up}:{self.versions.get(up, 0)}".encode())
        return digest.hexdigest()

    def is_stale(self, name: str, params: dict[str, Any]) -> bool:
        return self.fingerprints.get(name) != self.fingerprint(name, params)

    def plan(self, targets: Iterable[str], params: dict[str, Any], *, only_stale_ancestors: bool) -> list[str]:
        """Targets plus the ancestors they need, in dependency order.

        With ``only_stale_ancestors`` an ancestor runs only when it is stale, or
        when one of its own upstreams runs (its input will change).
        """
        children = {t: self._fanned_block(t) for t in targets if t not in self.graph}  # `--blocks sync:t1`: one child
        for t, template in children.items():
            if template is None:
                raise GraphError(f"no block named {t!r}.", fix=f"known blocks: {', '.join(self.graph.blocks) or 'none'}.")
        self.graph.validate()
        scope = scope_of(self.graph)
        for t, template in children.items():
            if template not in scope.root_of:
                raise GraphError(f"no block named {t!r}.", fix=f"{template!r} does not run once per item of a dynamic block.")
        targets = [children.get(t) or t for t in targets]
        wanted: set[str] = set(targets)
        for t in targets:
            wanted |= self.graph.ancestors(t)
        order = self.graph.topological_order(wanted)
        for name in order:  # a replica of an unknown block, or of a replica: one clear error before anything runs
            self.effective(self.graph[name])
        if children:  # the child's name stands for its fanned-out block in the plan: only that item runs
            order = [n for n in order if n not in children.values()] + list(children)
            position = {n: i for i, n in enumerate(self.graph.topological_order())}
            order.sort(key=lambda n: position[children.get(n) or n])
        if not only_stale_ancestors:
            return order
        chosen: list[str] = []
        for name in order:
            block = self.graph[name] if name in self.graph else None
            if (
                block is None
                or name in targets
                or self.is_stale(name, params)
                or name not in self.outputs
                or any(u in chosen for u in block.upstream)
            ):
                chosen.append(name)
        return chosen

    def _fanned_block(self, name: str) -> str | None:
        """The block a child name (``sync:t1``) belongs to, or None."""
        parts = split_child(name)
        return parts[0] if parts is not None and parts[0] in self.graph else None

    # -- running --------------------------------------------------------------------------
    def variables(self, params: dict[str, Any]) -> dict[str, Any]:
        variables: dict[str, Any] = {"execution_date": dt.datetime.now(dt.timezone.utc), "pipeline": self.name}
        variables.update(params)
        return variables

    def run(
        self,
        plan: list[str],
        *,
        params: dict[str, Any] | None = None,
        bookmark_overrides: dict[tuple[str, str], dict[str, Any]] | None = None,
        observers: list[RunObserver] | None = None,
    ) -> RunReport:
        """Run ``plan``; one run of a notebook at a time (``state/run_lock.py``): a second one waits
        and says so through the observers."""
        observers = list(observers or []) + self.observers

        def waiting(holder: int | None) -> None:
            message = waiting_message(self.name, holder)
            shown = False
            for observer in observers:
                try:
                    shown = observer.run_waiting(message) or shown
                except Exception:  # noqa: BLE001 - a display problem must not stop the run
                    pass
            if not shown:
                print(message, file=sys.stderr, flush=True)

        with run_lock(self.state.path, self.name, on_wait=waiting):
            return self._run(plan, dict(params or {}), bookmark_overrides or {}, observers)

    def _run(
        self,
        plan: list[str],
        params: dict[str, Any],
        bookmark_overrides: dict[tuple[str, str], dict[str, Any]],
        observers: list[RunObserver],
    ) -> RunReport:
        self._check_overrides(bookmark_overrides, plan)
        ctx = RunContext(
            pipeline=self.name,
            state=self.state,
            work_dir=self.work_dir,
            variables=self.variables(params),
            namespace=self.namespace,
            bookmark_overrides=dict(bookmark_overrides or {}),
            on_progress=lambda *a: self._stream_progress(observers, *a),
            consumers={
                name: [d for d in self.graph.downstream(name) if self.graph[d].kind == BlockKind.DESTINATION]
                for name, b in self.graph.blocks.items()
                if b.kind == BlockKind.SOURCE
            },
            max_parallel_streams=self.settings.max_parallel_streams,
            batch_size=self.settings.batch_size,
            identified=self.identified,
        )
        pending: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        in_plan = set(plan)
        finished: set[str] = set()
        live_outputs: dict[str, Any] = {}
        active: dict[str, BlockRun] = {}

        def publish(name: str, live_output: Any) -> None:
            with self._lock:
                live_outputs[name] = live_output
            active[name].publish()

        ctx.publish = publish
        remote = dask_runner(self, ctx)  # JupyterDI.executor = 'dask': blocks run as Dask tasks (dask_executor.py)
        streaming = remote is None or remote.streams  # on Dask only when the workers see the run folder (dask_live.py)
        if not streaming:
            ctx.publish = None  # a destination starts when its source is done

        def upstream_output(u: str) -> Any:
            with self._lock:
                if u in in_plan and u not in finished and u in live_outputs:
                    return live_outputs[u]  # a running source this destination streams from
                return self.outputs[u]

        scope = scope_of(self.graph)
        if not scope and not self.keep_outputs:  # a fused pair shares one process: one task on Dask (dask_executor.py)
            pairs = fused_pairs(self.graph, plan, self.effective)
            ctx.pass_through = pairs if remote is None else remote.fusable(pairs)
        dynamic = (
            DynamicRun(
                self.graph,
                plan,
                scope,
                self.outputs,
                effective=self.effective,
                observers=observers,
                consumers=ctx.consumers,
                overridden=[b for b, _ in bookmark_overrides if b not in self.graph],
            )
            if scope
            else None
        )

        def run_block(name: str, run: BlockRun) -> None:
            child = dynamic.block(name) if dynamic is not None else None
            block = child or self.effective(self.graph[name])
            active[name] = run
            inputs = dynamic.upstream_outputs(name, upstream_output) if dynamic is not None else None
            if inputs is None:
                missing = [u for u in block.upstream if u not in self.outputs and u not in live_outputs]
                if missing:
                    raise GraphError(
                        f"upstream block(s) {', '.join(missing)} have no output yet.", block=name, fix="run them first (or use %di_run)."
                    )
                inputs = {u: upstream_output(u) for u in block.upstream}
            if block.kind == BlockKind.DESTINATION and any(isinstance(v, ReducedOutput) for v in inputs.values()):
                block, inputs = self._reduce_for_destination(block, inputs)
            result = (remote.run_one if remote is not None else self._run_one)(block, inputs, ctx)
            with self._lock:
                finished.add(name)
                self.outputs[name] = result.output
                self.versions[name] = self.versions.get(name, 0) + 1
                if child is None:
                    self.fingerprints[name] = self.fingerprint(name, params)
                self.summaries[name] = result.summary
                if result.resolved is not None:
                    self.resolved[name] = (block.source_hash(), result.resolved)
                if result.pending_states:
                    pending[name] = result.pending_states
            run.summary = result.summary

        def execute(graph: Graph, names: list[str]) -> RunReport:
            streams_from = self.streams_from if dynamic is None else lambda c, p: self.streams_from(c, p, dynamic)
            return Executor(self.settings.max_workers, observers).run(
                graph, names, run_block, streams_from=streams_from if streaming else None, fused=ctx.pass_through
            )

        try:
            if dynamic is None:
                report = execute(self.graph, plan)
            else:
                dynamic.on_template_done = lambda template, names: self._collect_children(template, names, params)
                report = dynamic.run(execute)
        finally:
            if remote is not None:
                remote.close()
        ran = {n for n in report.runs if split_child(n) is None}
        for gone in [n for n in self.last_status if (split_child(n) or ("", ""))[0] in ran and n not in report.runs]:
            del self.last_status[gone]  # a child of an earlier run whose item is no longer listed
        for name, run in report.runs.items():
            self.last_status[name] = run
            if run.status == FAILED:
                self.fingerprints.pop(name, None)
        self._settle_bookmarks(pending, ctx, report.ok)
        return report

    def _check_overrides(self, overrides: dict[tuple[str, str], dict[str, Any]], plan: list[str]) -> None:
        """A one-run bookmark override that names no block of this run would be silently ignored."""
        for block, stream in overrides:
            where = f"--bookmark {block}.{stream}"
            cell = block if block in self.graph else self._fanned_block(block)  # `sync:acme`: a dynamic child
            if cell is None:
                raise ConfigError(
                    f"{where}: there is no block named {block!r}.", fix=f"known blocks: {', '.join(self.graph.blocks) or 'none'}."
                )
            if self.graph[cell].kind != BlockKind.SOURCE:
                raise ConfigError(
                    f"{where}: block {block!r} is a {self.graph[cell].kind} block; bookmarks belong to source blocks.", block=block
                )
            if block not in plan and cell not in plan:
                raise ConfigError(
                    f"{where}: block {block!r} does not run in this run.", block=block, fix="run it too (--blocks), or drop the override."
                )

    def _reduce_for_destination(self, block: Block, inputs: dict[str, Any]) -> tuple[Block, dict[str, Any]]:
        """A destination with --reduce-output: each stream of the children, in one table."""
        body, child_column = pop_child_column(block.body, block=block.name) if block.lang == "yaml" else (block.body, None)
        reduced = {
            up: reduced_for_destination(up, value, child_column=child_column, work_dir=self.work_dir, block=block.name)
            if isinstance(value, ReducedOutput)
            else value
            for up, value in inputs.items()
        }
        return dataclasses.replace(block, body=body), reduced

    def _collect_children(self, template: str, names: list[str], params: dict[str, Any]) -> None:
        """Every child of a fanned-out block succeeded: its output is theirs, in item order."""
        with self._lock:
            self.outputs[template] = ReducedOutput(names, [self.outputs.get(n) for n in names])
            self.versions[template] = self.versions.get(template, 0) + 1
            self.fingerprints[template] = self.fingerprint(template, params)

    def streams_from(self, child: str, parent: str, dynamic: DynamicRun | None = None) -> bool:
        """Whether ``child`` writes ``parent``'s streams while ``parent`` still reads them.

        Destination blocks in YAML stream from source blocks (a run then costs
        about max(read, write) instead of read + write).  Python blocks, and a
        YAML destination that reads an upstream's output in its config
        (``block_output``), wait for the finished output.
        """
        if dynamic is not None:
            if dynamic.is_reducer(child):
                return False  # it needs every child's whole output
            p = dynamic.block(parent) or self.effective(self.graph[parent])
            c = dynamic.block(child) or self.effective(self.graph[child])
        else:
            p, c = self.effective(self.graph[parent]), self.effective(self.graph[child])
        return p.kind == BlockKind.SOURCE and c.kind == BlockKind.DESTINATION and c.lang != "python" and "block_output" not in c.body

    def _run_one(self, block: Block, upstream_outputs: dict[str, Any], ctx: RunContext) -> BlockResult:
        return run_block_body(block, upstream_outputs, ctx)  # ctx.namespace is this notebook's namespace

    def _settle_bookmarks(self, pending: dict[str, list[tuple[str, dict[str, Any]]]], ctx: RunContext, ok: bool) -> None:
        """After a run: each stream's bookmark follows the destinations that really write it.

        A stream no destination takes (the source feeds only Python blocks, or every
        destination leaves the stream out with ``selected: false``) advances once the
        whole run succeeded; a stream some destination declined is recomputed from
        the destinations that do take it.
        """
        for source, states in pending.items():
            for stream, state in states:
                consumers = ctx.consumers_of(source, stream)
                if consumers:
                    if any(key[0] == source for key in ctx.declined):
                        self.state.settle(self.name, source, stream, consumers)
                elif ok:
                    self.state.set(self.name, source, stream, state)

    @staticmethod
    def _stream_progress(observers: list[RunObserver], block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
        for observer in observers:
            try:
                observer.stream_progress(block, stream, phase, rows, seconds)
            except Exception:  # noqa: BLE001 - a broken display must never break a run
                pass
