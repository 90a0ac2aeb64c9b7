"""``jupyter-di``: run a notebook's pipeline headless, show its graph, manage state.

    jupyter-di run NOTEBOOK.ipynb [-p k=v ...] [--blocks A B] [--dry-run] [--bookmark B.S.C=V] [--json]
    jupyter-di runs NOTEBOOK.ipynb [--last N] [--json]   |   jupyter-di runs show ID [NOTEBOOK.ipynb] [--json]
    jupyter-di graph NOTEBOOK.ipynb [--format mermaid|text]
    jupyter-di state show|set|reset NOTEBOOK.ipynb [BLOCK [STREAM]] [--value COLUMN=VALUE ...]
    jupyter-di connectors [--json]
    jupyter-di secret set|list|delete [NAME]
    jupyter-di target NAME --config FILE            (a Singer target: messages on stdin)
    jupyter-di tap NAME --config FILE [--discover | --catalog FILE --state FILE]   (a Singer tap)

The run is in-process with no Jupyter server: the same pipeline code the kernel
uses.  Errors a user can fix print one short line and exit non-zero (1: a block
failed, 2: the notebook or the command line is wrong, 3: every block succeeded
but a stream may have missed changes, e.g. rows with a NULL bookmark column).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .allocators import release_freed_memory
from .block_kind import BlockKind
from .errors import DIError
from .pipeline.observer import RunObserver
from .pipeline.run_record import DONE, FAILED, PENDING, RUNNING, SKIPPED, BlockRun
from .redaction import redact

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
"""Every block succeeded, but a stream may have missed changes (e.g. rows with a NULL bookmark
column): exit 0 means nothing was skipped."""


def _state_path(notebook: Path, override: str | None) -> Path:
    from .state.api import state_path_for

    return state_path_for(notebook, override)


class TerminalProgress(RunObserver):
    """Block status lines on stderr, and per-stream row counts: live progress bars (tqdm) on a
    terminal, throttled lines (one a second per stream) in logs and CI."""

    SYMBOLS = {RUNNING: "▶", DONE: "✔", FAILED: "✘", SKIPPED: "⏭"}

    def __init__(self, stream: Any = sys.stderr, quiet: bool = False, bars: bool | None = None) -> None:
        self.out = stream
        self.quiet = quiet
        self.bars_enabled = (not quiet) and (bars if bars is not None else bool(getattr(stream, "isatty", lambda: False)()))
        self._bars: dict[tuple[str, str, str], Any] = {}
        self._last: dict[tuple[str, str, str], float] = {}
        # The newest count of each stream and the count last printed: when its block ends, a stream
        # whose newest count was throttled away (or shown only by a vanishing bar) gets a final line.
        self._latest: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._shown: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                line = redact(text)
                if self._bars:
                    from tqdm import tqdm

                    tqdm.write(line, file=self.out)  # above the bars, not through them
                else:
                    print(line, file=self.out, flush=True)

    def run_waiting(self, message: str) -> bool:
        """Another run of the notebook holds its run lock: say so once, even with --quiet (the pause needs a reason)."""
        with self._lock:
            print(message, file=self.out, flush=True)
        return True

    def block_changed(self, run: BlockRun) -> None:
        if run.status == PENDING:
            return
        if run.status in (DONE, FAILED, SKIPPED):
            self._close_bars(run.name)
            self._final_counts(run.name)
        detail = ""
        if run.duration is not None:
            detail = f" {run.duration:.2f}s"
        if run.status == FAILED:
            detail += " (the error is printed at the end)"  # once, in full: not here, in the table and at the end
        if run.status == SKIPPED:
            detail = f" ({run.reason})"
        self._print(f"{self.SYMBOLS.get(run.status, '·')} {run.name} {run.status}{detail}")

    def stream_progress(self, block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
        key = (block, stream, phase)
        with self._lock:
            self._latest[key] = (rows, seconds)
        if self.bars_enabled:
            with self._lock:
                bar = self._bars.get(key)
                if bar is None:
                    from tqdm import tqdm

                    bar = self._bars[key] = tqdm(
                        desc=redact(f"{block}.{stream} {phase}"),
                        unit=" rows",
                        unit_scale=True,
                        file=self.out,
                        leave=False,
                        dynamic_ncols=True,
                    )
                bar.update(rows - bar.n)
            return
        now = time.monotonic()
        if now - self._last.get(key, 0.0) < 1.0:
            return
        self._last[key] = now
        self._progress_line(key, rows, seconds)

    def _progress_line(self, key: tuple[str, str, str], rows: int, seconds: float, final: str = "") -> None:
        block, stream, phase = key
        rate = rows / seconds if seconds > 0 else 0
        self._shown[key] = rows
        self._print(f"    {block}.{stream} {phase}: {rows:,} rows ({rate:,.0f} rows/s){final}")

    def _final_counts(self, block: str) -> None:
        """Each stream of an ended block ends on its final count (a 100k-row read ended at 7,860)."""
        with self._lock:
            ended = [(k, v) for k, v in self._latest.items() if k[0] == block]
            for key, _ in ended:
                del self._latest[key]
        for key, (rows, seconds) in ended:
            if self._shown.pop(key, None) != rows:
                self._progress_line(key, rows, seconds, final=", final")
                self._shown.pop(key, None)

    def _close_bars(self, block: str) -> None:
        with self._lock:
            for key in [k for k in self._bars if k[0] == block]:
                self._bars.pop(key).close()


def run_steps(
    notebook, pipeline, plan: list[str], params: dict[str, Any], overrides: dict, progress: TerminalProgress, *, whole: bool = True
):  # noqa: ANN001
    """Run plain cells where they stand and the blocks above each one before it.

    Blocks between two plain cells run as one graph (in parallel where they
    can).  With ``whole`` every plain cell runs; otherwise (``--blocks``) plain
    cells below the last planned block are not run.  Returns the
    merged run report, or None when a plain cell raised.
    """
    from .pipeline.notebook_file import PlainCell
    from .pipeline.run_record import RunReport

    wanted = set(plan)
    cells = {n.partition(":")[0] for n in plan}  # `--blocks sync:t1` runs the cell of `sync`, for that item only
    last_block = max((i for i, s in enumerate(notebook.steps) if not isinstance(s, PlainCell) and s.name in cells), default=-1)
    if whole:
        last_block = len(notebook.steps)
    merged = RunReport()
    pending: list[str] = []

    def flush() -> bool:
        if not pending:
            return True
        segment = pipeline.plan(pending, params, only_stale_ancestors=True)
        segment = [c for n in segment for c in ([n] if n in wanted else [w for w in plan if w.partition(":")[0] == n and w != n])]
        report = pipeline.run(segment, params=params, bookmark_overrides=overrides, observers=[progress])
        merged.runs.update(report.runs)
        merged.total_seconds += report.total_seconds
        pending.clear()
        return report.ok

    for position, step in enumerate(notebook.steps):
        if position > last_block:
            break
        if isinstance(step, PlainCell):
            if not flush():
                return merged
            try:
                exec(compile(step.code, f"<cell {step.index}>", "exec"), pipeline.namespace)  # noqa: S102 - the notebook's own code
            except Exception as exc:  # noqa: BLE001
                print(redact(f"error: cell {step.index} raised {type(exc).__name__}: {exc}"), file=sys.stderr)
                return None
        elif step.name in cells:
            pending.append(step.name)
    flush()
    return merged


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.history import RunRecorder
    from .pipeline.notebook_file import load_notebook
    from .pipeline.params import parse_bookmarks, parse_params
    from .pipeline.pipeline import Pipeline
    from .pipeline.report import report_dict, text_summary
    from .settings import SETTINGS

    notebook = load_notebook(args.notebook)
    for warning in notebook.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for key, value in notebook.config.items():
        if hasattr(SETTINGS, key):
            setattr(SETTINGS, key, value)
    if args.max_workers:
        SETTINGS.max_workers = args.max_workers
    if args.executor:
        SETTINGS.executor = args.executor
    if args.scheduler:
        SETTINGS.executor, SETTINGS.dask_scheduler = "dask", args.scheduler
    params = parse_params(args.param)
    overrides = parse_bookmarks(args.bookmark)
    pipeline = Pipeline(
        notebook.name, state_path=_state_path(notebook.path, args.state_path), namespace={"__name__": "__main__"}, keep_outputs=False
    )
    try:
        for block in notebook.blocks:
            pipeline.graph.add(block)
        pipeline.graph.validate()
        targets = args.blocks or list(pipeline.graph.blocks)
        plan = pipeline.plan(targets, params, only_stale_ancestors=False)
        if args.dry_run:
            print("would run, in order:")
            for name in plan:
                block = pipeline.graph[name.partition(":")[0]]  # a dynamic child runs its block
                ups = f" <- {', '.join(block.upstream)}" if block.upstream else ""
                print(f"  {name} ({block.kind}){ups}")
            return 0
        cwd = os.getcwd()
        os.chdir(notebook.path.resolve().parent)  # relative paths mean what they mean in the kernel
        recorder = RunRecorder(pipeline, "cli")  # the run history (`jupyter-di runs`)
        try:
            # with --json, stdout holds the report alone: what the notebook's own cells print goes to stderr
            with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
                report = run_steps(notebook, pipeline, plan, params, overrides, TerminalProgress(quiet=args.quiet), whole=not args.blocks)
        finally:
            os.chdir(cwd)
        if report is None:  # a plain cell raised (said on stderr): a scheduler still gets its JSON
            if args.json:
                doc = {"notebook": str(notebook.path), "pipeline": notebook.name, "status": "failed", "error": "a plain cell raised"}
                print(json.dumps({**doc, "blocks": []}, indent=2))
            return EXIT_FAILED
        recorder.finish(report)
        if args.json:  # for schedulers: the report on stdout, progress and messages stay on stderr
            doc = {"notebook": str(notebook.path), "pipeline": notebook.name, **report_dict(pipeline.graph, report)}
            print(json.dumps(doc, indent=2, default=str))
        else:
            print(text_summary(pipeline.graph, report))
        for line in report.warning_lines():
            print(redact(line), file=sys.stderr)
        if not report.ok:
            print("\n" + redact(report.failure_message()), file=sys.stderr)
            return EXIT_FAILED
        return 0 if report.complete else EXIT_INCOMPLETE
    finally:
        pipeline.close()


def cmd_graph(args: argparse.Namespace) -> int:
    from .pipeline.dynamic import scope_of
    from .pipeline.graph import Graph
    from .pipeline.notebook_file import load_notebook

    notebook = load_notebook(args.notebook)
    graph = Graph(notebook.blocks)
    graph.validate()
    scope = scope_of(graph)  # a fan-out we cannot run is the same error as in `run`
    if args.format == "mermaid":
        print(graph.to_mermaid())
    else:
        for name in graph.topological_order():
            block = graph[name]
            ups = f" <- {', '.join(block.upstream)}" if block.upstream else ""
            notes = [block.kind] + (["dynamic"] if block.dynamic else []) + (["reduce-output"] if block.reduce_output else [])
            notes += [f"replica of {block.replicate}"] if block.replicate else []
            notes += [f"once per item of {scope.root_of[name]}"] if name in scope.root_of else []
            print(f"{name} ({', '.join(notes)}){ups}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """``runs NOTEBOOK [--last N]`` lists a notebook's runs; ``runs show ID [NOTEBOOK]`` details one."""
    from .pipeline.history import run_detail, runs_table
    from .pipeline.notebook_file import load_notebook
    from .state.history import FILE_NAME, RunHistory

    words = list(args.args)
    if words[0] == "show":
        if len(words) not in (2, 3) or not words[1].isdigit():
            raise DIError("usage: jupyter-di runs show ID [NOTEBOOK] (ID from `jupyter-di runs NOTEBOOK`).")
        if len(words) == 3:
            history = RunHistory.beside(_state_path(Path(words[2]), args.state_path))
        else:  # the notebook's folder, as `jupyter-di run` keeps it
            history = RunHistory(Path(args.state_path).parent / FILE_NAME if args.state_path else Path(".jupyter_di") / FILE_NAME)
        doc = history.get(int(words[1]))
        if doc is None:
            raise DIError(
                f"no run {words[1]} in {history.path}; `jupyter-di runs NOTEBOOK` lists the runs (from the notebook's folder, or name it)."
            )
        print(json.dumps(doc, indent=2, default=str) if args.json else run_detail(doc))
        return 0
    if len(words) != 1:
        raise DIError("usage: jupyter-di runs NOTEBOOK [--last N] [--json], or jupyter-di runs show ID [NOTEBOOK].")
    notebook = load_notebook(Path(words[0]))
    history = RunHistory.beside(_state_path(notebook.path, args.state_path))
    runs = history.list(notebook.name, args.last)
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
    elif not runs:
        print(f"no runs of {notebook.name} recorded yet (in {history.path}).")
    else:
        print(runs_table(runs))
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    from .pipeline.notebook_file import pipeline_name
    from .pipeline.params import parse_value
    from .state.store import StateStore

    notebook = Path(args.notebook)
    store = StateStore(_state_path(notebook, args.state_path), create=args.action == "set")  # show/reset make nothing
    name = pipeline_name(notebook)
    if args.action == "show":
        items = [i for i in store.items(name) if _of_block(i[0], args.block)]  # a dynamic block's children too
        if args.stream:
            items = [i for i in items if i[1] == args.stream]
        singer: dict[str, Any] = {"bookmarks": {f"{b}.{s}": v.get("bookmark") for b, s, v in items}}
        held = {f"{b}.{s}": _server_state(notebook, b, s, v.get("source_state"), release=False) for b, s, v in items}
        if any(held.values()):
            singer["server_state"] = {k: v for k, v in held.items() if v}  # e.g. a LOG_BASED stream's slot and its retained WAL
        print(json.dumps(singer, indent=2, default=str))
        return 0
    if args.action == "reset":
        blocks = sorted({b for b, _, _ in store.items(name) if _of_block(b, args.block)} | {args.block}) if args.block else [None]
        for b, s, v in store.items(name):  # what the state holds on a source's server (a replication slot) goes with it
            if _of_block(b, args.block) and (args.stream is None or s == args.stream):
                freed = _server_state(notebook, b, s, v.get("source_state"), release=True)
                if freed:
                    print(f"{b}.{s}: {freed}")
        removed = sum(store.reset(name, block, args.stream) for block in blocks)
        print(f"reset {removed} stream state(s); the next run of those streams is a full sync.")
        return 0
    if not (args.block and args.stream and args.value):
        raise DIError(
            "state set needs BLOCK STREAM and --value COLUMN=VALUE.",
            fix="e.g. jupyter-di state set nb.ipynb shop orders --value updated_at=2024-01-01",
        )
    bookmark: dict[str, Any] = {}
    for item in args.value:
        column, sep, value = item.partition("=")
        if not sep:
            raise DIError(f"--value {item!r} is not COLUMN=VALUE.")
        bookmark[column] = parse_value(value)
    _check_state_target(notebook, store, name, args.block, args.stream, list(bookmark))
    store.set(
        name,
        args.block,
        args.stream,
        {
            **{k: v for k, v in (store.get(name, args.block, args.stream) or {}).items() if k == "source_state" and v is not None},
            "bookmark": bookmark,
            "pinned": True,
        },
    )  # a tap's own state survives a pin
    print(json.dumps({"bookmark": bookmark}, default=str))
    return 0


