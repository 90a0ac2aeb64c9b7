"""Which notebook a kernel serves: the pipeline's name and the state file its bookmarks live in.

Why: bookmarks are kept per (pipeline name, block, stream).  Two notebooks must never share a
name, and one notebook must get the same name and state file in every client — JupyterLab,
VS Code, nbconvert, papermill, ``jupyter execute`` — as in ``jupyter-di run`` (the stem, and
``.jupyter_di/state.sqlite`` beside the notebook).  Front ends that edit a notebook tell the
kernel its path (``JPY_SESSION_NAME``, ``__vsc_ipynb_file__``); nbclient-based batch clients
tell nothing (measured: no env, no execute-request metadata), but they are the kernel's parent
process and name the notebook on their command line.

Order: an explicit name (``JupyterDI.pipeline_name``, ``$JUPYTER_DI_PIPELINE``) names the
pipeline; the notebook is found from a batch-client parent first (a kernel started by
nbconvert from inside JupyterLab inherits JupyterLab's ``JPY_SESSION_NAME``, which names the
*other* notebook), then from what the front end says.  Nothing found: the pipeline is
"unidentified" and INCREMENTAL streams refuse to run (their bookmarks would be shared).
No IPython here: the session passes in what it knows.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..pipeline.notebook_file import pipeline_name
from ..state.api import state_path_for

UNIDENTIFIED_NAME = "notebook"

# The nbclient-based clients, by program (``jupyter nbconvert`` execs ``jupyter-nbconvert``),
# with their options that take values: {name without dashes: how many values}.  Values are
# skipped so that ``--output out.ipynb`` or ``-p name x.ipynb`` is never taken for the input.
_TRAITLETS_COMMON = {"log-level": 1, "config": 1}
CLIENTS: dict[str, tuple[str, dict[str, int]]] = {
    "jupyter-nbconvert": (
        "nbconvert",
        {
            **_TRAITLETS_COMMON,
            **dict.fromkeys(
                [
                    "to",
                    "template",
                    "template-file",
                    "theme",
                    "sanitize_html",
                    "writer",
                    "post",
                    "output",
                    "output-dir",
                    "reveal-prefix",
                    "nbformat",
                ],
                1,
            ),
        },
    ),
    "jupyter-execute": (
        "jupyter execute",
        {**_TRAITLETS_COMMON, **dict.fromkeys(["timeout", "startup_timeout", "kernel_name", "output"], 1)},
    ),
    "papermill": (
        "papermill",
        {
            "p": 2,
            "parameters": 2,
            "r": 2,
            "parameters_raw": 2,
            **dict.fromkeys(
                [
                    "f",
                    "parameters_file",
                    "y",
                    "parameters_yaml",
                    "b",
                    "parameters_base64",
                    "engine",
                    "autosave-cell-every",
                    "k",
                    "kernel",
                    "l",
                    "language",
                    "cwd",
                    "stdout-file",
                    "stderr-file",
                    "log-level",
                    "start-timeout",
                    "start_timeout",
                    "execution-timeout",
                ],
                1,
            ),
        },
    ),
}
MODULES = {"nbconvert": "jupyter-nbconvert", "papermill": "papermill"}
WRAPPERS = {
    "sh",
    "bash",
    "dash",
    "zsh",
    "env",
    "conda",
    "mamba",
    "micromamba",
    "uv",
    "pixi",
    "poetry",
    "pipenv",
    "hatch",
    "nice",
    "timeout",
    "stdbuf",
}
"""Launchers a kernel spec may put between the client and the kernel: looked through (3 levels)."""


@dataclass(frozen=True)
class Identity:
    name: str
    """The pipeline name bookmarks are kept under."""
    state_path: Path
    notebook: Path | None
    """The notebook file, when known (its saved cells define upstreams the kernel has not run)."""
    how: str
    """Where the name came from: JupyterDI.pipeline_name, JUPYTER_DI_PIPELINE, JPY_SESSION_NAME,
    __session__, __vsc_ipynb_file__, nbconvert, papermill, jupyter execute, JupyterDI.state_path,
    JUPYTER_DI_STATE_PATH or unidentified."""
    identified: bool
    settled: bool = True
    """False while a batch client names several notebooks this kernel cannot yet tell apart
    (later cells may): ask again before the next run."""
    detail: str = ""
    workdir: Path | None = None
    """The folder relative paths mean when the kernel was started elsewhere: the notebook's
    folder under papermill without ``--cwd`` (every other client starts the kernel there, and
    ``jupyter-di run`` works there); None: the kernel's folder is right."""
    client: str | None = None
    """The batch client that started this kernel (nbconvert, papermill, jupyter execute), if any:
    it shows no widgets and saves their state into the notebook, so no panels there."""


