"""The CSV conventions every LMS file shares (lms.py writes the files, lms_canvas.py and
lms_moodle.py read and fill the LMS's own): how a score is written, how a CSV is read."""

from __future__ import annotations

import csv
import io
from pathlib import Path


def score_text(value: float) -> str:
    """A score as the LMS exporters write it: at most two decimals, no trailing zeros."""
    text = f"{round(float(value), 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def read_csv(path: Path, kind: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file, with a clear error when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the {kind} {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)
