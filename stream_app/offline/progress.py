"""Progress of a long offline run (streaming, replaying, waiting), for people.

On a terminal one line rewrites itself; into a file or a pipe, where a
rewriting line would be thousands of lines of carriage returns, a line is
written per tenth of the way.
"""

from __future__ import annotations

from typing import TextIO


class Progress:
    """One self-rewriting line on a terminal; a line per 10% otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.tty, self.last_pct, self.width = out, out.isatty(), -10, 0

    def show(self, text: str, pct: float) -> None:
        if self.tty:
            self.out.write("\r" + text.ljust(self.width))
            self.width = len(text)
            self.out.flush()
        elif pct >= self.last_pct + 10 or pct >= 100:
            self.last_pct = int(pct // 10 * 10)
            self.out.write(text + "\n")

    def phase(self) -> None:
        """A new kind of work starts: its own percentages, its own lines."""
        self.clear()
        self.last_pct = -10

    def clear(self) -> None:
        if self.tty and self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.width = 0