def _server_state(notebook: Path, block: str, stream: str, source_state: Any, *, release: bool) -> Any:
    """Ask the block's source what a stream's saved state holds on its server (``describe_state``),
    or free it (``release_state``, on reset).  The block's config is rendered as a run would (secrets,
    environment); when the source cannot be reached the answer says so, and a reset's slot is then
    dropped by the stream's next run."""
    if not isinstance(source_state, dict) or not source_state.get("slot"):
        return None
    from .connectors import registry
    from .integration.di_config import DIConfig
    from .integration.interpolation import Interpolator
    from .pipeline.notebook_file import load_notebook

    try:
        blocks = {b.name: b for b in load_notebook(notebook).blocks}
        found = blocks.get(block) or blocks.get(block.partition(":")[0])
        if found is None or found.kind != BlockKind.SOURCE or found.lang == "python":
            raise DIError(f"block {block!r} is not a YAML source block of {notebook.name}")
        parsed = DIConfig.parse(found.body, kind=BlockKind.SOURCE, block=found.name)
        config = Interpolator(variables={}, inputs={}, upstream=list(found.upstream)).render(dict(parsed.config))
        with registry.source_class(parsed.connector)(config) as source:
            return source.release_state(stream, source_state) if release else source.describe_state(stream, source_state)
    except Exception as exc:  # noqa: BLE001 - reported, never fatal: the state itself is shown or reset
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        slot = source_state["slot"]
        if release:
            return f"could not drop replication slot {slot!r} now ({reason}); the stream's next run drops it, or run SELECT pg_drop_replication_slot('{slot}')"
        return {"slot": slot, "unknown": reason}


