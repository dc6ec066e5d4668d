"""One progress display for a grading batch, whichever executor runs it.

On a terminal it is a tqdm bar (done / total) with the batch state as its postfix;
otherwise (a log file, CI, a test) it writes one plain-text line per finished
submission, so the log says what happened without carriage-return noise:

    [ 3/15] 1 failed, 2 running, 10 queued, ETA 0:42 | correct: graded in 5.2 s

The ETA is the batch's own rate so far (elapsed / finished x left), which already
includes the parallelism of the workers.
"""

from __future__ import annotations

import sys
import time
from typing import Callable


def format_eta(seconds: float | None) -> str:
    """'1:02:03', '4:05', or '?' when there is no estimate yet."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class BatchProgress:
    """Counts of a batch (done, failed, running, queued) and its ETA, shown as it changes.

    total: submissions in the batch. write: where plain-text lines go (print by default).
    tty: force the tqdm bar (True) or plain lines (False); None = bar when stderr is a TTY.
    clock: seconds, monotonic (a test passes a fake one).
    """

    def __init__(self, total: int, *, write: Callable[[str], object] = print, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if total < 0:
            raise ValueError(f"a batch has a non-negative number of submissions, got total={total}")
        self.total = total
        self.done = 0
        self.failed = 0
        self.running = 0
        self._write = write
        self._clock = clock
        self._start = clock()
        use_bar = sys.stderr.isatty() if tty is None else tty
        self._bar = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="grading", unit="submission", file=sys.stderr)

    def start(self) -> None:
        """Restart the ETA clock (when grading really begins, after any start-up)."""
        self._start = self._clock()

    @property
    def queued(self) -> int:
        return max(0, self.total - self.done - self.running)

    def eta_seconds(self) -> float | None:
        if self.done == 0:
            return None
        elapsed = self._clock() - self._start
        return elapsed / self.done * (self.total - self.done)

    def state(self) -> str:
        """'1 failed, 2 running, 10 queued, ETA 0:42'."""
        return (f"{self.failed} failed, {self.running} running, {self.queued} queued, "
                f"ETA {format_eta(self.eta_seconds())}")

    def set_running(self, running: int) -> None:
        """How many submissions are being graded right now (the executor knows)."""
        running = max(0, min(running, self.total - self.done))
        if running != self.running:
            self.running = running
            if self._bar is not None:
                self._bar.set_postfix_str(self.state())

    def finished(self, student: str, status: str, seconds: float, reason: str = "") -> None:
        """One submission is through; `status` is 'graded' or 'failed'."""
        self.done += 1
        self.failed += status != "graded"
        self.running = max(0, min(self.running - 1, self.total - self.done))  # it was one of them
        what = f"{student}: {status} in {seconds:.1f} s" + (f" ({reason})" if reason else "")
        if self._bar is not None:
            self._bar.write(what, file=sys.stderr)
            self._bar.update(1)
            self._bar.set_postfix_str(self.state())
        else:
            width = len(str(self.total))
            self._write(f"[{self.done:>{width}}/{self.total}] {self.state()} | {what}")

    def note(self, text: str) -> None:
        """A line that is not about one submission (cluster started, worker lost, ...)."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            self._write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
