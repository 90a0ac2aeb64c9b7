"""The Dask executor: each block of a run is a task on a Dask cluster.

``jupyter-di run NB --executor dask`` starts a ``LocalCluster`` of worker processes on 127.0.0.1
(``--scheduler tcp://HOST:PORT`` uses an existing cluster instead); in a kernel
``%config JupyterDI.executor = 'dask'`` and ``JupyterDI.dask_scheduler``.

How work is placed.  The pipeline still walks its graph with the local ``Executor`` (statuses,
skipping, observers and the run lock are the same code); only the *body* of each block moves: the
thread that would run the block submits it as one task and waits for it.  The task rebuilds the
block's run context on the worker (state file, variables, the notebook namespace that pickles) and
runs the integration layer unchanged, so the same connector code reads and writes either way.
Upstream outputs reach the task as the upstream task's future, worker to worker, never through the
client (``dask_transport.py`` says in which form).  Destinations are written by the worker that runs
their block; a file database (DuckDB, SQLite) takes a cluster-wide ``distributed.Lock`` on its
connector and path first, so one task at a time writes (or reads) one file, whatever the graph says.

Guarantees.  Bookmarks still follow committed data: the worker commits rows and state in the
destination's transaction and records the bookmark in the notebook's state file (workers must see
it: a LocalCluster does; checked before the first task, with a clear error otherwise), exactly as a
local run does.  A worker that dies mid-task loses nothing committed: the scheduler runs the task
again on another worker (``distributed.scheduler.allowed-failures`` times), and the retry starts
from the committed state (FULL_TABLE staging is never swapped in half-written; INCREMENTAL upserts
what a lagging bookmark reads again).  A block's own error is returned, not raised, so Dask never
retries a ``ConfigError``.  Losing the scheduler fails the run with a clear error; the next run
resumes from the committed state.

Streaming.  When the workers see the client's run folder, a destination task starts as soon as its
source task has opened its streams and writes them while they are read (``dask_live.py``).

Fused pairs.  A source block fused with its one destination block (``fusion.py``) whose connectors can
pass a stream through runs with it as one task (``run_pair_task``): the COPY hand-over stays in one
process, and a worker's death runs the pair again as a whole.
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import shutil
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..block_kind import BlockKind
from ..connectors.base import set_part_runner
from ..errors import BlockFailed, ConfigError, DIError
from ..integration.context import RunContext
from ..integration.runner import BlockResult
from ..redaction import redact, redact_exception
from ..settings import Settings
from .block import Block
from .dask_live import LiveHandle, SourceRestarted, announce, announced, caused_by, live_root, mark_failed
from .dask_transport import Where, pack, remove_spilled, unpack

LOCAL_WORKERS = 2
LOCAL_THREADS_PER_WORKER = 2
FILE_DATABASES = ("duckdb", "sqlite")
TOKEN_FILE = ".jupyter_di_dask_token"
PROGRESS_SECONDS = 0.25
"""A task sends a stream's row count at most this often (a Dask worker event each)."""


class DaskUnavailable(DIError):
    pass


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DaskUnavailable(
            "the Dask executor needs the distributed package.", fix="pip install 'jupyter-di[dask]' (or pip install 'dask[distributed]')."
        ) from None
    return distributed


# -- on the worker -------------------------------------------------------------------------------


@dataclass
class BlockTask:
    """Everything a worker needs to run one block (picklable)."""

    block: Block
    pipeline: str
    state_path: str
    shared_dir: str
    token: str
    run_id: str
    spill_url: str | None
    inline_bytes: int
    variables: dict[str, Any]
    identified: bool
    consumers: dict[str, list[str]]
    declined: dict[tuple[str, str | None], set[str]]
    bookmark_overrides: dict[tuple[str, str], dict[str, Any]]
    batch_size: int
    max_parallel_streams: int
    cwd: str = ""
    """The client's working folder: relative paths in a block (``path: data``) mean the same there."""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """The client's environment (``env_var()``, secrets from ``JUPYTER_DI_SECRET_*``); never printed."""
    unsent_names: list[str] = field(default_factory=list)
    live_root: str = ""
    """A source whose destinations stream from it: where it announces its live streams (dask_live.py)."""


@dataclass
class TaskOutcome:
    output: Any = None
    summary: dict[str, Any] = field(default_factory=dict)
    pending_states: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    declined: dict[tuple[str, str | None], set[str]] = field(default_factory=dict)
    error: BaseException | None = None
    worker: str = ""


