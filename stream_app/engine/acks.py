"""Which messages may be acknowledged: a ledger of offset ranges per topic.

Faust commits up to the end of the first run of consecutive acknowledged
offsets without checking that the run starts at the committed offset, so
acknowledging offset 101 while 100 still waits in the merge queue could
commit past 100.  Acknowledgements are therefore given strictly in offset
order per topic partition: a message is done once applied or dead-lettered,
and acknowledged at a flush once every message before it is done too.

A partition's messages of one topic are taken in offset order and released
from the merge queue in offset order (each topic is a FIFO there), so the
messages not done yet are exactly those still queued: everything before the
topic's first queued offset is done.  The ledger therefore keeps no flag per
message, only runs of taken offsets (*spans*).  Messages acknowledged through
the processor's range callback share one span while they come in a row,
across fetches, so a flush acknowledges each run of consecutive offsets of a
topic partition with one call and nothing of a message outlives its release.
A message handed in with its own acknowledgement (a callable) keeps a span
of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

#: Acknowledges one message (its offset may then be committed).
Ack = Callable[[], object]
#: (topic, partition, first, last): acknowledges every message of the topic
#: partition from offset ``first`` to ``last``, both included.
AckRange = Callable[[str, int, int, int], object]


class Span:
    """Messages taken in a row: offsets ``first`` to ``last``, both included."""

    __slots__ = ("ack", "first", "last")

    def __init__(self, first: int, last: int, ack: Ack | None) -> None:
        self.first = first
        self.last = last
        #: The message's own acknowledgement (then first == last), or None:
        #: acknowledged as a range.
        self.ack = ack

    def __repr__(self) -> str:
        return f"Span({self.first}, {self.last}, {self.ack!r})"


class AckLedger:
    """One partition's acknowledgements not given yet, per topic, in offset order."""

    __slots__ = ("spans",)

    def __init__(self) -> None:
        self.spans: dict[str, deque[Span]] = {}

    def take(self, topic: str, offset: int, ack: Ack | None) -> None:
        """Record a message taken in (its offset above every one taken before)."""
        spans = self.spans.get(topic)
        if spans is None:
            spans = self.spans[topic] = deque()
        elif ack is None and spans and spans[-1].ack is None and spans[-1].last + 1 == offset:
            # Only a run of consecutive offsets: a message the consumer skipped
            # (dropped while it was being positioned) must hold the commit back,
            # never be acknowledged with its neighbours.  Offsets with no
            # message at all (compaction, transaction markers) are Faust's gaps.
            spans[-1].last = offset
            return
        spans.append(Span(offset, offset, ack))

    def cut(self, first_pending: Callable[[str], int | None]) -> list[tuple[str, Span]]:
        """Take out the spans that are done, per topic, in offset order.

        ``first_pending(topic)`` is the topic's first offset not done yet
        (None: every message taken is done).  A range span that is partly
        done is split there.
        """
        done: list[tuple[str, Span]] = []
        for topic, spans in self.spans.items():
            if not spans:
                continue
            pending = first_pending(topic)
            while spans:
                span = spans[0]
                if pending is None or span.last < pending:
                    done.append((topic, spans.popleft()))
                    continue
                if span.first < pending:  # only a range: a message's own has first == last
                    done.append((topic, Span(span.first, pending - 1, None)))
                    span.first = pending
                break
        return done

    def __len__(self) -> int:
        return sum(len(spans) for spans in self.spans.values())


def acknowledge(done: list[tuple[str, Span]], partition: int,
                ranges: AckRange | None) -> None:
    """Give the acknowledgements :meth:`AckLedger.cut` took out."""
    for topic, span in done:
        if span.ack is not None:
            span.ack()
        elif ranges is not None:
            ranges(topic, partition, span.first, span.last)
