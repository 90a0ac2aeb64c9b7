"""Whether a process is still there, by its id: the one check the run lock and the files connector make.

Why its own module: both decide from it whether what a process left (a lock, a half-written file's
marker) is still in use, and they must agree on the answer for a process they may not signal.
"""

from __future__ import annotations

import os


def process_exists(pid: int) -> bool:
    """True while process ``pid`` exists, also when it belongs to another user (we may not signal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True