def _of_block(stored: str, block: str | None) -> bool:
    """Whether state kept under ``stored`` belongs to ``block`` (itself, or one of its dynamic children)."""
    return block is None or stored == block or (":" not in block and stored.startswith(block + ":"))


def _check_state_target(notebook: Path, store: Any, pipeline: str, block: str, stream: str, columns: list[str]) -> None:
    """``state set`` must name a source block of the notebook, one of its streams and bookmark columns:
    a pinned value under a typo would be kept forever and never used."""
    from .integration.di_config import DIConfig
    from .pipeline.notebook_file import load_notebook

    blocks = {b.name: b for b in load_notebook(notebook).blocks}
    found = blocks.get(block) or blocks.get(block.partition(":")[0])  # a dynamic child: its block's cell
    if found is None or found.kind != BlockKind.SOURCE:
        sources = [n for n, b in blocks.items() if b.kind == BlockKind.SOURCE]
        what = "no block" if found is None else f"a {found.kind} block"
        raise DIError(
            f"{block!r} is {what} in {notebook.name}; bookmarks belong to source blocks.",
            fix=f"use one of: {', '.join(sources) or 'none'}.",
        )
    saved = {s for _, s, _ in store.items(pipeline, block)}
    listed: dict[str, dict[str, Any]] = {}
    if found.lang != "python":
        listed = DIConfig.parse(found.body, kind=BlockKind.SOURCE, block=block).streams
    if stream not in listed and stream not in saved:
        known = sorted(set(listed) | saved)
        raise DIError(
            f"block {block!r} has no stream {stream!r} (not under its `streams:` and never synced).",
            block=block,
            fix=f"use one of: {', '.join(known)}." if known else "run the pipeline once, or list the stream under `streams:`.",
        )
    bookmark_columns = listed.get(stream, {}).get("bookmark_properties") or []
    unknown = [c for c in columns if bookmark_columns and c not in bookmark_columns]
    if unknown:
        raise DIError(
            f"{unknown[0]!r} is not a bookmark column of stream {stream!r}.",
            block=block,
            stream=stream,
            fix=f"use {', '.join(bookmark_columns)}.",
        )