_worker_dirs: dict[str, Any] = {}
_worker_lock = threading.Lock()


def _worker_scratch() -> Path:
    """A run folder of this worker process (when the client's is not visible from here)."""
    from ..run_dirs import RunDir

    with _worker_lock:
        if "dir" not in _worker_dirs:
            _worker_dirs["dir"] = RunDir("daskworker")
        return Path(_worker_dirs["dir"].path)


def sees_shared_dir(shared_dir: str, token: str) -> bool:
    """Whether this process sees the client's run folder (same machine or a shared filesystem)."""
    try:
        return (Path(shared_dir) / TOKEN_FILE).read_text() == token
    except OSError:
        return False


def _portable_error(exc: BaseException) -> BaseException:
    """The error as the client will see it: secrets masked here (this process knows the block's
    secrets), and an error that does not survive pickling becomes a ``BlockFailed`` with its text."""
    from .executor import describe_error

    redact_exception(exc)
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling problem: send the text instead
        return BlockFailed(describe_error(exc))


def _task_context(task: BlockTask, namespace: dict[str, Any], upstream: dict[str, Any]) -> tuple[Where, dict[str, Any], RunContext]:
    """On a worker: where outputs go, the block's upstream outputs, and its run context."""
    from ..state.store import StateStore

    shared = sees_shared_dir(task.shared_dir, task.token)
    if not Path(task.state_path).exists():
        raise ConfigError(
            f"this Dask worker does not see the notebook's state file {task.state_path}: bookmarks would start over.",
            block=task.block.name,
            fix="run the workers where the state file is (a LocalCluster, or a shared filesystem at the same path), "
            "or set JupyterDI.state_path to a path every worker sees.",
        )
    base = Path(task.shared_dir) if shared else _worker_scratch() / task.run_id
    work_dir = base / "blocks" / task.block.name / uuid.uuid4().hex[:8]
    outputs = {
        name: value.open()
        if isinstance(value, LiveHandle)
        else unpack(value.output if isinstance(value, TaskOutcome) else value, work_dir / "in")
        for name, value in upstream.items()
    }
    ctx = RunContext(
        pipeline=task.pipeline,
        state=StateStore(task.state_path),
        work_dir=work_dir,
        variables=task.variables,
        namespace=namespace,
        bookmark_overrides=task.bookmark_overrides,
        consumers=task.consumers,
        max_parallel_streams=task.max_parallel_streams,
        batch_size=task.batch_size,
        identified=task.identified,
    )
    ctx.declined = {k: set(v) for k, v in task.declined.items()}
    ctx.on_progress = _progress_sender(progress_topic(task.run_id))
    import distributed

    set_part_runner(DaskPartRunner(distributed.get_client(), str(task.shared_dir) if shared else None, task.block.name))
    where = Where(
        shared_dir=Path(task.shared_dir) if shared else None,
        spill_url=task.spill_url,
        inline_bytes=task.inline_bytes,
        run_id=task.run_id,
    )
    return where, outputs, ctx


def _worker_name() -> str:
    return os.environ.get("DASK_WORKER_NAME", str(os.getpid()))


def run_block_task(task: BlockTask, namespace: dict[str, Any], upstream: dict[str, Any]) -> TaskOutcome:
    """Run one block on a worker; its outcome (packed output, summary) or its error, never raised."""
    from .block_body import run_block_body

    outcome = TaskOutcome(worker=_worker_name())
    seceded = False
    try:
        where, outputs, ctx = _task_context(task, namespace, upstream)
        if task.live_root:
            ctx.publish = lambda name, output: announce(Path(task.live_root), output)
        block = task.block
        import distributed

        if block.kind == "source" or any(isinstance(v, LiveHandle) for v in upstream.values()):
            # it mostly waits (on its source, on its part tasks, on a source still reading): its thread slot
            # goes to them, or destinations streaming from a split read could hold every slot its parts need
            distributed.secede()
            seceded = True
        with _in_scope(task.cwd, task.env), _file_lock(block):
            try:
                result = run_block_body(block, outputs, ctx)
            except NameError as exc:
                if block.kind == BlockKind.PYTHON and task.unsent_names and any(f"'{n}'" in str(exc) for n in task.unsent_names):
                    raise BlockFailed(
                        f"{exc}: the notebook defines it, but it cannot be pickled, so the Dask workers do not have it.",
                        block=block.name,
                        fix="define it inside the block, or run this notebook with the local executor.",
                    ) from exc
                raise
        outcome.output = pack(result.output, where)
        outcome.summary = result.summary
        outcome.pending_states = list(result.pending_states)
        outcome.declined = ctx.declined
    except BaseException as exc:  # noqa: BLE001 - returned: Dask must retry only when a worker dies
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if caused_by(exc, SourceRestarted):  # rolled back; read the source's new attempt from its start
            import distributed

            raise distributed.Reschedule() from None
        outcome.error = _portable_error(exc)
    finally:
        if seceded:
            import distributed

            distributed.rejoin()
    return outcome


