"""``jupyter-di run`` that kills itself (SIGKILL) at a chosen point, for deterministic crash tests.

    python tests/support/kill_points.py [--at-local-save CONSUMER N] [--in-file-write N] [--commit-rows R] -- run NOTEBOOK ...

``--at-local-save CONSUMER N``: the destination block ``CONSUMER`` commits its
rows (and, when transactional, its own copy of the state), then calls
``StateStore.commit_consumer`` to record the bookmark in
``.jupyter_di/state.sqlite``; on its N-th such call the process dies instead, so
the local store is left one commit behind the destination.

``--in-file-write N``: the files destination's N-th batch write dies halfway:
half of the batch's rows and the start of the next row are in the file (a torn
append or a torn temp file).

``--commit-rows R`` makes DuckDB commit every R rows (several commits per run).
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at_local_save(consumer: str, at: int) -> None:
    from jupyter_di.state.store import StateStore

    original = StateStore.commit_consumer
    calls = {"n": 0}
    lock = threading.Lock()

    def commit_consumer(self, pipeline, block, stream, **kwargs):  # noqa: ANN001
        if kwargs.get("consumer") == consumer:
            with lock:
                calls["n"] += 1
                if calls["n"] == at:
                    _die()
        return original(self, pipeline, block, stream, **kwargs)

    StateStore.commit_consumer = commit_consumer


def kill_in_file_write(at: int) -> None:
    from jupyter_di.connectors.files import formats

    original = formats.FileWriter.write
    calls = {"n": 0}

    def write(self, batch):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == at:
            original(self, batch.slice(0, batch.num_rows // 2))
            self.fh.write(b'{"id": 1')  # a row cut short
            self.fh.flush()
            _die()
        return original(self, batch)

    formats.FileWriter.write = write


def main(argv: list[str]) -> int:
    split = argv.index("--")
    own, cli_args = argv[:split], argv[split + 1 :]
    if "--at-local-save" in own:
        i = own.index("--at-local-save")
        kill_at_local_save(own[i + 1], int(own[i + 2]))
    if "--in-file-write" in own:
        kill_in_file_write(int(own[own.index("--in-file-write") + 1]))
    if "--commit-rows" in own:
        from jupyter_di.connectors.duckdb import DuckDBDestination

        DuckDBDestination.commit_every_rows = int(own[own.index("--commit-rows") + 1])
    from jupyter_di import cli

    return cli.main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
