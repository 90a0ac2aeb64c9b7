"""A source stream handed over to the one destination block that reads it, to pass it through.

Why: a source block spills every stream to an Arrow file for whoever reads its output (Python
blocks, templates, previews).  When the pipeline knows that one destination block is the only
reader (``pipeline/fusion.py`` decides; ``RunContext.pass_through``), a FULL_TABLE stream can go from
the source server into the destination as PostgreSQL binary COPY data, never becoming Arrow
(``BinaryCopy``: PostgreSQL -> PostgreSQL, 0.4 s of client CPU per 1M rows instead of 1.2 s through
Arrow, and no spill file written and read back).

How: the source block does not read such a stream; it *offers* it (``Handoff``) on its live output
and goes on with its other streams.  The destination block, when the stream's turn comes, takes the
offer: on its own thread it opens the source's read as COPY data (``take``; the source's code runs
it) and writes it with ``Destination.write_binary_copy``.  The source block then reports what the
server counted (``rows``), or fails with the read's error (the destination is then skipped: its
transaction rolled back).  Every stream not passed through to the end (the source cannot offer it,
the destination declines it or fails, or never gets to it) is read by the source block as usual,
into its spill: what a source block reports and hands on is the same as without the hand-over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..connectors.base import BinaryCopy, Destination, Source
from ..text_enum import TextEnum
from .outputs import LiveSourceOutput


class HandoffState(TextEnum):
    """Where an offered stream is: offered -> taken -> passed, or declined / read failed / write failed."""

    OFFERED = "offered"
    TAKEN = "taken"
    PASSED = "passed"
    DECLINED = "declined"
    READ_FAILED = "read failed"
    WRITE_FAILED = "write failed"


OFFERED, TAKEN, PASSED, DECLINED, READ_FAILED, WRITE_FAILED = HandoffState
FINAL = (PASSED, DECLINED, READ_FAILED, WRITE_FAILED)


def offers_binary_copy(source_cls: type[Source]) -> bool:
    """Whether the source's connector can offer a stream as binary COPY data at all."""
    return source_cls.binary_copy is not Source.binary_copy


def takes_binary_copy(destination_cls: type[Destination]) -> bool:
    """Whether the destination's connector can take a stream as binary COPY data at all, here."""
    return destination_cls.takes_binary_copy()


class Handoff:
    """One stream of a source block, offered to its reader block (shared by the two blocks' threads)."""

    def __init__(self, group: HandoffGroup, stream: str, reader: str, open_copy: Callable[[], BinaryCopy | None]) -> None:
        self.group = group
        self.source = group.source
        """The source block that offers it."""
        self.stream = stream
        self.reader = reader
        """The destination block that may take it."""
        self._open_copy = open_copy
        self.state: HandoffState = OFFERED
        self.rows: int | None = None
        """The rows the source server sent (its ``COPY n``), once passed through."""
        self.seconds = 0.0
        self.error: BaseException | None = None
        """The read's error (``READ_FAILED``)."""

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def _settle(self, state: HandoffState, *, only_from: tuple[HandoffState, ...] = (OFFERED, TAKEN)) -> bool:
        with self.group.cond:
            if self.state not in only_from:
                return False
            self.state = state
            self.group.cond.notify_all()
            return True

    # -- the destination's side ----------------------------------------------------------------
    def take(self) -> BinaryCopy | None:
        """The source's read as COPY data, opened on this thread; None when the source does not offer
        it (then the source block reads it as usual).  A read error is the source's (``READ_FAILED``)."""
        if not self._settle(TAKEN, only_from=(OFFERED,)):
            return None
        try:
            copy = self._open_copy()
        except BaseException as exc:
            self.read_failed(exc)
            raise
        if copy is None:
            self.decline()
            return None
        return _Watched(copy, self)

    def decline(self) -> None:
        """Not passed through (or not any more): the source block reads the stream as usual."""
        self._settle(DECLINED)

    def passed(self, rows: int | None, seconds: float) -> None:
        self.rows, self.seconds = rows, seconds
        self._settle(PASSED, only_from=(TAKEN,))

    def read_failed(self, exc: BaseException) -> None:
        self.error = exc
        self._settle(READ_FAILED)

    def write_failed(self) -> None:
        """The destination failed while writing it: nothing of it was committed; the source reads it."""
        self._settle(WRITE_FAILED)


class _Watched(BinaryCopy):
    """The offered ``BinaryCopy`` with its read errors recorded on the hand-over: a failure inside the
    destination's COPY is then told apart from the destination's own (which block failed)."""

    def __init__(self, copy: BinaryCopy, handoff: Handoff) -> None:
        self._copy = copy
        self._handoff = handoff
        self.columns = copy.columns
        self.schema = copy.schema
        self.table = copy.table

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self._copy.chunks()
        except BaseException as exc:
            self._handoff.error = exc
            raise
        self.rows = self._copy.rows

    def read_failed(self, exc: BaseException) -> None:
        self._handoff.error = exc

    def close(self) -> None:
        self._copy.close()


class HandoffGroup:
    """A source block's offered streams; the source block waits for each to be settled, in any order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.cond = threading.Condition()
        self.items: list[Handoff] = []

    def offer(self, stream: str, reader: str, open_copy: Callable[[], BinaryCopy | None]) -> Handoff:
        handoff = Handoff(self, stream, reader, open_copy)
        with self.cond:
            self.items.append(handoff)
        return handoff

    def settled(self) -> Iterator[Handoff]:
        """Each offered stream once its reader is done with it (passed, declined or failed)."""
        seen: set[int] = set()
        while len(seen) < len(self.items):
            with self.cond:
                self.cond.wait_for(lambda: any(h.final and id(h) not in seen for h in self.items))
                ready = [h for h in self.items if h.final and id(h) not in seen]
            for handoff in ready:
                seen.add(id(handoff))
                yield handoff

    def withdraw(self) -> None:
        """The source block failed: streams not taken yet are not offered any more."""
        for handoff in self.items:
            handoff._settle(DECLINED, only_from=(OFFERED,))


def handoff_of(stream: Any, reader: str) -> Handoff | None:
    """The hand-over of an incoming stream (a running source's ``LiveSpill`` or the destination's view
    of it) offered to block ``reader``, if any."""
    handoff = getattr(stream, "handoff", None)
    return handoff if isinstance(handoff, Handoff) and handoff.reader == reader else None


def release(outputs: Mapping[str, Any], reader: str, stream: str | None = None) -> None:
    """Block ``reader`` ends (or leaves out ``stream``): the streams offered to it that it did not
    settle go back to their source (not taken: read as usual; taken: its write stopped, nothing
    committed, read as usual)."""
    for output in outputs.values():
        for live in output.streams if isinstance(output, LiveSourceOutput) else []:
            handoff = handoff_of(live, reader)
            if handoff is None or (stream is not None and live.stream != stream):
                continue
            if handoff.state == TAKEN:
                handoff.write_failed()
            else:
                handoff.decline()