@dataclass(frozen=True)
class ProcessInfo:
    ppid: int
    argv: list[str]
    cwd: Path | None
    pwd: str | None
    """$PWD in its environment: the shell's folder when it started (papermill --cwd moves the process)."""


def process_info(pid: int) -> ProcessInfo | None:
    """A process's parent, command line and folders: psutil when installed, else Linux /proc."""
    try:
        import psutil
    except ImportError:
        pass  # the /proc fallback below
    else:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                return ProcessInfo(proc.ppid(), proc.cmdline(), Path(proc.cwd()), _safe(lambda: proc.environ().get("PWD")))
        except (psutil.Error, OSError):
            return None
    base = Path("/proc") / str(pid)
    try:
        argv = [a.decode(errors="replace") for a in (base / "cmdline").read_bytes().split(b"\0") if a]
        ppid = int((base / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
    cwd = _safe(lambda: Path(os.readlink(base / "cwd")))
    environ = _safe(lambda: (base / "environ").read_bytes().split(b"\0")) or []
    pwd = next((e[4:].decode(errors="replace") for e in environ if e.startswith(b"PWD=")), None)
    return ProcessInfo(ppid, argv, cwd, pwd)


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - another user's process, a race with its exit
        return None


def batch_client(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """The nbclient client a command line runs, and the arguments it was given (None: another program)."""
    for i, arg in enumerate(argv[:4]):
        program = os.path.basename(arg).removesuffix(".exe").removesuffix(".py")
        if arg == "-m" and i + 1 < len(argv):
            program = MODULES.get(argv[i + 1], "")
            i += 1
        if program in CLIENTS:
            return program, list(argv[i + 1 :])
    return None


def positionals(args: Iterable[str], value_options: Mapping[str, int], *, traitlets: bool) -> list[str]:
    """The command's non-option arguments (option values skipped; traitlets' ``--Class.trait X`` takes one)."""
    out: list[str] = []
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("-") and arg != "-":
            name = arg.lstrip("-")
            if "=" not in name:
                i += value_options.get(name, 1 if traitlets and "." in name else 0)
            continue
        out.append(arg)
    return out


def notebook_candidates(program: str, args: Sequence[str], roots: Sequence[Path]) -> list[Path]:
    """The notebooks a client's command line names, resolved against the folders it may mean.

    nbconvert and ``jupyter execute`` take several (and add ``.ipynb`` to a bare name; nbconvert
    expands globs); papermill's first positional is its input, the second its output.
    """
    _label, options = CLIENTS[program]
    names = positionals(args, options, traitlets=program != "papermill")
    if program == "papermill":
        names = names[:1]
    found: list[Path] = []
    for name in names:
        for root in roots:
            hits = _expand(root / name, globbing=program == "jupyter-nbconvert")
            if hits:
                found.extend(h for h in hits if h not in found)
                break
    return found


def _expand(path: Path, *, globbing: bool) -> list[Path]:
    if globbing and glob.has_magic(str(path)):
        return [Path(p).resolve() for p in sorted(glob.glob(str(path))) if Path(p).is_file()]
    for candidate in (path, path.with_name(path.name + ".ipynb"), path.with_suffix(".ipynb")):
        if candidate.is_file():
            return [candidate.resolve()]
    return []


def _code_cells(path: Path) -> list[dict[str, Any]]:
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return ("".join(src) if isinstance(src, list) else str(src)).strip()


def pick(candidates: list[Path], *, cell_id: str | None, cwd: Path, executed: Sequence[str]) -> list[Path]:
    """Narrow several candidate notebooks down (one left: found).

    1. the cell id of the current execute request (JupyterLab and VS Code send ``cellId``;
       nbclient 0.11 sends no metadata at all, but a later one may);
    2. the kernel's folder: nbconvert and ``jupyter execute`` start the kernel beside its notebook;
    3. the code this kernel has executed: nbclient sends each cell's source as it stands in the
       file, so the notebook holding most of it is the one (identical copies stay undecided).
    """
    if len(candidates) <= 1:
        return candidates
    cells = {c: _code_cells(c) for c in candidates}
    ran = [s.strip() for s in executed if s and s.strip()]
    narrowers: list[Callable[[Path], Any]] = [
        lambda c: bool(cell_id) and any(cell.get("id") == cell_id for cell in cells[c]),
        lambda c: c.parent == cwd,
        lambda c: sum(s in {_source(cell) for cell in cells[c]} for s in ran),
    ]
    remaining = candidates
    for narrower in narrowers:
        scores = {c: narrower(c) for c in remaining}
        best = max(scores.values())
        if best:
            remaining = [c for c in remaining if scores[c] == best]
        if len(remaining) == 1:
            break
    return remaining


def from_parent(
    *, cell_id: str | None, executed: Sequence[str], cwd: Path | None = None, pid: int | None = None
) -> tuple[str, list[Path], bool] | None:
    """(client label, the notebooks it may be running, whether the user chose the kernel's folder)
    when a batch client started this kernel (only papermill's ``--cwd`` chooses it)."""
    info = process_info(os.getppid() if pid is None else pid)
    for _ in range(3):
        if info is None or not info.argv:
            return None
        if os.path.basename(info.argv[0]) not in WRAPPERS:
            break
        info = process_info(info.ppid)
    if info is None:
        return None
    client = batch_client(info.argv)
    if client is None:
        return None
    program, args = client
    roots = [r for r in (info.cwd, Path(info.pwd) if info.pwd else None) if r is not None]
    chosen = program == "papermill" and any(a == "--cwd" or a.startswith("--cwd=") for a in args)
    if chosen:
        roots.reverse()  # papermill read its input before moving to --cwd
    candidates = notebook_candidates(program, args, roots)
    return CLIENTS[program][0], pick(candidates, cell_id=cell_id, cwd=(cwd or Path.cwd()).resolve(), executed=executed), chosen


def from_front_end(user_ns: Mapping[str, Any]) -> tuple[str, Path] | None:
    """What JupyterLab (``JPY_SESSION_NAME``, mirrored by ipykernel as ``__session__``) or VS Code says."""
    for how, value in (
        ("JPY_SESSION_NAME", os.environ.get("JPY_SESSION_NAME")),
        ("__session__", user_ns.get("__session__")),
        ("__vsc_ipynb_file__", user_ns.get("__vsc_ipynb_file__")),
    ):
        if value and str(value).endswith(".ipynb"):
            return how, notebook_file(Path(str(value)))
    return None


def notebook_file(path: Path) -> Path:
    """The notebook on disk: JupyterLab may name it relative to the server root; the kernel runs beside it."""
    if path.is_absolute():
        return path
    beside = Path.cwd() / path.name
    return beside if beside.exists() else path


def identify(
    *,
    user_ns: Mapping[str, Any],
    pipeline_name_setting: str | None = None,
    state_path_setting: str | None = None,
    cell_id: str | None = None,
    executed: Sequence[str] = (),
) -> Identity:
    """The pipeline this kernel runs: see the module docstring for the order."""
    how, notebook, detail, settled, workdir, client = "unidentified", None, "", True, None, None
    batch = from_parent(cell_id=cell_id, executed=executed)
    if batch is not None:
        label, candidates, chosen = batch
        client = label
        if len(candidates) == 1:
            how, notebook = label, candidates[0]
            if not chosen and notebook.parent != Path.cwd().resolve():
                workdir = notebook.parent
        elif candidates:
            detail = f"{label} runs {', '.join(c.name for c in candidates)} and this kernel cannot tell which is its own"
            settled = False
        else:
            detail = f"{label} names no notebook file this kernel can find"
    else:
        front = from_front_end(user_ns)
        if front is not None:
            how, notebook = front
        else:
            detail = "no front end or batch client says which notebook this kernel runs"
    name = pipeline_name(notebook) if notebook is not None else UNIDENTIFIED_NAME
    state_env = os.environ.get("JUPYTER_DI_STATE_PATH")
    if state_path_setting:
        state_path = Path(state_path_setting)
    elif notebook is not None and (notebook.is_absolute() or notebook.exists()):
        state_path = state_path_for(notebook)  # exactly what `jupyter-di run` uses
    else:
        state_path = Path(state_env) if state_env else Path.cwd() / ".jupyter_di" / "state.sqlite"
    identified = notebook is not None
    for origin, value in (
        ("JupyterDI.pipeline_name", pipeline_name_setting),
        ("JUPYTER_DI_PIPELINE", os.environ.get("JUPYTER_DI_PIPELINE")),
    ):
        if value:
            name, how, identified, settled = value, origin, True, True
            break
    else:
        if not identified and (state_path_setting or state_env):
            # the user chose the state file: its bookmarks are theirs to share
            how, identified, settled = ("JupyterDI.state_path" if state_path_setting else "JUPYTER_DI_STATE_PATH"), True, True
    return Identity(
        name=name,
        state_path=state_path,
        notebook=notebook,
        how=how,
        identified=identified,
        settled=settled,
        detail=detail,
        workdir=workdir,
        client=client,
    )
