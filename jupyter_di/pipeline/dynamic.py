"""Dynamic blocks (``--dynamic``): a block whose output is a list fans its downstream blocks out.

Semantics (Mage's, see docs/python-blocks.md for where we differ):

- A dynamic block's output is a list of items, or the pair ``[items, metadata]`` where
  ``metadata[i]`` is a dict that may name item *i* with ``block_uuid``.
- Every direct downstream block of a dynamic block runs once per item, as a *child* named
  ``BLOCK:ITEM_ID`` (the item's ``block_uuid``, else its index).  The item is the child's
  input under the dynamic block's name (``block_output('tenants', 'host')``, a positional
  argument); the child's state (bookmarks) is kept under its own name.
- A block downstream of a child runs once per item too (``sync:t1`` feeds ``load:t1``), unless
  it or the child carries ``--reduce-output``: then it runs once and gets the list of all
  children's outputs, in item order.
- A failed child skips only the blocks downstream of that child; a block that reduces the
  children's outputs is skipped too (it would otherwise see a list with an item missing).

How: the items are known only when the dynamic block has run, so the run goes in *phases*.
Each phase hands the executor every planned block that does not wait on a fan-out not yet
expanded; when a dynamic block is done its children replace the blocks it fans out.  A run
without dynamic blocks is one phase, exactly as before.  Children run in parallel on the
executor's pool (``max_workers``).

Item ids become part of block names, state keys and scratch-file paths, so they are
escaped to ``[A-Za-z0-9_-]`` (everything else as ``%XX`` per UTF-8 byte, at most 80 characters
before a short hash): never a path separator, a dot, a quote or a space.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ConfigError, DIError, GraphError
from ..integration.outputs import StreamOutput
from ..integration.reduced import ReducedOutput
from .block import Block, BlockKind
from .graph import Graph
from .observer import RunObserver
from .run_record import DONE, FAILED, PENDING, RUNNING, SKIPPED, BlockRun, RunReport

SEPARATOR = ":"
_SAFE = re.compile(r"[A-Za-z0-9_-]")
MAX_ID = 80


def escape_item_id(raw: Any) -> str:
    """An item id that is safe in a block name, a state key, a file name and a message."""
    text = str(raw)
    out = "".join(ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")) for ch in text)
    if not out:
        out = "%00"
    if len(out) > MAX_ID:
        out = out[:MAX_ID] + "~" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return out


def child_name(template: str, item_id: str) -> str:
    return f"{template}{SEPARATOR}{item_id}"


def split_child(name: str) -> tuple[str, str] | None:
    """(template, item id) of a child name, or None for a plain block name."""
    template, sep, item = name.partition(SEPARATOR)
    return (template, item) if sep else None


def template_of(name: str) -> str:
    return name.partition(SEPARATOR)[0]


@dataclass(frozen=True)
class Item:
    id: str
    value: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)


def items_of(block: str, output: Any) -> list[Item]:
    """The items of a dynamic block's output, each with its escaped id."""
    if isinstance(output, StreamOutput):  # a dynamic source block with one stream: one item per row
        output = output.to_arrow().to_pylist()
    try:
        import pandas as pd

        if isinstance(output, pd.DataFrame):  # one item per row, as a dict
            output = output.to_dict("records")
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    if isinstance(output, tuple):
        output = list(output)
    if not isinstance(output, list):
        raise ConfigError(
            f"a dynamic block must output a list (or [items, metadata]); it returned {type(output).__name__}.",
            block=block,
            fix="return a list with one item per child, e.g. [{'name': 'a'}, {'name': 'b'}].",
        )
    metadata: list[Any] = [{}] * len(output)
    values = output
    if len(output) == 2 and isinstance(output[0], list) and isinstance(output[1], list) and all(isinstance(m, dict) for m in output[1]):
        values, metadata = output[0], output[1]
        if len(metadata) != len(values):
            raise ConfigError(
                f"a dynamic block returned {len(values)} items but {len(metadata)} metadata entries.",
                block=block,
                fix="return [items, metadata] with one metadata dict per item.",
            )
    items: list[Item] = []
    seen: dict[str, Any] = {}
    for index, (value, meta) in enumerate(zip(values, metadata)):
        raw = meta.get("block_uuid", index) if isinstance(meta, dict) else index
        if raw is None or isinstance(raw, (dict, list)):
            raise ConfigError(f"item {index}: block_uuid must be a text or a number, not {raw!r}.", block=block)
        item_id = escape_item_id(raw)
        if item_id in seen:
            raise ConfigError(
                f"items {seen[item_id]!r} and {raw!r} both name their child {item_id!r}.",
                block=block,
                fix="give every item its own block_uuid.",
            )
        seen[item_id] = raw
        items.append(Item(item_id, value, dict(meta) if isinstance(meta, dict) else {}))
    return items


