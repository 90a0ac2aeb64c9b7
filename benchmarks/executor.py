"""Executor overhead: a generated notebook of N trivial blocks in a layered graph.

Prints, in one table, planning time and executor overhead per block for the
kernel path (what %di_run does, live display included, in an in-process IPython shell) and the CLI path
(`jupyter-di run` in a fresh process), plus CLI start-up to the first block.
Targets (issue 2): under 5 ms overhead per block; CLI start-up under 1.5 s.
Then a dynamic block with ``--children`` items (issue 20): each item runs a child of a trivial block,
and a block reduces them; planning (expansion) and executor overhead per child, same two paths.
Target: under 5 ms per child.

    python benchmarks/executor.py [--blocks 200] [--layers 10] [--children 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat


def make_notebook(path: Path, blocks: int, layers: int) -> None:
    per_layer = max(1, blocks // layers)
    cells = [nbformat.v4.new_code_cell("%load_ext jupyter_di\nimport time\nSTARTS = []")]
    names: list[list[str]] = []
    count = 0
    for layer in range(layers):
        names.append([])
        for i in range(per_layer):
            if count >= blocks:
                break
            name = f"b{layer}_{i}"
            ups = names[layer - 1][i % len(names[layer - 1]) :][:2] if layer else []
            if layer and len(ups) < 2 and len(names[layer - 1]) > 1:
                ups = [names[layer - 1][i % len(names[layer - 1])], names[layer - 1][(i + 1) % len(names[layer - 1])]]
            flag = f" --upstream {' '.join(ups)}" if ups else ""
            cells.append(
                nbformat.v4.new_code_cell(
                    f"%%di_block {name}{flag}\n@custom\ndef f(*args, **kwargs):\n    STARTS.append(time.time())\n    return len(args)\n"
                )
            )
            names[layer].append(name)
            count += 1
    cells.append(nbformat.v4.new_code_cell("print('FIRST_BLOCK_AT', min(STARTS))"))
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, path)


def make_dynamic_notebook(path: Path, children: int) -> None:
    """A dynamic block with ``children`` items, a trivial child per item, a block reducing them."""
    cells = [
        "%load_ext jupyter_di\nimport time\nSTARTS = []",
        f"%%di_block items --dynamic\n@data_loader\ndef f(*args, **kwargs):\n    STARTS.append(time.time())\n    return list(range({children}))\n",
        "%%di_block child --upstream items\n@transformer\ndef g(item, *args, **kwargs):\n    return item + 1\n",
        "%%di_block total --upstream child --reduce-output\n@transformer\ndef h(values, *args, **kwargs):\n    return sum(values)\n",
        "print('FIRST_BLOCK_AT', min(STARTS))",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def kernel_path(path: Path, blocks: int) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_di.notebook.extension import session_for
    from jupyter_di.pipeline.notebook_file import load_notebook

    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("jupyter_di")
    session = session_for(ip)
    session.pipeline.namespace.update({"time": time, "STARTS": []})
    for block in load_notebook(path).blocks:
        session.pipeline.graph.add(block)
    started = time.perf_counter()
    session.pipeline.plan(list(session.pipeline.graph.blocks), {}, only_stale_ancestors=False)
    planning = time.perf_counter() - started
    import contextlib
    import io

    from jupyter_di.pipeline.executor import Executor  # noqa: F401 - warm import outside the timing

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the live HTML table, as %di_run shows it
        report = session.run_pipeline(None)
    total = time.perf_counter() - started
    assert report.ok and len(report.runs) == blocks, report.failure_message()
    return {"planning_ms": planning * 1000, "overhead_ms_per_block": total * 1000 / blocks}


def cli_path(path: Path, blocks: int) -> dict[str, float]:
    env = dict(os.environ, JUPYTER_DI_STATE_PATH=str(path.parent / "state.sqlite"))
    launched = time.time()
    proc = subprocess.run([sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(path)], capture_output=True, text=True, env=env)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr
    first = float(next(line for line in proc.stdout.splitlines() if line.startswith("FIRST_BLOCK_AT")).split()[1])
    # planning in-process, same code the CLI runs
    from jupyter_di.pipeline.graph import Graph
    from jupyter_di.pipeline.notebook_file import load_notebook

    started = time.perf_counter()
    graph = Graph(load_notebook(path).blocks)
    graph.validate()
    graph.topological_order()
    planning = time.perf_counter() - started
    return {"planning_ms": planning * 1000, "startup_s": first - launched, "overhead_ms_per_block": (ended - first) * 1000 / blocks}


def dynamic_paths(path: Path, children: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per child: the kernel's %di_run (live table included) and `jupyter-di run`, each the whole run divided by
    the children (the dynamic block and the reducer included, so an upper bound)."""
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_di.notebook.extension import session_for
    from jupyter_di.pipeline.dynamic import DynamicRun, scope_of
    from jupyter_di.pipeline.notebook_file import load_notebook

    ip = InteractiveShell.instance()
    session = session_for(ip)
    for name in list(session.pipeline.graph.blocks):
        session.pipeline.forget(name)
    session.pipeline.namespace.update({"time": time, "STARTS": []})
    for block in load_notebook(path).blocks:
        session.pipeline.graph.add(block)
    started = time.perf_counter()
    plan = session.pipeline.plan(list(session.pipeline.graph.blocks), {}, only_stale_ancestors=False)
    scope = scope_of(session.pipeline.graph)
    dyn = DynamicRun(session.pipeline.graph, [n for n in plan if n != "items"], scope, {"items": list(range(children))})
    dyn._expand_ready({})  # the expansion a run does once the dynamic block is done
    planning = time.perf_counter() - started
    assert len(dyn.blocks) == children
    import contextlib
    import io

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        report = session.run_pipeline(None)
    total = time.perf_counter() - started
    assert report.ok and session.pipeline.outputs["total"] == sum(range(1, children + 1)), report.failure_message()
    kernel = {"planning_ms": planning * 1000 / children, "overhead_ms": total * 1000 / children}
    cli = cli_path(path, children)
    return kernel, {"planning_ms": float("nan"), "overhead_ms": cli["overhead_ms_per_block"], "startup_s": cli["startup_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--children", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layered.ipynb"
        make_notebook(path, args.blocks, args.layers)
        os.environ["JUPYTER_DI_STATE_PATH"] = str(Path(tmp) / "kernel-state.sqlite")
        kernel = kernel_path(path, args.blocks)
        cli = cli_path(path, args.blocks)
        dynamic_path = Path(tmp) / "dynamic.ipynb"
        make_dynamic_notebook(dynamic_path, args.children)
        dyn_kernel, dyn_cli = dynamic_paths(dynamic_path, args.children)
    print(f"{args.blocks} trivial blocks in {args.layers} layers (2 upstreams each)\n")
    print(f"{'path':<8} {'planning':>10} {'overhead/block':>15} {'start-up to 1st block':>22}")
    print(f"{'kernel':<8} {kernel['planning_ms']:>8.1f}ms {kernel['overhead_ms_per_block']:>13.2f}ms {'n/a':>22}")
    print(f"{'cli':<8} {cli['planning_ms']:>8.1f}ms {cli['overhead_ms_per_block']:>13.2f}ms {cli['startup_s']:>21.2f}s")
    print("\ntargets: overhead < 5 ms/block; CLI start-up < 1.5 s")
    print(f"\na dynamic block with {args.children} items: one trivial child per item, one block reducing them\n")
    print(f"{'path':<8} {'expansion/child':>16} {'run/child':>10}")
    print(f"{'kernel':<8} {dyn_kernel['planning_ms']:>14.3f}ms {dyn_kernel['overhead_ms']:>8.2f}ms")
    print(f"{'cli':<8} {'(in run)':>16} {dyn_cli['overhead_ms']:>8.2f}ms")
    print("\ntarget: planning and executor overhead < 5 ms/child (run/child includes the children's own work)")


if __name__ == "__main__":
    main()
