"""Grade files an LMS gradebook imports (`export A --format canvas|moodle|csv`).

The grade is nbgrader's: the sum of every grade cell's score (a manual score from formgrader
replaces the automatic one, as in nbgrader) minus the late-submission penalty.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMATS = ("canvas", "moodle", "csv")
DEFAULT_ID_COLUMN = {"canvas": "SIS Login ID", "moodle": "ID number", "csv": "student"}
CANVAS_ID_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")


def canvas(grades: pd.DataFrame, assignment: str, max_score: float, id_column: str) -> pd.DataFrame:
    """Canvas Gradebook import.

    Canvas documents the file as its own Gradebook export: the columns "Student", "ID",
    "SIS User ID", "SIS Login ID" and "Section", then one column per assignment, optionally a
    second row "Points Possible"; students are matched by ID, SIS User ID or SIS Login ID, and a
    column whose header matches no assignment ("assignment1", without Canvas' "(id)" suffix)
    creates a new assignment on import. See "How do I import grades in the Gradebook?",
    https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807
    and "How do I export grades in the Gradebook?" (the same columns),
    https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-export-grades-in-the-Gradebook/ta-p/809
    Our student id (the Canvas login by `collect`'s default pattern) goes into `id_column`.
    """
    if id_column not in CANVAS_ID_COLUMNS:
        raise ValueError(f"Canvas matches students by {', '.join(CANVAS_ID_COLUMNS)}: "
                         f"--id-column {id_column!r} is none of them")
    rows = [{"Student": "Points Possible", "ID": "", "SIS User ID": "", "SIS Login ID": "", "Section": "",
             assignment: max_score}]
    for student, grade in grades["grade"].items():
        row = {"Student": student, "ID": "", "SIS User ID": "", "SIS Login ID": "", "Section": "",
               assignment: grade}
        row[id_column] = student
        rows.append(row)
    return pd.DataFrame(rows, columns=["Student", "ID", "SIS User ID", "SIS Login ID", "Section", assignment])


def moodle(grades: pd.DataFrame, assignment: str, max_score: float, id_column: str) -> pd.DataFrame:
    """Moodle "Import grades > CSV file".

    One row per student, a column that identifies the user and one column per grade item, plus
    optional feedback columns; at import the teacher maps "Identify user by" (map from this
    column, map to ID number, username, email or user id) and maps the grade column to a grade
    item (or a new one). See https://docs.moodle.org/en/Grade_import (CSV import, "Import
    grades" page). A grade above the item's maximum is refused, so the assignment's grade item
    needs maximum grade `max_score`.
    """
    feedback = [f"late submission penalty: -{p:g}" if p > 0 else "" for p in grades["late_penalty"]]
    return pd.DataFrame({id_column: grades.index, assignment: grades["grade"].to_numpy(),
                         "Feedback": feedback}, columns=[id_column, assignment, "Feedback"])


def plain(grades: pd.DataFrame, assignment: str, max_score: float, id_column: str) -> pd.DataFrame:
    """A plain table for any other gradebook: id, grade, maximum, penalty, percent."""
    return pd.DataFrame({id_column: grades.index, "grade": grades["grade"].to_numpy(),
                         "max_score": max_score, "late_penalty": grades["late_penalty"].to_numpy(),
                         "percent": (100 * grades["grade"] / max_score).round(2).to_numpy() if max_score else 0.0})


WRITERS = {"canvas": canvas, "moodle": moodle, "csv": plain}


def write_lms(fmt: str, grades: pd.DataFrame, assignment: str, max_score: float, out: Path,
              id_column: str | None = None) -> Path:
    """Write `<out>/<fmt>_grades.csv`; `grades` is indexed by student with 'grade' and 'late_penalty'."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    table = WRITERS[fmt](grades, assignment, max_score, id_column or DEFAULT_ID_COLUMN[fmt])
    path = out / f"{fmt}_grades.csv"
    table.to_csv(path, index=False)
    return path
