"""Progress for the terminal and for log files.

On a terminal a tqdm bar redraws itself with carriage returns; redirected to a
file, those frames make one unreadable line of a hundred kilobytes. When stderr
is not a terminal, :func:`progress_bar` prints plain lines instead: one per
finished step, and the latest status at most every ``interval`` seconds.
"""

from __future__ import annotations

import sys
import time


class LineProgress:
    """The part of tqdm's interface xdplug uses, as one line per event."""

    def __init__(self, total: int, desc: str = "", unit: str = "it", initial: int = 0,
                 disable: bool = False, interval: float = 30.0, stream=None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.disable, self.interval = disable, interval
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""
        self._last = time.monotonic()  # a status alone waits one interval from the start

    def _write(self) -> None:
        if self.disable:
            return
        tail = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s{tail}", file=self.stream, flush=True)
        self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._write()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        changed = text != self.postfix
        self.postfix = text
        if changed and time.monotonic() - self._last >= self.interval:
            self._write()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0, disable: bool = False):
    """A tqdm bar on a terminal, :class:`LineProgress` when stderr is redirected."""
    if disable or not sys.stderr.isatty():
        return LineProgress(total, desc=desc, unit=unit, initial=initial, disable=disable)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
