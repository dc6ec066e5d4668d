"""`collect`: import submissions into the course folder, reporting every bad file.

Accepted inputs (mixed freely in one folder):
  <id>.ipynb, <id>_anything.ipynb   one notebook per student;
  <id>.zip, <id>_anything.zip       the student's assignment folder, zipped;
  <id>/ (folder)                    the student's assignment folder;
  LMS bulk downloads, where the student id is found by --id-pattern, e.g.
    Canvas  "doejane_12345_67890_assignment1.ipynb"        (login first: the default works)
    Moodle  "Jane Doe_12345_assignsubmission_file_a1.ipynb" (--id-pattern moodle)
Files that cannot be read, whose name has no valid id, or that duplicate another
file of the same student are reported and skipped; the rest are still collected.
For duplicates, the most recently submitted file wins.

The submission time (for late penalties, see late.py) is a date and time in the file name
when there is one (Blackboard: "..._attempt_2026-12-01-17-05-33_..."; read in --timezone,
default UTC), else the file's modification time (for a folder, its newest file; files
unpacked from an LMS zip keep the time stored in the zip). It is written to nbgrader's
`timestamp.txt` in the submission folder; a timestamp.txt inside an upload is ignored
(students could write any date there).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import nbformat

from .course import ID_PATTERN, Course, check_id
from .late import check_zone, set_due_date, submission_time, write_timestamp

ID_PATTERNS = {
    # The id is everything before the first '_' or '.': s001.ipynb, doejane_12345_..., s001_a1.zip
    "default": r"^(?P<student>[A-Za-z0-9][A-Za-z0-9-]*)",
    # Moodle: "<Full Name>_<numeric id>_assignsubmission_file_<file>"
    "moodle": r"^[^_]+_(?P<student>\d+)_assignsubmission",
    # Blackboard: "<Assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>"
    "blackboard": r"_(?P<student>[A-Za-z0-9][A-Za-z0-9.-]*)_attempt_\d{4}-",
}
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024


@dataclass
class CollectReport:
    collected: dict[str, Path] = field(default_factory=dict)  # student -> source file
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (file, why skipped)
    times: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # student -> (UTC, from where)
    due: datetime | None = None  # the assignment's due date (UTC), when it has one

    def late(self) -> dict[str, float]:
        """student -> hours after the due date, for late submissions."""
        if self.due is None:
            return {}
        return {s: (t - self.due).total_seconds() / 3600 for s, (t, _) in sorted(self.times.items()) if t > self.due}

    def lines(self) -> list[str]:
        out = [f"collected {len(self.collected)} submission(s)"]
        if self.due is not None:
            out.append(f"due {self.due:%Y-%m-%d %H:%M:%S} UTC; {len(self.late())} late")
            out += [f"late {student}: {hours:.1f} h after the due date" for student, hours in self.late().items()]
        out += [f"skipped {path.name}: {why}" for path, why in self.problems]
        return out


def student_id(name: str, pattern: str) -> str | None:
    """The student id in a file name, or None when the name does not carry a valid one."""
    match = re.search(ID_PATTERNS.get(pattern, pattern), name)
    if match is None or "student" not in match.groupdict():
        return None
    found = match.group("student")
    return found if ID_PATTERN.match(found) else None


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Zip members, refusing absolute paths, '..', and archives that unpack too large."""
    members, total = [], 0
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"unsafe path in zip: {info.filename!r}")
        if info.is_dir() or "__MACOSX" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        total += info.file_size
        members.append(info)
    if total > MAX_UNZIPPED_BYTES:
        raise ValueError(f"zip unpacks to {total} bytes, more than {MAX_UNZIPPED_BYTES}")
    return members


def _unpack(source: Path, folder: Path) -> None:
    """Put the files of one submission (notebook, zip or folder) into `folder`."""
    if source.is_dir():
        shutil.copytree(source, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    elif source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            members = _safe_members(archive)
            # A zip of the folder ("assignment1/...") is unpacked without that top folder.
            tops = {PurePosixPath(m.filename).parts[0] for m in members}
            strip = len(tops) == 1 and all(len(PurePosixPath(m.filename).parts) > 1 for m in members)
            for member in members:
                parts = PurePosixPath(member.filename).parts[1 if strip else 0:]
                target = folder.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        shutil.copy2(source, folder / source.name)


def _place_notebook(folder: Path, notebook_name: str) -> None:
    """Make sure `folder` has exactly the notebook nbgrader expects, and that it is valid."""
    expected = folder / notebook_name
    if not expected.exists():
        candidates = sorted(folder.rglob("*.ipynb"))
        if len(candidates) != 1:
            raise ValueError(f"expected {notebook_name}, found {[c.name for c in candidates] or 'no notebook'}")
        candidates[0].rename(expected)
    try:
        nb = nbformat.read(expected, as_version=4)
    except Exception as error:
        raise ValueError(f"not a readable notebook ({type(error).__name__}: {str(error)[:120]})") from None
    if not nb.cells:
        raise ValueError("the notebook has no cells")


def collect(assignment: str, inbox: Path, course: Course | None = None, *,
            id_pattern: str = "default", due_date: str | None = None, zone: str = "UTC") -> CollectReport:
    """Copy every submission in `inbox` to submitted/<student>/<assignment>/ with its
    submission time; store the due date (`due_date`, else the course config's) in the gradebook."""
    course = course or Course()
    check_id(assignment, "assignment")
    if not inbox.is_dir():
        raise FileNotFoundError(f"no folder {inbox} to collect from")
    released = course.exercises / assignment
    notebooks = sorted(p.name for p in released.glob("*.ipynb"))
    if len(notebooks) != 1:
        raise FileNotFoundError(f"{released} should hold exactly one notebook (found {notebooks}): "
                                f"run `python -m autograder release {assignment}`")
    check_zone(zone)
    report = CollectReport(due=set_due_date(course, assignment, due_date))
    by_student: dict[str, list[Path]] = {}
    for entry in sorted(inbox.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix in (".ipynb", ".zip")):
            report.problems.append((entry, "not a notebook, zip or folder"))
            continue
        student = student_id(entry.name, id_pattern)
        if student is None:
            report.problems.append((entry, f"no student id in the name (pattern {id_pattern!r})"))
            continue
        by_student.setdefault(student, []).append(entry)
    for student, entries in sorted(by_student.items()):
        times = {entry: submission_time(entry, zone) for entry in entries}
        entries.sort(key=lambda p: (times[p][0], p.name))
        for older in entries[:-1]:
            report.problems.append((older, f"duplicate for {student}; kept the newer {entries[-1].name}"))
        source = entries[-1]
        with tempfile.TemporaryDirectory() as tmp:
            staging = Path(tmp) / assignment
            staging.mkdir()
            try:
                _unpack(source, staging)
                _place_notebook(staging, notebooks[0])
                (staging / "timestamp.txt").unlink(missing_ok=True)
                write_timestamp(staging, times[source][0])
            except (ValueError, OSError, zipfile.BadZipFile) as error:
                report.problems.append((source, f"unreadable: {error}"))
                continue
            target = course.submitted(student, assignment)
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(staging, target)
        report.collected[student] = source
        report.times[student] = times[source]
    return report