@dataclass
class PairOutcome:
    """A fused pair's task result: each block's own outcome (``run_pair_task``)."""

    source: TaskOutcome
    destination: TaskOutcome


def run_pair_task(task: BlockTask, destination: Block, upstream: dict[str, Any]) -> PairOutcome:
    """Run a source block and its fused destination block (``fusion.py``) in this one task.

    Why one task: the destination takes the source's FULL_TABLE streams as binary COPY data
    (``integration/pass_through.py``), a hand-over between two threads of one process.  In one task
    a worker's death runs the pair again as a whole, and nothing is lost or written twice: each
    passed-through stream is one destination transaction (rolled back when the connection drops)
    that replaces the table, and every other stream follows the committed state as in a local run.
    Inside the task the two blocks run as the local executor runs them: the source on this thread,
    the destination on its own from the moment the source publishes its streams; a block's error is
    its own outcome, and a destination whose source failed before publishing is ``UpstreamFailed``.
    """
    from ..errors import UpstreamFailed
    from .block_body import run_block_body

    source = task.block
    pair = PairOutcome(TaskOutcome(worker=_worker_name()), TaskOutcome(worker=_worker_name()))
    threads: list[threading.Thread] = []
    declined: dict[tuple[str, str | None], set[str]] = {}
    import distributed

    distributed.secede()  # it waits on the servers; its slot goes to other tasks
    try:
        where, outputs, ctx = _task_context(task, {}, upstream)
        ctx.pass_through = {source.name: destination.name}
        declined = ctx.declined

        def write(live_output: Any) -> None:
            try:
                pair.destination.summary = run_block_body(destination, {source.name: live_output}, ctx).summary
            except BaseException as exc:  # noqa: BLE001 - the destination's outcome, as in its own task
                pair.destination.error = _portable_error(exc)

        def publish(name: str, live_output: Any) -> None:
            thread = threading.Thread(target=write, args=(live_output,), name=f"jupyter-di-{destination.name}", daemon=True)
            threads.append(thread)
            thread.start()

        ctx.publish = publish
        with _in_scope(task.cwd, task.env), _file_lock(source), _file_lock(destination):
            try:
                result = run_block_body(source, outputs, ctx)
            finally:
                for thread in threads:
                    thread.join()
        pair.source.output = pack(result.output, where)
        pair.source.summary = result.summary
        pair.source.pending_states = list(result.pending_states)
    except BaseException as exc:  # noqa: BLE001 - returned: Dask must retry only when a worker dies
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if caused_by(exc, SourceRestarted):  # a part's worker died after its rows moved on: run the pair again
            raise distributed.Reschedule() from None
        pair.source.error = _portable_error(exc)
    finally:
        distributed.rejoin()
    if not threads:  # the source failed before it published: the destination never started
        pair.destination.error = UpstreamFailed(source.name)
    pair.source.declined = declined  # both blocks' (one context)
    return pair


def progress_topic(run_id: str) -> str:
    return f"jupyter-di-progress-{run_id}"


