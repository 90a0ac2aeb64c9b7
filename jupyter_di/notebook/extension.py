"""``%load_ext jupyter_di``: create the kernel session and register the magics."""

from __future__ import annotations

from typing import Any

_sessions: dict[int, Any] = {}


def load(ip: Any) -> None:
    from .magics import DIMagics
    from .session import KernelSession

    session = _sessions.get(id(ip))
    if session is None:
        session = KernelSession(ip)
        _sessions[id(ip)] = session
    ip.register_magics(DIMagics(ip, session))


def unload(ip: Any) -> None:
    session = _sessions.pop(id(ip), None)
    if session is not None:
        session.close()


def session_for(ip: Any) -> Any:
    return _sessions.get(id(ip))