def cmd_connectors(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .connectors import registry

    specs = []
    for name in registry.names():
        try:
            specs.append(registry.get(name))
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not hide the others
            print(f"warning: connector {name!r} failed to load: {exc}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "title": s.title,
                        "source": s.source is not None,
                        "destination": s.destination is not None,
                        "config": [asdict(f) for f in s.config_schema],
                    }
                    for s in specs
                ],
                indent=2,
                default=str,
            )
        )
        return 0
    for spec in specs:
        roles = "/".join(r for r, c in (("source", spec.source), ("destination", spec.destination)) if c)
        print(f"{spec.name}  ({roles})  {spec.title}")
        for f in spec.config_schema:
            flags = ", ".join(x for x in ("required" if f.required else "", "secret" if f.secret else "") if x)
            default = f" = {f.default!r}" if f.default is not None else ""
            print(f"    {f.name}: {f.type}{default}{'  [' + flags + ']' if flags else ''}  {f.description}".rstrip())
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    import getpass

    from .secrets import SecretStore

    store = SecretStore()
    if args.action == "list":
        print("\n".join(store.names()))
        return 0
    if not args.name:
        raise DIError(f"secret {args.action} needs a NAME.")
    if args.action == "delete":
        store.delete(args.name)
        return 0
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(f"value for {args.name}: ")
    store.set(args.name, value)
    print(f"saved secret {args.name!r} in {store.path}")
    return 0