def _progress_sender(topic: str) -> Any:
    """Live row counts for the client (what a local run shows while it runs), as Dask worker events
    (``Worker.log_event``, safe from a task's thread), at most one per stream and phase per
    ``PROGRESS_SECONDS``; the client hands them to its observers (``DaskBlockRunner._progress``)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last: dict[tuple[str, str, str], float] = {}

    def send(block: str, stream: str, phase: str, rows: int, seconds: float) -> None:
        now = time.monotonic()
        if now - last.get((block, stream, phase), 0.0) < PROGRESS_SECONDS:
            return
        last[(block, stream, phase)] = now
        worker.log_event(topic, [block, stream, phase, int(rows), float(seconds)])

    return send


class DaskPartRunner:
    """Runs the parts of a split read (``connectors.base.part_runner``) as Dask tasks of their own.

    With a run folder the workers share, each part task spills its batches there as they come and
    announces them like a live source stream (``dask_live.py``); the reading task takes the parts in
    order, each while it is still being read, so the first rows move on at once.  A part whose
    worker dies is run again by the scheduler (the reading task still holds the exported snapshot
    open, so the retry reads the same rows); when the reading task had already passed on some of
    the dead attempt's rows it stops with ``SourceRestarted`` and is itself run again from the
    committed state, with its streaming destinations.  Without a shared folder a part returns its
    rows as one Arrow table, taken as the part completes."""

    name = "dask"

    def __init__(self, client: Any, shared_dir: str | None, block: str = "") -> None:
        self.client = client
        self.shared_dir = shared_dir
        self.block = block

    def __call__(self, jobs: list[Any]) -> Any:
        distributed = _import_distributed()
        batch = uuid.uuid4().hex[:12]
        roots = [str(Path(self.shared_dir) / "parts" / batch / str(i)) if self.shared_dir else None for i in range(len(jobs))]
        futures = [
            self.client.submit(spill_part, job, self.shared_dir, root, key=f"jupyter-di-part-{batch}-{i}", pure=False)
            for i, (job, root) in enumerate(zip(jobs, roots))
        ]
        try:
            if self.shared_dir is not None:
                for i, (future, root) in enumerate(zip(futures, roots)):
                    yield i, _live_part_batches(Path(str(root)), self.block, future)
                return
            order = {future.key: i for i, future in enumerate(futures)}
            for future in distributed.as_completed(futures):
                kind, payload = future.result()
                yield order[future.key], (payload.to_batches() if kind == "arrow" else [])
        finally:
            for future in futures:
                future.cancel()
            if self.shared_dir is not None:
                shutil.rmtree(Path(self.shared_dir) / "parts" / batch, ignore_errors=True)


def spill_part(job: Any, shared_dir: str | None, live_root: str | None = None) -> tuple[str, Any]:
    """On a worker: run one part and keep its batches where the reading task can get them (a live
    spill under ``live_root`` in the shared run folder, else an Arrow table in the result)."""
    import itertools

    import pyarrow as pa

    from ..connectors.base import StreamSettings
    from ..sync.spill import spill
    from .dask_live import live_part

    if live_root is None:
        batches = list(job())
        return ("arrow", pa.Table.from_batches(batches)) if batches else ("empty", None)
    live = live_part(Path(live_root))
    try:
        rows = iter(job())
        first = next(rows, None)
        if first is None:
            live.finish()
            return "empty", None
        live.begin(first.schema, {})
        path = Path(live_root) / f"{uuid.uuid4().hex}.arrow"
        spill(pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], rows)), path, StreamSettings("part"), live=live)
    except BaseException as exc:
        live.fail(exc)
        raise
    return "path", str(path)


def _live_part_batches(root: Path, block: str, future: Any) -> Any:
    """A part's batches while its task writes them; the part's own error if it fails."""
    from ..errors import UpstreamFailed
    from .dask_live import open_part

    try:
        yield from open_part(root, block, future).batches()
    except UpstreamFailed as exc:
        if not isinstance(exc, SourceRestarted):
            future.result(timeout=60)  # the part failed: its own error, not "upstream failed"
        raise


class _Scope:
    """The worker process's working folder and environment, shared by the tasks that want the same.

    Both belong to a process, and a worker runs several tasks at once: the tasks of one run (one
    notebook folder, one client environment) share them; a task of another run waits until they
    are done.  When the last task leaves, the worker's own folder and environment come back."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.current: tuple[str, int] | None = None
        self.users = 0
        self.own: tuple[str, dict[str, str]] | None = None


_SCOPE = _Scope()


