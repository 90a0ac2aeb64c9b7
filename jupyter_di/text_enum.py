"""``TextEnum``: an enum whose members are their text wherever text goes (JSON, f-strings, dict keys).

Why: statuses and block kinds travel as plain text (the comm, run reports, YAML, the CLI's tables)
and are compared with text written by users and older versions; the enum names the closed set once
without changing any of that.
"""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """A ``str`` enum that prints as its value and hashes as it, on every Python version."""

    def __str__(self) -> str:  # f-strings show "done", not "BlockStatus.DONE"
        return str(self.value)

    __hash__ = str.__hash__  # a key in dicts of plain text ("done": ...), on every Python version
