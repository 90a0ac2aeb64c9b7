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


def test_each_reset_and_pin_draws_a_new_epoch_and_nothing_else_does(tmp_path):
    """The epoch a destination's committed state must carry to be read back (integration/committed_state.py)."""
    from jupyter_di.state.store import StateStore

    store = StateStore(tmp_path / "state.sqlite")
    assert store.epoch("p", "b", "s") is None  # never reset: states without an epoch are trusted
    store.commit_consumer("p", "b", "s", consumer="d", bookmark={"id": 1}, consumers=["d"])
    store.set("p", "b", "other", {"bookmark": {"id": 5}})  # a source read only by Python blocks: no epoch
    assert store.epoch("p", "b", "s") is None and store.epoch("p", "b", "other") is None
    assert store.reset("p", "b") == 2
    first = store.epoch("p", "b", "s")
    assert first is not None and store.epoch("p", "b", "other") not in (None, first)
    # reset again before anything was committed to the file (a run killed after a destination's commit)
    assert store.reset("p", "b") == 0
    second = store.epoch("p", "b", "s")
    assert second not in (None, first)
    store.commit_consumer("p", "b", "s", consumer="d", bookmark={"id": 2}, consumers=["d"])
    assert store.epoch("p", "b", "s") == second  # a commit keeps it
    store.set("p", "b", "s", {"bookmark": {"id": 1}, "pinned": True})
    assert store.epoch("p", "b", "s") not in (None, first, second)
    # a stream named by a reset gets one even if the file never saved it
    assert store.reset("p", "b", "never") == 0 and store.epoch("p", "b", "never") is not None
    assert store.epoch("p", "other_block", "s") is None
