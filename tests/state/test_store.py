"""The state store under concurrent first use (a kernel and the CLI, two CLI runs)."""

from __future__ import annotations

import subprocess
import sys

CREATE_AND_WRITE = (
    "import sys\n"
    "from jupyter_di.state.store import StateStore\n"
    "store = StateStore(sys.argv[1])\n"
    "store.set('p', 'b', sys.argv[2], {'bookmark': {'id': 1}})\n"
)


def test_processes_creating_one_state_file_at_once_all_succeed(tmp_path):
    """Switching a new file to WAL does not wait for the busy timeout: runs starting together on a
    fresh notebook got "database is locked" (exit 2) before the switch was retried."""
    for attempt in range(8):
        path = tmp_path / f"try{attempt}" / "state.sqlite"
        procs = [
            subprocess.Popen([sys.executable, "-c", CREATE_AND_WRITE, str(path), f"s{i}"], stderr=subprocess.PIPE, text=True)
            for i in range(4)
        ]
        errors = [p.communicate()[1] for p in procs if p.wait() != 0]
        assert not errors, errors
        from jupyter_di.state.store import StateStore

        assert sorted(s for _, s, _ in StateStore(path).items("p")) == ["s0", "s1", "s2", "s3"]
