"""Training progress: a live bar in a terminal, one plain line per epoch everywhere else.

A tqdm bar redraws itself in place, which only a terminal can show. In a notebook (JupyterLab,
or the executed chapters of the built book) every redraw becomes another fragment of saved
output, so there the trainers print one line when an epoch ends instead.

``VITCOURSE_PROGRESS`` overrides the choice: ``bar``, ``epochs`` or ``none``.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

MODES = ("auto", "bar", "epochs", "none")


def progress_mode() -> str:
    mode = os.environ.get("VITCOURSE_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"VITCOURSE_PROGRESS={mode!r} is not one of {', '.join(MODES)}; "
                         "unset it for the default (a bar in a terminal, one line per epoch elsewhere)")
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "epochs"
    return mode


class EpochLines:
    """A stand-in for a tqdm bar that prints one line each time an epoch reports its results."""

    def __init__(self, total: int, desc: str, initial: int = 0):
        self.total, self.desc, self.n = total, desc, initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values) -> None:
        shown = ", ".join(f"{name} {value}" for name, value in values.items())
        print(f"{self.desc}: step {self.n:,}/{self.total:,}" + (f", {shown}" if shown else ""),
              flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, *, enabled: bool = True, initial: int = 0,
                 unit: str = "step"):
    """A tqdm bar (terminal), an :class:`EpochLines` (elsewhere), or a silent bar (``enabled=False``)."""
    mode = progress_mode() if enabled else "none"
    if mode == "epochs":
        return EpochLines(total, desc, initial)
    # Plain-text bar (tqdm.auto's widget needs JavaScript from a CDN, which the book does not load).
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, ncols=100, mininterval=5.0,
                disable=mode == "none")
