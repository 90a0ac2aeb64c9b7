"""Compile jupyter_di's bytecode before timing whole processes.

Why: installed from a wheel, pip compiles every module at install time; an
editable install in an environment with PYTHONDONTWRITEBYTECODE set (as on our
CI machines) compiles all ~50 modules from source in every process, 80 ms of
each `jupyter-di run` that users never pay.  Writing the .pyc files once makes
the benchmark time what an installed jupyter-di costs.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jupyter_di"


def compile_package() -> None:
    compileall.compile_dir(str(PACKAGE), quiet=1)