# -- the shape of a graph's fan-outs ---------------------------------------------------------------


@dataclass
class Scope:
    """Which blocks fan out from which dynamic block, and which blocks reduce children."""

    root_of: dict[str, str] = field(default_factory=dict)
    """fanned-out block -> the dynamic block whose items it runs once per"""
    reducers: set[str] = field(default_factory=set)
    """blocks that get the list of a fanned-out upstream's children's outputs"""

    def __bool__(self) -> bool:
        return bool(self.root_of)

    def fanned(self, root: str) -> list[str]:
        return [n for n, r in self.root_of.items() if r == root]


def scope_of(graph: Graph) -> Scope:
    """The fan-outs of ``graph``; a shape we cannot run is one ``GraphError`` naming the block."""
    scope = Scope()
    if not any(b.dynamic for b in graph.blocks.values()):
        for block in graph.blocks.values():
            if block.reduce_output and block.upstream:
                _no_children(block)
        return scope
    for name in graph.topological_order():
        block = graph[name]
        roots: set[str] = set()
        reduces = False
        for up in block.upstream:
            if up not in graph:
                continue
            if graph[up].dynamic:
                roots.add(up)
            elif up in scope.root_of:
                if graph[up].reduce_output or block.reduce_output:
                    reduces = True
                else:
                    roots.add(scope.root_of[up])
        if len(roots) > 1:
            raise GraphError(
                f"block {name!r} is downstream of the dynamic blocks {', '.join(sorted(roots))}: it cannot run once per item of both.",
                block=name,
                fix="reduce one of them first (--reduce-output), or split the block.",
            )
        if roots:
            root = roots.pop()
            if block.dynamic:
                raise GraphError(
                    f"block {name!r} is dynamic and runs once per item of {root!r}: dynamic children are not supported.",
                    block=name,
                    fix=f"reduce {root!r}'s children first (--reduce-output on a block between them), or drop --dynamic.",
                )
            scope.root_of[name] = root
        elif reduces:
            scope.reducers.add(name)
        elif block.reduce_output and block.upstream:
            _no_children(block)
    return scope


def _no_children(block: Block) -> None:
    raise GraphError(
        f"block {block.name!r} has --reduce-output, but none of its upstream blocks runs once per item of a dynamic block.",
        block=block.name,
        fix="put --dynamic on the block whose output lists the items, or drop --reduce-output.",
    )


# -- one run -------------------------------------------------------------------------------------------


ExecuteFn = Callable[[Graph, list[str]], RunReport]
"""Runs one phase: a graph whose blocks' ``upstream`` are the phase's dependencies, and a plan."""


