"""Moodle: the names in its "Download all submissions" zip, and its grading worksheet.

Bulk download (Moodle `mod/assign/locallib.php`, `assign::download_submissions` up to 4.0;
`mod/assign/classes/downloader.php`, `get_student_prefix` and `load_submissionplugin_filelist`
from 4.1): each student's prefix is

    <full name>_<participant id>        ('_' in the name becomes ' '; blind marking: "Participant")

where the participant id is `get_uniqueid_for_user`: a number of this assignment's user mapping,
not a user id, ID number, username or email. By default ("download submissions in folders") every
submission plugin gets a folder `<prefix>_assignsubmission_<plugin>_/` (4.1+: without the last
'_') holding the plugin's files (`file`: the uploads, with their sub-folders; `onlinetext`: an HTML
page); otherwise the files lie flat as `<prefix>_assignsubmission_<plugin>_<file name>`. Only the
latest attempt is downloaded, and the zip entries carry the download time, not the submission time.

Grading worksheet (Assignment > View all submissions > Download grading worksheet; the
`assignfeedback_offline` plugin: `gradingtable.php` writes it, `importgradeslib.php` reads it
back in "Upload grading worksheet"): a CSV whose columns include "Identifier" ("Participant
<participant id>"), "Full name", the site's identity fields ("Email address", "ID number", ...),
"Status", "Grade", "Maximum Grade", "Last modified (submission)", "Last modified (grade)" and
"Feedback comments". The importer finds "Identifier", "Grade" and "Last modified (grade)" by
these English header names (`get_string('recordid'|'gradenoun'|'lastmodifiedgrade')`), strips
"Participant " from the identifier, skips a grade above the maximum, and skips a row whose grade
was changed in Moodle after its "Last modified (grade)" (so that column is left as downloaded).
Dates are `userdate()`: "Friday, 20 November 2026, 6:00 PM" in the downloading user's time zone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from autograder.commands.late import check_zone
from autograder.commands.lms_csv import read_csv, score_text

# <full name>_<participant id>_assignsubmission_<plugin>[_<rest>]
NAME = re.compile(r"^(?P<name>[^_/]*)_(?P<student>\d+)_assignsubmission_(?P<plugin>[a-z0-9]+)(?:_(?P<rest>.*))?$")
IDENTIFIER, GRADE, MAXIMUM = "Identifier", "Grade", "Maximum Grade"
SUBMITTED, GRADED, FEEDBACK = "Last modified (submission)", "Last modified (grade)", "Feedback comments"
USER_FIELDS = ("Email address", "ID number", "Username")
# userdate() with strftimedaydatetime ("%A, %d %B %Y, %I:%M %p", day and hour without a leading 0),
# and ISO forms for worksheets edited elsewhere.
DATE_FORMATS = ("%A, %d %B %Y, %I:%M %p", "%d %B %Y, %I:%M %p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class MoodleEntry:
    """One top-level entry of a Moodle bulk download."""

    student: str     # the participant id ("1234567")
    name: str        # the full name ("Jane Doe"; "Participant" under blind marking)
    plugin: str      # "file", "onlinetext", ...
    file: str        # the file name in flat layout, "" for a plugin folder


def parse_name(name: str) -> MoodleEntry | None:
    """The parts of a Moodle bulk-download entry name, or None when it is not one."""
    match = NAME.match(unicodedata.normalize("NFC", name))
    if match is None:
        return None
    return MoodleEntry(student=match["student"], name=match["name"], plugin=match["plugin"],
                       file=match["rest"] or "")


def participant(identifier: str) -> str | None:
    """'Participant 1234567' -> '1234567' (the importer strips the word; any language)."""
    match = re.search(r"(\d+)\s*$", identifier)
    return match.group(1) if match else None


def read_worksheet(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The grading worksheet, checked for the columns Moodle's importer needs."""
    header, rows = read_csv(path, "Moodle grading worksheet")
    missing = [c for c in (IDENTIFIER, GRADE, GRADED) if c not in header]
    if missing:
        raise ValueError(f"{path} is not a Moodle grading worksheet: no column {', '.join(map(repr, missing))} "
                         "(download it from the assignment: View all submissions > Grading action > Download "
                         "grading worksheet, with the English language pack)")
    return header, rows


def parse_time(text: str, zone: str) -> datetime | None:
    """A worksheet date (in `zone`) as naive UTC; None for '-' (no submission)."""
    text = text.strip()
    if text in ("", "-"):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
        for form in DATE_FORMATS:
            try:
                when = datetime.strptime(text, form)
                break
            except ValueError:
                continue
    if when is None:
        raise ValueError(f"cannot read the date {text!r}: expected Moodle's English form "
                         "'Friday, 20 November 2026, 6:00 PM' or '2026-11-20 18:00'")
    if when.tzinfo is None:
        when = when.replace(tzinfo=check_zone(zone))
    return when.astimezone(timezone.utc).replace(tzinfo=None)


def worksheet_students(path: Path, zone: str) -> dict[str, dict[str, str | datetime | None]]:
    """participant id -> {"submitted": UTC time or None, and the user fields the sheet has}."""
    header, rows = read_worksheet(path)
    if SUBMITTED not in header:
        raise ValueError(f"the worksheet {path} has no {SUBMITTED!r} column: download it again from Moodle")
    out = {}
    for number, row in enumerate(rows, start=2):
        student = participant(row.get(IDENTIFIER) or "")
        if student is None:
            raise ValueError(f"{path}, line {number}: identifier {row.get(IDENTIFIER)!r} has no participant number")
        try:
            submitted = parse_time(row.get(SUBMITTED) or "", zone)
        except ValueError as error:
            raise ValueError(f"{path}, line {number} ({row.get(IDENTIFIER)}): {error}") from None
        out[student] = {"submitted": submitted, "full name": row.get("Full name", ""),
                        **{field: (row.get(field) or "").strip() for field in USER_FIELDS if field in header}}
    return out


def fill_worksheet(path: Path, grades, max_score: float) -> tuple[list[list[str]], list[str]]:
    """The downloaded worksheet with "Grade" (and the late note in "Feedback comments") filled for
    every collected participant; every other cell as downloaded. Also the participants it lacks."""
    header, rows = read_worksheet(path)
    by_id = {str(s): (float(g), float(p)) for s, g, p in zip(grades.index, grades["grade"], grades["late_penalty"])}
    listed = set()
    for row in rows:
        student = participant(row.get(IDENTIFIER) or "")
        if student not in by_id:
            continue
        grade, penalty = by_id[student]
        _check_maximum(row, max_score)
        row[GRADE] = score_text(grade)
        if FEEDBACK in row and penalty > 0:
            note = f"late submission penalty: -{penalty:g}"
            row[FEEDBACK] = note if not row[FEEDBACK].strip() else f"{row[FEEDBACK]}\n{note}"
        listed.add(student)
    return [header, *[[row.get(c, "") for c in header] for row in rows]], sorted(set(by_id) - listed)


def _check_maximum(row: dict[str, str], max_score: float) -> None:
    """Moodle skips a grade above the assignment's maximum without a word: refuse it here."""
    text = (row.get(MAXIMUM) or "").strip()
    try:
        maximum = float(text.replace(",", "."))
    except ValueError:
        return
    if abs(maximum - max_score) > 1e-9:
        raise ValueError(f"the Moodle assignment's maximum grade is {text}, the notebook's points are {max_score:g}: "
                         f"set the Moodle assignment's maximum grade to {max_score:g} (Settings > Grade), download "
                         "the worksheet again and export again")