def cmd_target(args: argparse.Namespace) -> int:
    from .integration import singer_cli

    return singer_cli.target(args.name, args.config, validate_records=args.validate_records, no_new_columns=args.no_new_columns)


def cmd_tap(args: argparse.Namespace) -> int:
    from .integration import singer_cli

    return singer_cli.tap(args.name, args.config, discover=args.discover, catalog_path=args.catalog, state_path=args.state)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter-di", description="Run notebook data pipelines headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a notebook's pipeline")
    run.add_argument("notebook", type=Path)
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a runtime variable")
    run.add_argument("--blocks", nargs="+", metavar="BLOCK", help="run only these blocks (and what they need)")
    run.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    run.add_argument("--bookmark", action="append", default=[], metavar="BLOCK.STREAM.COLUMN=VALUE", help="a bookmark for this run only")
    run.add_argument("--state-path", help="the state file (default .jupyter_di/state.sqlite beside the notebook)")
    run.add_argument("--max-workers", type=int, help="blocks run at once")
    run.add_argument("--executor", choices=["local", "dask"], help="where blocks run: threads here (local) or Dask tasks (dask)")
    run.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="with --executor dask: an existing Dask scheduler (default: a local cluster)"
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.add_argument("--json", action="store_true", help="print the run report as JSON on stdout (for schedulers)")
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="the run history: `runs NOTEBOOK` lists runs, `runs show ID [NOTEBOOK]` details one")
    runs.add_argument("args", nargs="+", metavar="NOTEBOOK | show ID [NOTEBOOK]")
    runs.add_argument("--last", type=int, default=20, metavar="N", help="the newest N runs (default 20)")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.add_argument("--state-path", help="the state file the history is beside (default .jupyter_di/ beside the notebook)")
    runs.set_defaults(func=cmd_runs)

    graph = sub.add_parser("graph", help="print the block graph")
    graph.add_argument("notebook", type=Path)
    graph.add_argument("--format", choices=["text", "mermaid"], default="text")
    graph.set_defaults(func=cmd_graph)

    state = sub.add_parser("state", help="show, set or reset bookmarks")
    state.add_argument("action", choices=["show", "set", "reset"])
    state.add_argument("notebook", type=Path)
    state.add_argument("block", nargs="?")
    state.add_argument("stream", nargs="?")
    state.add_argument("--value", action="append", default=[], metavar="COLUMN=VALUE")
    state.add_argument("--state-path")
    state.set_defaults(func=cmd_state)

    conns = sub.add_parser("connectors", help="list connectors and their config fields")
    conns.add_argument("--json", action="store_true")
    conns.set_defaults(func=cmd_connectors)

    secret = sub.add_parser("secret", help="manage secrets kept outside notebooks")
    secret.add_argument("action", choices=["set", "list", "delete"])
    secret.add_argument("name", nargs="?")
    secret.set_defaults(func=cmd_secret)

    target = sub.add_parser("target", help="a Singer target: messages on stdin, written by a built-in destination")
    target.add_argument("name", help="the destination connector (`jupyter-di connectors`)")
    target.add_argument("--config", type=Path, required=True, help="a JSON file with the destination's config")
    target.add_argument("--validate-records", action="store_true", help="check each record against its stream's JSON schema")
    target.add_argument("--no-new-columns", action="store_true", help="refuse properties a later SCHEMA adds")
    target.set_defaults(func=cmd_target)

    tap = sub.add_parser("tap", help="a Singer tap: a built-in source's streams as Singer messages on stdout")
    tap.add_argument("name", help="the source connector (`jupyter-di connectors`)")
    tap.add_argument("--config", type=Path, required=True, help="a JSON file with the source's config")
    tap.add_argument("--discover", action="store_true", help="print the catalog")
    tap.add_argument("--catalog", "--properties", type=Path, help="the catalog selecting streams (default: every stream)")
    tap.add_argument("--state", type=Path, help="a state printed by an earlier sync")
    tap.set_defaults(func=cmd_tap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    release_freed_memory()  # before pyarrow and DuckDB load (allocators.py says why)
    for stream in (sys.stdout, sys.stderr):  # a name with a lone surrogate must not crash the summary
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # noqa: PERF203 - a stream that cannot be reconfigured
                pass
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DIError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RecursionError:
        print("error: the input is nested too deeply.", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback; JUPYTER_DI_DEBUG=1 shows it
        if os.environ.get("JUPYTER_DI_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (this is a bug in jupyter-di: set JUPYTER_DI_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