class DynamicRun:
    """One pipeline run over a graph with dynamic blocks: expands children as their items arrive."""

    def __init__(
        self,
        graph: Graph,
        plan: list[str],
        scope: Scope,
        outputs: Mapping[str, Any],
        *,
        effective: Callable[[Block], Block] = lambda b: b,
        observers: Iterable[RunObserver] = (),
        consumers: dict[str, list[str]] | None = None,
        overridden: Iterable[str] = (),
    ) -> None:
        self.graph = graph
        self.scope = scope
        self.outputs = outputs
        self.effective = effective
        self.observers = list(observers)
        self.consumers = consumers if consumers is not None else {}
        self.overridden = set(overridden)
        """children a one-run ``--bookmark`` names: each must exist once its block is expanded"""
        self.only: dict[str, set[str]] = {}
        """dynamic block -> the item ids to run (``--blocks sync:t1``); absent: every item"""
        self.remaining: list[str] = []
        for name in plan:
            parts = split_child(name)
            if parts is not None and parts[0] in scope.root_of:
                self.only.setdefault(scope.root_of[parts[0]], set()).add(parts[1])
                name = parts[0]
            elif parts is not None:
                raise GraphError(f"no block named {name!r}.", fix=f"{parts[0]!r} does not run once per item of a dynamic block.")
            if name not in self.remaining:
                self.remaining.append(name)
        self.planned_templates = {n for n in self.remaining if n in scope.root_of}
        self.blocks: dict[str, Block] = {}
        """child name -> the block it runs (the template's body under the child's name)"""
        self.deps: dict[str, list[str]] = {}
        """child or reducer -> the node names it waits for in this run"""
        self.inputs: dict[str, dict[str, Any]] = {}
        """child -> {upstream name: ('node', name) | ('item', value) | ('reduce', [names])}"""
        self.children: dict[str, list[str]] = {}
        """template -> its children, in item order"""
        self.expanded: set[str] = set()
        self.report = RunReport()
        self.template_runs: dict[str, BlockRun] = {}
        self.on_template_done: Callable[[str, list[str]], None] | None = None

    # -- what the pipeline asks while blocks run ---------------------------------------------------
    def block(self, name: str) -> Block | None:
        """The block a child runs, or None for a block of the graph."""
        return self.blocks.get(name)

    def upstream_outputs(self, name: str, output_of: Callable[[str], Any]) -> dict[str, Any] | None:
        """The inputs of a child or reducer by upstream name, or None for an ordinary block."""
        spec = self.inputs.get(name)
        if spec is None:
            return None
        values: dict[str, Any] = {}
        for up, (how, what) in spec.items():
            if how == "item":
                values[up] = what
            elif how == "reduce":
                values[up] = ReducedOutput(what, [output_of(c) for c in what])
            else:
                values[up] = output_of(what)
        return values

    def is_reducer(self, name: str) -> bool:
        return name in self.scope.reducers

    # -- the run -----------------------------------------------------------------------------------------
    def run(self, execute: ExecuteFn) -> RunReport:
        started = time.perf_counter()
        statuses: dict[str, BlockRun] = {}
        while self.remaining:
            self._expand_ready(statuses)
            phase = self._phase()
            if not phase:  # only fan-outs whose dynamic block did not run: skipped
                for name in self.remaining:
                    self._skip(name, "its dynamic upstream block did not run", statuses)
                break
            runnable = [n for n in phase if not self._skip_if_upstream_failed(n, statuses)]
            self.remaining = [n for n in self.remaining if n not in set(phase)]
            if runnable:
                sub = execute(self._phase_graph(runnable), runnable)
                self.report.planning_seconds += sub.planning_seconds
                for name, run in sub.runs.items():
                    statuses[name] = run
                    self.report.runs[name] = run
            self._finish_templates(statuses)
        self._finish_templates(statuses, final=True)
        self.report.runs = self._ordered(self.report.runs)
        self.report.total_seconds = time.perf_counter() - started
        return self.report

    def _deps(self, name: str) -> list[str]:
        if name in self.deps:
            return self.deps[name]
        return list(self.graph[name].upstream) if name in self.graph else []

    def _phase(self) -> list[str]:
        """Planned blocks that wait on no fan-out still to expand (plan order)."""
        blocked: set[str] = set()
        phase: list[str] = []
        for name in self.remaining:
            unexpanded = name in self.scope.root_of and name not in self.expanded
            if unexpanded or any(d in blocked for d in self._deps(name)) or self._reduces_unexpanded(name):
                blocked.add(name)
            else:
                phase.append(name)
        return phase

    def _reduces_unexpanded(self, name: str) -> bool:
        return name in self.scope.reducers and name not in self.deps

    def _phase_graph(self, names: list[str]) -> Graph:
        graph = Graph()
        for name in names:
            graph.blocks[name] = Block(name=name, kind=BlockKind.PYTHON, body="", upstream=self._deps(name))
        return graph

    def _notify(self, run: BlockRun) -> None:
        for observer in self.observers:
            try:
                observer.block_changed(run)
            except Exception:  # noqa: BLE001 - a broken display must never break a run
                pass

    def _skip(self, name: str, reason: str, statuses: dict[str, BlockRun]) -> None:
        run = self.template_runs.get(name) or BlockRun(name)
        if run.status in (PENDING, RUNNING):
            run.status, run.reason = SKIPPED, reason
            self.report.runs[name] = statuses[name] = run
            self._notify(run)

    def _skip_if_upstream_failed(self, name: str, statuses: dict[str, BlockRun]) -> bool:
        for dep in self._deps(name):
            run = statuses.get(dep)
            if run is not None and run.status in (FAILED, SKIPPED):
                self._skip(name, f"upstream '{dep}' {'failed' if run.status == FAILED else 'was skipped'}", statuses)
                return True
        return False

    def _expand_ready(self, statuses: dict[str, BlockRun]) -> None:
        self._wire_reducers()
        roots = {self.scope.root_of[t] for t in self.planned_templates if t not in self.expanded}
        for root in sorted(roots):
            run = statuses.get(root)
            if run is not None and run.status != DONE:
                for template in self._templates(root):
                    self._template_run(template)
                    self._skip(template, f"upstream '{root}' {'failed' if run.status == FAILED else 'was skipped'}", statuses)
                    self._drop(template)
                self._wire_reducers()
                continue
            if root in self.remaining or (run is None and root not in self.outputs):
                continue  # runs in a later phase (or never: skipped at the end)
            templates = self._templates(root)
            try:
                items = items_of(root, self.outputs[root])
                wanted = self.only.get(root)
                if wanted is not None:
                    unknown = sorted(wanted - {i.id for i in items})
                    if unknown:
                        raise GraphError(
                            f"dynamic block {root!r} has no item {unknown[0]!r} this run.",
                            block=root,
                            fix=f"its items: {', '.join(i.id for i in items) or 'none'}.",
                        )
                    items = [i for i in items if i.id in wanted]
                self._check_overridden(root, templates, items)
            except DIError as exc:
                for template in templates:
                    run = self._template_run(template)
                    run.start()
                    run.finish(FAILED, str(exc))
                    self.report.runs[template] = statuses[template] = run
                    self._notify(run)
                    self._drop(template)
                self._wire_reducers()
                continue
            self._expand(root, templates, items)

    def _check_overridden(self, root: str, templates: list[str], items: list[Item]) -> None:
        """A ``--bookmark`` for a child this run does not have would be silently ignored."""
        ids = {i.id for i in items}
        for name in sorted(self.overridden):
            template, _, item = name.partition(SEPARATOR)
            if template in templates and item not in ids:
                raise ConfigError(
                    f"--bookmark names {name!r}, but {root!r} has no item {item!r} in this run.",
                    block=name,
                    fix=f"its items: {', '.join(sorted(ids)) or 'none'}.",
                )

    def _drop(self, template: str) -> None:
        """A fan-out that will not run (its dynamic block failed): its dependents see its status."""
        self.expanded.add(template)
        self.remaining = [n for n in self.remaining if n != template]

    def _templates(self, root: str) -> list[str]:
        return [t for t in self.remaining if self.scope.root_of.get(t) == root and t not in self.expanded]

    def _template_run(self, template: str) -> BlockRun:
        if template not in self.template_runs:
            self.template_runs[template] = BlockRun(template)
        return self.template_runs[template]

    def _expand(self, root: str, templates: list[str], items: list[Item]) -> None:
        for template in templates:
            base = self.effective(self.graph[template])
            names: list[str] = []
            for item in items:
                name = child_name(template, item.id)
                inputs: dict[str, Any] = {}
                deps: list[str] = []
                for up in base.upstream:
                    if up == root:
                        inputs[up] = ("item", item.value)
                    elif self.scope.root_of.get(up) == root and not self.graph[up].reduce_output:
                        inputs[up] = ("node", child_name(up, item.id))
                        deps.append(child_name(up, item.id))
                    else:
                        inputs[up] = ("node", up)
                        deps.append(up)
                self.blocks[name] = dataclasses.replace(base, name=name, cell_id=None, output_var=None, replicate=None)
                self.inputs[name] = inputs
                self.deps[name] = deps
                names.append(name)
            self.children[template] = names
            position = self.remaining.index(template)
            self.remaining[position : position + 1] = names
            self.expanded.add(template)
            run = self._template_run(template)
            run.start()
            run.summary = {"children": len(names)}
            self.report.runs[template] = run
            self._notify(run)
        self._wire_reducers()
        self._wire_consumers(templates)

    def _wire_reducers(self) -> None:
        """A reducer waits for every child of its fanned-out upstream blocks, once they are known."""
        for name in self.remaining:
            if name not in self.scope.reducers or name in self.deps:
                continue
            block = self.graph[name]
            if any(u in self.planned_templates and u not in self.expanded for u in block.upstream):
                continue  # a fan-out it reduces is not expanded yet
            inputs: dict[str, Any] = {}
            deps: list[str] = []
            for up in block.upstream:
                if up in self.children:
                    inputs[up] = ("reduce", list(self.children[up]))
                    deps += self.children[up]
                elif up in self.planned_templates:  # did not expand (its dynamic block failed): skipped with it
                    inputs[up] = ("node", up)
                    deps.append(up)
                else:  # an ordinary upstream, or a fan-out not in this run (its last output: its children's list)
                    inputs[up] = ("node", up)
                    deps.append(up)
            self.inputs[name], self.deps[name] = inputs, deps

    def _wire_consumers(self, templates: list[str]) -> None:
        """A child source's bookmarks wait for the child destinations that write its streams."""
        for template in templates:
            if self.graph[template].kind != BlockKind.SOURCE:
                continue
            for child in self.children[template]:
                item = split_child(child)[1]  # type: ignore[index]
                self.consumers[child] = [
                    child_name(d, item)
                    for d in templates
                    if self.graph[d].kind == BlockKind.DESTINATION
                    and template in self.graph[d].upstream
                    and not self.graph[d].reduce_output
                ]

    def _finish_templates(self, statuses: dict[str, BlockRun], final: bool = False) -> None:
        for template, names in self.children.items():
            run = self.template_runs[template]
            if run.status != RUNNING:
                continue
            runs = [statuses.get(n) for n in names]
            if not final and any(r is None or r.status in (PENDING, RUNNING) for r in runs):
                continue
            failed = [n for n, r in zip(names, runs) if r is not None and r.status == FAILED]
            skipped = [n for n, r in zip(names, runs) if r is None or r.status in (SKIPPED, PENDING)]
            run.summary = {"children": len(names), "failed": len(failed), "skipped": len(skipped)}
            if failed:
                run.finish(
                    FAILED, f"{len(failed)} of {len(names)} children failed: {', '.join(failed[:5])}{'…' if len(failed) > 5 else ''}"
                )
            elif skipped:
                run.finish(SKIPPED)
                run.reason = f"{len(skipped)} of {len(names)} children were skipped"
            else:
                run.finish(DONE)
                if self.on_template_done is not None:
                    self.on_template_done(template, names)
            statuses[template] = run
            self._notify(run)

    def _ordered(self, runs: dict[str, BlockRun]) -> dict[str, BlockRun]:
        return grouped(runs)


T = TypeVar("T")


def grouped(runs: Mapping[str, T]) -> dict[str, T]:
    """The same entries, each dynamic child right after its block (for reports and live tables)."""
    kids: dict[str, list[str]] = {}
    for name in runs:
        if split_child(name) is not None:
            kids.setdefault(template_of(name), []).append(name)
    out: dict[str, T] = {}
    for name, run in runs.items():
        if split_child(name) is None:
            out[name] = run
            for kid in kids.pop(name, []):
                out[kid] = runs[kid]
    for rest in kids.values():
        for kid in rest:
            out[kid] = runs[kid]
    return out