class _in_scope:
    """Run a task in the client's working folder with the client's environment (``env_var()``,
    ``JUPYTER_DI_SECRET_*``): relative paths and templates then mean what they mean in a local run."""

    def __init__(self, folder: str, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.key = (folder, hash(frozenset(env.items())))

    def __enter__(self) -> None:
        if not self.folder:
            return
        with _SCOPE.cond:
            _SCOPE.cond.wait_for(lambda: _SCOPE.users == 0 or _SCOPE.current == self.key)
            if _SCOPE.users == 0:
                _SCOPE.own = (os.getcwd(), dict(os.environ))
                os.chdir(self.folder)
                os.environ.clear()
                os.environ.update(self.env)
                _SCOPE.current = self.key
            _SCOPE.users += 1

    def __exit__(self, *exc: object) -> None:
        if not self.folder:
            return
        with _SCOPE.cond:
            _SCOPE.users -= 1
            if _SCOPE.users == 0 and _SCOPE.own is not None:
                folder, env = _SCOPE.own
                os.environ.clear()
                os.environ.update(env)
                try:
                    os.chdir(folder)
                except OSError:
                    pass
                _SCOPE.current = _SCOPE.own = None
            _SCOPE.cond.notify_all()


class _file_lock:
    """One task at a time per DuckDB/SQLite file across the cluster (a file database has one writer)."""

    def __init__(self, block: Block) -> None:
        self.name = file_lock_name(block)
        self.lock: Any = None

    def __enter__(self) -> None:
        if self.name is None:
            return
        from distributed import Lock

        self.lock = Lock(self.name)
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.release()


def file_lock_name(block: Block) -> str | None:
    """``jupyter-di:<connector>:<path as written>`` for YAML blocks of a file database (a templated
    path locks the whole connector), None otherwise."""
    connector, data = block_connector(block)
    if connector not in FILE_DATABASES:
        return None
    path = str((data.get("config") or {}).get("path") or "")
    return f"jupyter-di:{connector}:{'*' if '{{' in path else path}"


def block_connector(block: Block) -> tuple[str, dict[str, Any]]:
    """A YAML source or destination block's connector name and its parsed body (else ``""``)."""
    if block.kind not in (BlockKind.SOURCE, BlockKind.DESTINATION) or block.lang != "yaml":
        return "", {}
    from ..integration.safe_yaml import load

    try:
        data = load(block.body) or {}
    except Exception:  # noqa: BLE001 - the block itself reports bad YAML when it runs
        return "", {}
    return (str(data.get(block.kind) or ""), data) if isinstance(data, dict) else ("", {})


def warm_up(connectors: list[str]) -> None:
    """On a worker, before its first block task: import the engine and the run's connectors (0.5-1 s
    per process), so a destination task that starts while its source reads does not import first."""
    from ..connectors import registry
    from ..integration import runner  # noqa: F401
    from . import block_body  # noqa: F401

    for name in connectors:
        try:
            spec = registry.get(name)
            for cls in (spec.source, spec.destination):
                if cls is not None:
                    __import__(cls.__module__)
        except Exception:  # noqa: BLE001 - the block reports an unknown connector itself
            pass


# -- on the client -------------------------------------------------------------------------------


def _quiet_distributed() -> None:
    """Dask's own loggers print tracebacks for every lost connection; the run reports the failure
    once, in its own words, so only their critical messages are kept."""
    for name in [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


class DaskSession:
    """The client (and, without a scheduler address, the LocalCluster) of one pipeline."""

    def __init__(self, settings: Settings, work_dir: Path) -> None:
        self.settings = settings
        self.scheduler = settings.dask_scheduler or None
        self.work_dir = Path(work_dir) / "dask"
        self.token = secrets.token_hex(16)
        self.cluster: Any = None
        self.client: Any = None
        self.shared = False
        self.warmed: set[str] = set()
        """Workers that were sent ``warm_up``."""
        self.warming: list[Any] = []
        """Their futures (a future nobody holds is forgotten by the scheduler before it runs)."""
        self._lock = threading.Lock()

    def start(self) -> Any:
        with self._lock:
            if self.client is not None:
                return self.client
            distributed = _import_distributed()
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / TOKEN_FILE).write_text(self.token)
            _quiet_distributed()
            try:
                if self.scheduler:
                    self.client = distributed.Client(self.scheduler, timeout=30, set_as_default=False)
                else:
                    self.cluster = distributed.LocalCluster(
                        n_workers=self.settings.dask_workers or LOCAL_WORKERS,
                        threads_per_worker=LOCAL_THREADS_PER_WORKER,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",  # any free port, on this machine only (no fixed 8787)
                        silence_logs=logging.ERROR,
                    )
                    self.client = distributed.Client(self.cluster, set_as_default=False)
            except OSError as exc:
                self.close()
                raise DaskUnavailable(
                    f"could not reach the Dask scheduler at {self.scheduler}: {exc}",
                    fix="check the address (tcp://HOST:PORT) and that the scheduler runs, or leave --scheduler out for a local cluster.",
                ) from None
            seen = self.client.run(sees_shared_dir, str(self.work_dir), self.token)
            self.shared = bool(seen) and all(seen.values())
            return self.client

    def close(self) -> None:
        with self._lock:
            for thing in (self.client, self.cluster):
                if thing is not None:
                    try:
                        thing.close()
                    except Exception:  # noqa: BLE001 - closing a lost cluster: nothing to keep
                        pass
            self.client = self.cluster = None
            self.warming.clear()
            self.warmed.clear()

    def describe(self) -> str:
        return self.scheduler or "a local Dask cluster"


class DaskBlockRunner:
    """Runs the blocks of one pipeline run as Dask tasks (see the module docstring)."""

    def __init__(self, session: DaskSession, pipeline: Any, ctx: RunContext) -> None:
        self.session = session
        self.pipeline = pipeline
        self.ctx = ctx
        self.client = session.start()
        self.run_id = uuid.uuid4().hex[:12]
        self.futures: dict[str, Any] = {}
        self.pairs: dict[str, tuple[str, Any]] = {}
        """fused destination block -> (its source block, their one task's future)"""
        self._lock = threading.Lock()
        self._namespace_future: Any = None
        self._unsent: list[str] = []
        self.topic = progress_topic(self.run_id)
        self._warmed = False
        if ctx.on_progress is not None:
            self.client.subscribe_topic(self.topic, self._progress)

    def _warm_up(self) -> None:
        """Workers this session has not used yet import the run's connectors now, in a thread slot
        of their own, while the first tasks start (not waited for: a failure here changes nothing).
        Only once a block runs as a task of its own: a fused pair imports in its one task, and warming
        the other workers would take CPU from it (1M rows PG->PG on 2 cores: about 0.3 s)."""
        with self._lock:
            if self._warmed:
                return
            self._warmed = True
        connectors = sorted({name for b in self.pipeline.graph.blocks.values() if (name := block_connector(b)[0])})
        try:
            workers = list(self.client.scheduler_info().get("workers", {}))
        except Exception:  # noqa: BLE001 - no worker list: nothing to warm
            return
        for address in workers:
            if address in self.session.warmed:
                continue
            self.session.warmed.add(address)
            self.session.warming.append(
                self.client.submit(
                    warm_up,
                    connectors,
                    workers=[address],
                    allow_other_workers=False,
                    pure=False,
                    key=f"jupyter-di-warm-{uuid.uuid4().hex[:12]}",
                )
            )

    def _progress(self, event: Any) -> None:
        """A worker's row count (``_progress_sender``), on the client's event loop: to the observers."""
        try:
            _, (block, stream, phase, rows, seconds) = event
            if self.ctx.on_progress is not None:
                self.ctx.on_progress(block, stream, phase, rows, seconds)
        except Exception:  # noqa: BLE001 - a progress display must never break a run
            pass

    def _namespace(self) -> Any:
        with self._lock:
            if self._namespace_future is None:
                namespace, self._unsent = picklable_namespace(self.ctx.namespace)
                [self._namespace_future] = self.client.scatter([namespace], broadcast=True, hash=False)
            return self._namespace_future

    def run_one(self, block: Block, upstream_outputs: dict[str, Any], ctx: RunContext) -> BlockResult:
        fused = self._pair_destination(block, ctx)
        if fused is not None:
            return fused
        where = Where(
            shared_dir=self.session.work_dir if self.session.shared else None,
            spill_url=self.pipeline.settings.spill_url,
            inline_bytes=self.pipeline.settings.dask_inline_bytes,
            run_id=self.run_id,
        )
        upstream: dict[str, Any] = {}
        for name in block.upstream:
            with self._lock:
                future = self.futures.get(name)
            upstream[name] = future if future is not None else pack(upstream_outputs[name], where)
        task = BlockTask(
            block=block,
            pipeline=ctx.pipeline,
            state_path=str(ctx.state.path),
            shared_dir=str(self.session.work_dir),
            token=self.session.token,
            run_id=self.run_id,
            spill_url=self.pipeline.settings.spill_url,
            inline_bytes=self.pipeline.settings.dask_inline_bytes,
            variables=dict(ctx.variables),
            identified=ctx.identified,
            consumers=dict(ctx.consumers),
            declined={k: set(v) for k, v in ctx.declined.items()},
            bookmark_overrides=dict(ctx.bookmark_overrides),
            batch_size=ctx.batch_size,
            max_parallel_streams=ctx.max_parallel_streams,
            cwd=os.getcwd(),
            env=dict(os.environ),
            unsent_names=self._unsent,
        )
        pair_with = ctx.pass_through.get(block.name)
        if pair_with is not None:
            return self._run_pair(task, pair_with, upstream, ctx)
        self._warm_up()
        root = self._live_root(block, ctx)
        if root is not None:
            task.live_root = str(root)
        namespace = self._namespace() if block.kind == BlockKind.PYTHON or block.lang == "python" else {}
        future = self.client.submit(
            run_block_task, task, namespace, upstream, key=f"jupyter-di-block-{block.name}-{self.run_id}", pure=False
        )
        try:
            if root is not None:
                self._publish_when_announced(future, root, block, ctx)
            outcome: TaskOutcome = future.result()
        except Exception as exc:
            if root is not None:
                mark_failed(root)
            raise self._lost(exc, block) from None
        if outcome.error is not None and root is not None:
            mark_failed(root)
        result = self._result(outcome, block, ctx)
        with self._lock:
            self.futures[block.name] = future
        return result

    def _result(self, outcome: TaskOutcome, block: Block, ctx: RunContext) -> BlockResult:
        """A task's outcome as the block's result here (its error raised)."""
        for key, names in outcome.declined.items():
            for name in names:
                ctx.decline(key[0], key[1], name)
        if outcome.error is not None:
            raise outcome.error
        output = unpack(outcome.output, Path(self.session.work_dir) / self.run_id / "client" / block.name)
        return BlockResult(output=output, summary=outcome.summary, pending_states=outcome.pending_states)

    def fusable(self, pairs: dict[str, str]) -> dict[str, str]:
        """The fused pairs (``fusion.py``) that run as one task here: those that can pass a stream
        through (a source connector that offers binary COPY data, a destination that takes it), and
        whose source splits no read into parts (their tasks spread over the workers), unless every
        ``partitions:`` is ``auto`` and the destination splits the read itself (DuckDB's postgres
        scanner).  The others gain nothing from sharing one process and keep a task each, in two
        processes (both blocks' Python then runs in parallel)."""
        from ..connectors import registry

        graph, effective = self.pipeline.graph, self.pipeline.effective
        kept: dict[str, str] = {}
        for source, destination in pairs.items():
            reads, data = block_connector(effective(graph[source]))
            writes, _ = block_connector(effective(graph[destination]))
            if not (reads and writes and can_pass_through(reads, writes)):
                continue
            parts = set(_values_of(data, "partitions")) - {None, 1}
            if not parts or (parts == {"auto"} and registry.destination_class(writes).splits_reads_itself):
                kept[source] = destination
        return kept

    def _run_pair(self, task: BlockTask, destination: str, upstream: dict[str, Any], ctx: RunContext) -> BlockResult:
        """A fused source block: it and its destination block run as one task (``run_pair_task``);
        the destination's thread here waits for the same task (``_pair_destination``)."""
        block = task.block
        future = self.client.submit(
            run_pair_task,
            task,
            self.pipeline.effective(self.pipeline.graph[destination]),
            upstream,
            key=f"jupyter-di-pair-{block.name}-{self.run_id}",
            pure=False,
        )
        with self._lock:
            self.pairs[destination] = (block.name, future)
        if ctx.publish is not None:
            ctx.publish(block.name, FusedOutput(block.name))  # the destination block starts (and waits for the task)
        try:
            pair: PairOutcome = future.result()
        except Exception as exc:
            raise self._lost(exc, block) from None
        return self._result(pair.source, block, ctx)

    def _pair_destination(self, block: Block, ctx: RunContext) -> BlockResult | None:
        """A fused destination block: its part of its source's task (None: not fused)."""
        with self._lock:
            source, future = self.pairs.get(block.name, (None, None))
        if future is None or source is None:
            return None
        try:
            pair: PairOutcome = future.result()
        except Exception:
            from ..errors import UpstreamFailed

            raise UpstreamFailed(source) from None  # the source block reports the lost task
        return self._result(pair.destination, block, ctx)

    @property
    def streams(self) -> bool:
        """Whether destinations may stream from running sources (the workers see the run folder)."""
        return self.session.shared

    def _live_root(self, block: Block, ctx: RunContext) -> Path | None:
        """Where a source block with destinations announces its live streams (None: no streaming)."""
        if block.kind != BlockKind.SOURCE or ctx.publish is None or not self.session.shared or not ctx.consumers.get(block.name):
            return None
        return live_root(self.session.work_dir, self.run_id, block.name)

    def _publish_when_announced(self, future: Any, root: Path, block: Block, ctx: RunContext) -> None:
        """Start the destinations once the source task has opened its streams (not before: a source
        that fails first must not start them), as a local source publishes its ``LiveSpill``s."""
        while not future.done() and not announced(root):
            time.sleep(0.02)
        if announced(root) and not future.done() and ctx.publish is not None:
            ctx.publish(block.name, LiveHandle(str(root), block.name, ctx.pipeline))

    def _lost(self, exc: BaseException, block: Block) -> DIError:
        distributed = _import_distributed()
        if isinstance(exc, distributed.KilledWorker):
            return BlockFailed(
                f"the Dask workers running block {block.name!r} died several times (out of memory, or killed); "
                "what they committed stays, and the next run resumes from it.",
                block=block.name,
                fix="give the workers more memory (or fewer threads), then run again.",
            )
        reason = (
            "the connection was lost"
            if isinstance(exc, CancelledError) or "cancelled" in type(exc).__name__.lower()
            else f"{type(exc).__name__}: {exc}"
        )
        return BlockFailed(
            redact(
                f"lost the Dask scheduler ({self.session.describe()}) while block {block.name!r} ran ({reason}). "
                "Rows and bookmarks committed so far are kept; the next run resumes from them."
            ),
            block=block.name,
            fix="restart the scheduler (or run without --scheduler for a local cluster) and run the notebook again.",
        )

    def close(self) -> None:
        with self._lock:
            self.futures.clear()
            self.pairs.clear()
            self._namespace_future = None
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: BLE001 - a lost scheduler: nothing left to unsubscribe from
            pass
        remove_spilled(self.pipeline.settings.spill_url, self.run_id)


@dataclass
class FusedOutput:
    """What a fused source block publishes on the client: its destination block's thread starts and
    waits for their one task (the streams themselves never leave the worker)."""

    block: str


def can_pass_through(source: str, destination: str) -> bool:
    """Whether connector ``source`` offers binary COPY data and connector ``destination`` takes it."""
    from ..connectors import registry
    from ..integration.pass_through import offers_binary_copy, takes_binary_copy

    try:
        return offers_binary_copy(registry.source_class(source)) and takes_binary_copy(registry.destination_class(destination))
    except DIError:  # an unknown connector: the block says so when it runs
        return False


def _values_of(data: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a block's parsed YAML."""
    if isinstance(data, dict):
        return [v for k, v in data.items() if k == key] + [x for v in data.values() for x in _values_of(v, key)]
    if isinstance(data, list):
        return [x for v in data for x in _values_of(v, key)]
    return []


def picklable_namespace(namespace: Any) -> tuple[dict[str, Any], list[str]]:
    """The notebook names a worker can have (what pickles, by value or by reference), and the rest."""
    import cloudpickle  # type: ignore[import-untyped]

    sent: dict[str, Any] = {}
    unsent: list[str] = []
    for name, value in dict(namespace).items():
        if name.startswith("__") and name != "__name__":
            continue
        try:
            cloudpickle.dumps(value)
        except Exception:  # noqa: BLE001 - whatever stops pickling: that name stays here
            unsent.append(name)
            continue
        sent[name] = value
    return sent, unsent


EXECUTORS = ("local", "dask")


def dask_runner(pipeline: Any, ctx: RunContext) -> DaskBlockRunner | None:
    """The runner for this run when the pipeline's settings choose Dask (None: run locally).  One
    session (client, local cluster) per pipeline, kept between runs; a new scheduler address starts
    a new one."""
    executor = str(pipeline.settings.executor or "local").lower()
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}.", fix="set JupyterDI.executor to 'local' or 'dask'.")
    if executor == "local":
        return None
    session: DaskSession | None = getattr(pipeline, "_dask_session", None)
    if session is not None and session.scheduler != (pipeline.settings.dask_scheduler or None):
        session.close()
        session = None
    if session is None:
        session = DaskSession(pipeline.settings, pipeline.work_dir)
        pipeline._dask_session = session
    return DaskBlockRunner(session, pipeline, ctx)


def close_dask(pipeline: Any) -> None:
    """Close the pipeline's Dask client (and stop its local cluster), if it has one."""
    session: DaskSession | None = getattr(pipeline, "_dask_session", None)
    if session is not None:
        session.close()
        pipeline._dask_session = None
