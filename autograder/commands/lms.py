"""Grade files an LMS imports unchanged (`export A --format canvas|moodle|csv`).

The grade is nbgrader's: the sum of every grade cell's score (a manual score from formgrader
replaces the automatic one, as in nbgrader) minus the late-submission penalty.

* `canvas` (autograder/commands/lms_canvas.py cites Canvas's importer): with `--gradebook FILE`, the
  instructor's own Gradebook export with the assignment's column (found by its `Title (id)`
  header, or `--lms-column`) filled, students matched by Canvas user id; without it, the
  documented import layout (Student, ID, SIS User ID, SIS Login ID, Section, then the column
  `--lms-column` names, e.g. "Assignment 1 (4711)") with the Canvas user id in `ID` when `collect`
  read a Canvas download, else our id in `--id-column` (SIS Login ID or SIS User ID).
* `moodle` (autograder/commands/lms_moodle.py cites Moodle's importer): with `--worksheet FILE`, the
  grading worksheet downloaded from the assignment with "Grade" (and the late note in "Feedback
  comments") filled, for "Upload grading worksheet"; without it, a CSV for the gradebook's
  "Import > CSV file" keyed on a real user field ("Email address", "ID number" or "Username",
  known when `collect` was given the worksheet), never on the per-assignment participant id.
  See https://docs.moodle.org/en/Grade_import: "Identify user by" maps a column to user id,
  username, ID number or email; a grade above the grade item's maximum is refused.
* `csv`: id, grade, maximum, penalty, percent, for any other gradebook.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from autograder.commands import lms_canvas, lms_moodle
from autograder.commands.lms_csv import score_text

FORMATS = ("canvas", "moodle", "csv")
CANVAS_ID_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")


def write_rows(rows: list[list[str]], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def canvas(grades: pd.DataFrame, assignment: str, max_score: float, *, id_column: str | None,
           column: str | None, gradebook: Path | None, manifest: dict) -> list[list[str]]:
    """Rows of the Canvas file (see the module docstring); `grades` is indexed by student."""
    if gradebook is not None:
        rows, missing = lms_canvas.fill_gradebook(gradebook, grades, assignment, column)
        if missing:
            raise ValueError(f"{len(missing)} collected student(s) are not in the Canvas gradebook {gradebook} "
                             f"({', '.join(missing[:5])}): export the entire gradebook again (with inactive and "
                             "concluded enrollments shown) and pass that file")
        return rows
    if not column:
        raise ValueError("name the Canvas assignment column: --lms-column 'Assignment 1 (4711)' (its header in "
                         "Canvas's Gradebook export), or pass that export with --gradebook FILE")
    canvas_ids = _lms_of(manifest) == "canvas"
    id_column = id_column or ("ID" if canvas_ids else "SIS Login ID")
    if id_column not in CANVAS_ID_COLUMNS:
        raise ValueError(f"Canvas matches students by {', '.join(CANVAS_ID_COLUMNS)}: "
                         f"--id-column {id_column!r} is none of them")
    names = {s: row.get("name", "") for s, row in manifest.items()}
    if id_column == "ID":
        return lms_canvas.import_table(grades, column, max_score, names)
    if canvas_ids:
        raise ValueError(f"these ids are Canvas user ids (collected from a Canvas download): they belong in 'ID', "
                         f"not {id_column!r}")
    lms_canvas.check_header(column)
    rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column],
            ["Points Possible", "", "", "", "", score_text(max_score)]]
    for student, grade in grades["grade"].items():
        row = [student, "", "", "", "", score_text(grade)]
        row[CANVAS_ID_COLUMNS.index(id_column) + 1] = student
        rows.append(row)
    return rows


def moodle(grades: pd.DataFrame, assignment: str, max_score: float, *, id_column: str | None,
           worksheet: Path | None, manifest: dict) -> list[list[str]]:
    """Rows of the Moodle file (see the module docstring)."""
    if worksheet is not None:
        rows, missing = lms_moodle.fill_worksheet(worksheet, grades, max_score)
        if missing:
            raise ValueError(f"{len(missing)} collected participant(s) are not in the worksheet {worksheet} "
                             f"({', '.join(missing[:5])}): download the grading worksheet of this assignment again")
        return rows
    keys = {s: s for s in grades.index}
    if _lms_of(manifest) == "moodle":
        id_column = id_column or _moodle_user_field(manifest, grades.index)
        if id_column not in lms_moodle.USER_FIELDS:
            raise ValueError(f"--id-column {id_column!r}: Moodle's grade import identifies users by "
                             f"{', '.join(lms_moodle.USER_FIELDS)}")
        keys = {s: (manifest.get(s, {}).get(id_column) or "") for s in grades.index}
        unknown = sorted(s for s, key in keys.items() if not key)
        if unknown:
            raise ValueError(f"no {id_column!r} for participant(s) {', '.join(unknown[:5])}: collect again with the "
                             "grading worksheet (--worksheet, with that column shown), or export with --worksheet")
    rows = [[id_column or "ID number", assignment, "Feedback"]]
    for student, grade, penalty in zip(grades.index, grades["grade"], grades["late_penalty"]):
        rows.append([keys[student], score_text(grade), f"late submission penalty: -{penalty:g}" if penalty > 0 else ""])
    return rows


def _moodle_user_field(manifest: dict, students) -> str:
    """The first user field the collected worksheet gave for every participant."""
    for field in lms_moodle.USER_FIELDS:
        if all(manifest.get(s, {}).get(field) for s in students):
            return field
    raise ValueError("these ids are Moodle participant ids (per assignment: Moodle's grade import cannot map them): "
                     "export with --worksheet GRADING_WORKSHEET.csv for 'Upload grading worksheet', or collect "
                     "again with --worksheet so that the email address / ID number of each student is known")


def plain(grades: pd.DataFrame, max_score: float, id_column: str | None) -> list[list[str]]:
    """A plain table for any other gradebook: id, grade, maximum, penalty, percent."""
    rows = [[id_column or "student", "grade", "max_score", "late_penalty", "percent"]]
    for student, grade, penalty in zip(grades.index, grades["grade"], grades["late_penalty"]):
        percent = round(100 * grade / max_score, 2) if max_score else 0.0
        rows.append([student, f"{grade:g}", f"{max_score:g}", f"{penalty:g}", f"{percent:g}"])
    return rows


def _lms_of(manifest: dict) -> str:
    kinds = {row.get("lms", "") for row in manifest.values()}
    return kinds.pop() if len(kinds) == 1 else ""


def write_lms(fmt: str, grades: pd.DataFrame, assignment: str, max_score: float, out: Path, *,
              id_column: str | None = None, column: str | None = None, gradebook: Path | None = None,
              worksheet: Path | None = None, manifest: dict | None = None) -> Path:
    """Write `<out>/<fmt>_grades.csv` (Moodle with a worksheet: `moodle_worksheet.csv`); `grades`
    is indexed by student with 'grade' and 'late_penalty'; `manifest` is collect's record."""
    manifest = manifest or {}
    if fmt == "canvas":
        rows = canvas(grades, assignment, max_score, id_column=id_column, column=column, gradebook=gradebook,
                      manifest=manifest)
    elif fmt == "moodle":
        rows = moodle(grades, assignment, max_score, id_column=id_column, worksheet=worksheet, manifest=manifest)
    elif fmt == "csv":
        rows = plain(grades, max_score, id_column)
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    name = "moodle_worksheet.csv" if fmt == "moodle" and worksheet is not None else f"{fmt}_grades.csv"
    return write_rows(rows, out / name)
