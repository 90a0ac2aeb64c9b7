"""Recording what a Singer tap is given (``--state``) and what it says (its STATE messages).

Why: a test of state hand-back must compare the ``--state`` file of one run with the tap's last
STATE of the run before, and jupyter-di deletes that file after the run.  ``recording_tap``
writes a stand-in executable that runs the real tap unchanged, passes its stdout through, and
appends one JSON line per sync run to a log: ``{"given": state or null, "emitted": [states]}``.
Discovery (``--discover``) is passed straight through and not logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def recording_tap(folder: Path, name: str, command: list[str], log: Path) -> str:
    """Write ``folder/name``, an executable that runs ``command`` + its own arguments, recording
    into ``log``; returns its path (for the Singer connector's ``executable``)."""
    path = folder / name
    argv = [sys.executable, str(Path(__file__).resolve()), str(log), *command, "--"]
    path.write_text(f"#!{sys.executable}\nimport os, sys\nargv = {argv!r}\nos.execv(argv[0], argv + sys.argv[1:])\n")
    path.chmod(0o755)
    return str(path)


def calls(log: Path) -> list[dict]:
    """The sync runs recorded so far, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _main(argv: list[str]) -> int:
    log, rest = argv[0], argv[1:]
    split = rest.index("--")
    command, args = rest[:split], rest[split + 1 :]
    if "--discover" in args:
        os.execv(command[0], command + args)
    given = None
    if "--state" in args:
        with open(args[args.index("--state") + 1]) as f:
            given = json.load(f)
    proc = subprocess.Popen(command + args, stdout=subprocess.PIPE)
    emitted = []
    for line in proc.stdout:  # type: ignore[union-attr]
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and str(msg.get("type", "")).upper() == "STATE":
            emitted.append(msg.get("value"))
    code = proc.wait()
    with open(log, "a") as f:
        f.write(json.dumps({"given": given, "emitted": emitted}) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
