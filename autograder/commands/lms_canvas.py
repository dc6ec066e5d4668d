"""Canvas: the names in its "Download Submissions" zip, and the Gradebook CSV it imports.

Bulk download (canvas-lms `lib/content_zipper.rb`, `ContentZipper#get_filename` and
`#add_upload_submission`): every uploaded file is stored flat in the zip as

    <user name>_[LATE_]<user id>_<attachment id>_<file name>

* `<user name>` is the student's *sortable name* ("Doe, Jane") lower-cased, with everything but
  letters, digits and '_' removed (`sanitize_file_name`: `/[^[[:word:]]]/`, which keeps any
  letter: "müllerjürgen"), and `_<digits>_` in it squeezed (`sanitize_user_name`), so it is not an
  id: two Jane Does are both "doejane".
* With anonymous grading there is no name and the id is `anon_<anonymous id>` (five base58
  characters, `Anonymity.generate_short_id`; case matters).
* `LATE` is there when Canvas itself judged the submission late (`submission.late?`: due date,
  overrides and extensions included). Canvas writes no submission time into the name, and the
  zip entries carry the time the zip was built.
* Online text entries become `<prefix>_text.html`, URLs `<prefix>_link.html` (`add_text_or_url`).
* Only the current attempt's files are in the zip; a student who uploaded two files of the same
  name has the later one named `name-1.ipynb` (`Attachment.make_unique_filename`), and the later
  upload has the larger attachment id.

Gradebook import (canvas-lms `app/models/gradebook_importer.rb`): the header row starts with
"Student", "ID" and ends its student columns with "Section" (between them "SIS User ID", "SIS
Login ID", optionally "Integration ID" and "Root Account"); a row whose first cell contains
"Points Possible" describes the assignments; rows that only say "Muted"/"Manual Posting" are
skipped. A student is matched by the numeric `ID` first, then SIS User ID, SIS Login ID, then
name. An assignment column is matched by `Title (id)` (`Assignment.title_and_id`:
`/\\A(.*)\\s\\((\\d+)\\)\\z/`), else by its exact title; any other header creates a new
assignment. Columns such as "Current Score" or "Final Grade" are read-only and ignored.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from autograder.commands.lms_csv import score_text

# <name>_[LATE_]<user id | anon_xxxxx>_<attachment id>_<file>; the name may be empty or missing.
NAME = re.compile(r"^(?:(?P<name>\w*?)_)??(?P<late>LATE_)?(?P<user>anon_[A-Za-z0-9]+|\d+)_(?P<attachment>\d+)_"
                  r"(?P<file>.+)$")
# Online text and URL entries: <name>_[LATE_]<id>_text.html / _link.html
ONLINE = re.compile(r"^(?:(?P<name>\w*?)_)??(?P<late>LATE_)?(?P<user>anon_[A-Za-z0-9]+|\d+)_(?:text|link)\.html$")
STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account", "Section")
TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")
READ_ONLY = re.compile("Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|"
                       "Override Score|Override Grade|Override Status")


@dataclass(frozen=True)
class CanvasFile:
    """One uploaded file of a Canvas bulk download."""

    student: str        # the Canvas user id ("4711") or anonymous id ("anon_aB3dE")
    name: str           # the sanitized sortable name ("doejane"), "" when anonymous
    late: bool          # Canvas's own LATE marker
    attachment: int     # Canvas attachment id: a later upload has a larger one
    file: str           # the file name the student uploaded (maybe "hw-1.ipynb")


def parse_name(name: str) -> CanvasFile | None:
    """The parts of a Canvas bulk-download file name, or None when it is not one."""
    match = NAME.match(unicodedata.normalize("NFC", name))
    if match is None:
        return None
    return CanvasFile(student=match["user"], name=match["name"] or "", late=bool(match["late"]),
                      attachment=int(match["attachment"]), file=match["file"])


def online_entry(name: str) -> str | None:
    """The student id of an online text / URL entry (`..._text.html`), else None."""
    match = ONLINE.match(unicodedata.normalize("NFC", name))
    return match["user"] if match else None


def is_anonymous(student: str) -> bool:
    return student.startswith("anon_")


def check_header(header: str) -> str:
    """A Canvas assignment column header; refuses one Canvas would create a new assignment for
    unless the instructor says it is the exact title."""
    if not TITLE_AND_ID.match(header):
        raise ValueError(f"Canvas matches an assignment column by 'Title (id)' (as its Gradebook export writes "
                         f"it) or by the exact title, and creates a new assignment otherwise: {header!r} has no "
                         "'(id)'. Copy the column header from Canvas's Gradebook export (Grades > Export), or "
                         "pass that export with --gradebook to have it filled")
    return header


def _refuse_anonymous(students) -> None:
    anonymous = sorted(s for s in students if is_anonymous(s))
    if anonymous:
        raise ValueError(f"{len(anonymous)} anonymous Canvas id(s) ({', '.join(anonymous[:3])}, ...): Canvas's "
                         "gradebook import does not grade an anonymous assignment before its grades are posted. "
                         "Post the grades (anonymity is lifted), download the submissions again and collect that "
                         "download (it names the user ids), or enter the grades in SpeedGrader")


def import_table(grades, header: str, max_score: float, names: dict[str, str]) -> list[list[str]]:
    """Rows of the documented import layout: Student, ID (Canvas user id), SIS User ID, SIS Login
    ID, Section, `header`; the second row "Points Possible". `grades` is indexed by Canvas user id."""
    _refuse_anonymous(grades.index)
    check_header(header)
    rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", header],
            ["Points Possible", "", "", "", "", score_text(max_score)]]
    for student, grade in grades["grade"].items():
        if not str(student).isdigit():
            raise ValueError(f"student id {student!r} is not a Canvas user id: collect the Canvas bulk download "
                             "as it comes (`collect A submissions.zip`), or use --id-column 'SIS Login ID' / "
                             "'SIS User ID' when your ids are those")
        rows.append([names.get(student, ""), str(student), "", "", "", score_text(grade)])
    return rows


def read_gradebook(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a Canvas Gradebook export, checked the way Canvas's importer checks it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the Canvas gradebook {path}: {error}") from None
    delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    table = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not table or len(table[0]) < 4 or "Student" not in table[0][0] or "ID" not in table[0][1] \
            or "Section" not in table[0]:
        raise ValueError(f"{path} is not a Canvas Gradebook export: its header must start with 'Student', 'ID' and "
                         "list 'Section' (Grades > Export > Export Entire Gradebook)")
    return table[0], table[1:]


def assignment_column(header: list[str], wanted: str | None, assignment: str) -> int:
    """Index of the assignment's column in a Gradebook export: `wanted` (a full header or a title),
    else the one column whose title is the assignment's name."""
    first = header.index("Section") + 1
    candidates = [(i, h) for i, h in enumerate(header) if i >= first and not READ_ONLY.search(h)]
    titles = {i: (TITLE_AND_ID.match(h)[1] if TITLE_AND_ID.match(h) else h) for i, h in candidates}
    key = wanted or assignment
    found = [i for i, h in candidates if h == key] or [i for i in titles if titles[i] == key]
    if len(found) != 1:
        listed = ", ".join(repr(h) for _, h in candidates) or "none"
        raise ValueError(f"{'no' if not found else 'more than one'} assignment column {key!r} in the Canvas "
                         f"gradebook (its assignment columns: {listed}): name it with --lms-column")
    return found[0]


def fill_gradebook(path: Path, grades, assignment: str, column: str | None) -> tuple[list[list[str]], list[str]]:
    """The instructor's Gradebook export with the assignment's column filled for every collected
    student (matched by Canvas user id), and the ids of students it does not list."""
    _refuse_anonymous(grades.index)
    header, rows = read_gradebook(path)
    index = assignment_column(header, column, assignment)
    by_id = {str(s): g for s, g in grades["grade"].items()}
    listed = set()
    for row in rows:
        if len(row) <= index or not row[1].strip().isdigit():
            continue  # "Points Possible", "Manual Posting" or the test student without an id
        student = row[1].strip()
        if student in by_id:
            row[index] = score_text(by_id[student])
            listed.add(student)
    return [header, *rows], sorted(set(by_id) - listed)
