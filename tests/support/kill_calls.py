"""``jupyter-di`` that kills itself (SIGKILL) on the N-th call of any function, for crash tests.

    python tests/support/kill_calls.py [--kill MODULE:QUALNAME:N] [--set MODULE:NAME=INT ...] -- run NOTEBOOK ...

``--kill jupyter_di.connectors._shared.changes:apply_steps:2`` dies as the second call of
``apply_steps`` starts (``Class.method`` names a method).  ``--set`` overrides a module constant (a
chunk size) so one small run crosses many commits.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
import threading


def kill_on_call(spec: str) -> None:
    target, qualname, nth = spec.rsplit(":", 2)
    module = importlib.import_module(target)
    owner: object = module
    *parents, name = qualname.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = {"n": 0}
    lock = threading.Lock()

    @functools.wraps(original)
    def dying(*args, **kwargs):  # noqa: ANN002, ANN003
        with lock:
            calls["n"] += 1
            if calls["n"] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, dying)


def set_constant(spec: str) -> None:
    target, assignment = spec.split(":", 1)
    name, value = assignment.split("=", 1)
    module = importlib.import_module(target)
    owner: object = module
    *parents, attr = name.split(".")
    for part in parents:
        owner = getattr(owner, part)
    setattr(owner, attr, int(value))


def main(argv: list[str]) -> int:
    split = argv.index("--")
    options, cli_args = argv[:split], argv[split + 1 :]
    i = 0
    while i < len(options):
        if options[i] == "--kill":
            kill_on_call(options[i + 1])
        elif options[i] == "--set":
            set_constant(options[i + 1])
        else:
            raise SystemExit(f"unknown option {options[i]}")
        i += 2
    from jupyter_di.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
