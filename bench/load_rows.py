"""The rows a timing bench measures: "idle", and "hog" (one busy-looping process per core beside it).

    rows = parse_rows(parser, args.rows)       # "--rows idle,hog" → ["idle", "hog"]
    for row in under_each_load(rows, "book_build"):
        measure()                               # runs beside the hogs in the "hog" row
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitcourse.measure import cpu_hog  # noqa: E402  (one busy-looping process per core)

ROWS = ("idle", "hog")


def parse_rows(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """``--rows`` as a list of rows; a parser error that names the rows there are."""
    rows = [row.strip() for row in text.split(",") if row.strip()]
    if not rows or set(rows) - set(ROWS):
        parser.error(f"--rows {','.join(rows) or '(empty)'}: the rows are idle and hog, e.g. --rows idle,hog")
    return rows


def under_each_load(rows: list[str], bench: str, what: str) -> Iterator[str]:
    """Each row in turn, after printing what is measured: "hog" with one CPU hog per core running
    until the loop body has measured it."""
    cores = os.cpu_count() or 1
    for row in rows:
        beside = f" beside {cores} CPU hog(s)" if row == "hog" else ""
        print(f"[{bench}] {what}, {row}{beside}", flush=True)
        with cpu_hog(cores) if row == "hog" else contextlib.nullcontext():
            yield row
