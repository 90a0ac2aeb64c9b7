"""Real Singer taps and targets, each installed from the package registry into its own virtualenv.

Why one venv each: Singer packages pin conflicting dependencies (the Singer FAQ
recommends it, and semantics.md section 6 confirms the clashes), and none of
them may leak into jupyter-di's own environment.  Venvs are cached under
``$JDI_SINGER_VENVS`` (default ``~/.cache/jupyter-di/singer-venvs``), keyed by
package spec, so only the first run pays the ~30-60 s install per package.

Usage in tests::

    exe = singer_executable("target-jsonl")           # path to the console script
    def test_x(singer_exe): singer_exe("tap-postgres")  # the pytest fixture form
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

# executable name -> (pip requirement(s), console script)
PACKAGES: dict[str, list[str]] = {
    "tap-postgres": ["meltanolabs-tap-postgres==0.10.0"],
    "target-postgres": ["meltanolabs-target-postgres==0.8.1"],
    "target-jsonl": ["target-jsonl==0.1.4"],
}


def venvs_root() -> Path:
    """Where the cached venvs live (``JDI_SINGER_VENVS`` or the user cache)."""
    return Path(os.environ.get("JDI_SINGER_VENVS") or Path.home() / ".cache" / "jupyter-di" / "singer-venvs")


def _venv_dir(name: str) -> Path:
    tag = "-".join(r.replace("==", "-") for r in PACKAGES[name])
    return venvs_root() / f"{name}--{tag}--py{sys.version_info.major}{sys.version_info.minor}"


def singer_executable(name: str) -> Path:
    """Install (once, cached) the Singer package providing ``name`` and return its executable.

    A ``.complete`` marker is written only after a successful install, and a
    file lock serialises concurrent test processes, so a killed install is
    redone rather than half-used.
    """
    if name not in PACKAGES:
        raise KeyError(f"unknown Singer package {name!r}; known: {sorted(PACKAGES)}")
    target = _venv_dir(name)
    exe = target / "bin" / name
    marker = target / ".complete"
    if marker.exists() and exe.exists():
        return exe
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and exe.exists():
            return exe
        if target.exists():
            import shutil

            shutil.rmtree(target)
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        proc = subprocess.run(
            [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", *PACKAGES[name]],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not exe.exists():
            raise RuntimeError(f"installing {PACKAGES[name]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        marker.write_text(" ".join(PACKAGES[name]))
    return exe


@pytest.fixture(scope="session")
def singer_exe():
    """Session fixture: a function name -> executable path (installs on first use)."""
    return singer_executable


if __name__ == "__main__":  # pre-warm the cache: python -m tests.support.singer_venvs [names...]
    for n in sys.argv[1:] or list(PACKAGES):
        print(n, singer_executable(n), flush=True)
