"""`collect`: import submissions into the course folder, reporting every bad file.

Accepted inputs (mixed freely in one folder):
  <id>.ipynb, <id>_anything.ipynb   one notebook per student;
  <id>.zip, <id>_anything.zip       the student's assignment folder, zipped;
  <id>/ (folder)                    the student's assignment folder;
  an LMS bulk download as it comes, the zip or its unpacked folder (`--lms auto`, the default,
    recognises it; `--lms canvas|moodle|none` says it):
    Canvas  "doejane_LATE_4711_9001_assignment1.ipynb": the id is the Canvas user id (4711;
            anonymous grading: "anon_aB3dE"), the sortable name only a label (autograder/commands/lms_canvas.py);
    Moodle  "Jane Doe_1234567_assignsubmission_file_/assignment1.ipynb": the id is the participant
            id (1234567), the name a label (autograder/commands/lms_moodle.py);
  other layouts through --id-pattern ('moodle', 'blackboard', or a regex).
Files that cannot be read, whose name has no valid id, that are not the assignment's notebook
(online text, other uploads), or that an LMS says were replaced are reported and skipped; the rest
are still collected. A student's later upload replaces an earlier one by the LMS's own ordering
(Canvas: the attachment id), or, in a plain folder, by submission time.

The submission time (for late penalties, see late.py) comes from a source that knows it:
  --submission-times CSV (student,submitted_at), for any inbox;
  Moodle: the grading worksheet's "Last modified (submission)" (--worksheet);
  Canvas: its LATE marker (late or not, as Canvas judged it, extensions included; with no time,
    a late submission counts as late by less than one day);
  plain folders: a date and time in the file name (Blackboard: "..._attempt_2026-12-01-17-05-33_...",
    read in --timezone), else the file's modification time (for a folder, its newest file).
The file times of an LMS download or of any zip passed as the inbox are never used (they are the
time the zip was built or unpacked), nor file times that are all the same; without a source
no time is recorded, so no penalty is applied, and the report says so. The time goes to nbgrader's
`timestamp.txt` in the submission folder; a timestamp.txt inside an upload is ignored.
Each run also records what it collected in reports/<A>/collected.csv (id, LMS, name, source,
time and its origin, Moodle user fields), which `export` reads.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import nbformat

from autograder.commands import lms_canvas, lms_moodle
from autograder.config.course import ID_PATTERN, Course, check_id
from autograder.commands.late import check_zone, read_submission_times, set_due_date, submission_time, write_timestamp

ID_PATTERNS = {
    # The id is everything before the first '_' or '.': s001.ipynb, s001_a1.zip
    "default": r"^(?P<student>[A-Za-z0-9][A-Za-z0-9-]*)",
    # Moodle: "<Full Name>_<participant id>_assignsubmission_file_<file>" (--lms moodle does more)
    "moodle": r"^[^_]+_(?P<student>\d+)_assignsubmission",
    # Blackboard: "<Assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>"
    "blackboard": r"_(?P<student>[A-Za-z0-9][A-Za-z0-9.-]*)_attempt_\d{4}-",
}
LMS_CHOICES = ("auto", "canvas", "moodle", "none")
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
SUBMISSION_SUFFIXES = (".ipynb", ".zip")
MANIFEST_COLUMNS = ["student", "lms", "name", "source", "submitted_at", "time_source", *lms_moodle.USER_FIELDS]


@dataclass
class Candidate:
    """One upload that may be a student's submission."""

    student: str
    source: Path
    order: tuple            # the LMS's own ordering: the largest is the latest upload
    name: str = ""          # the LMS's label for the student (not an id)
    late: bool = False      # Canvas's LATE marker


@dataclass
class CollectReport:
    collected: dict[str, Path] = field(default_factory=dict)  # student -> source file
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (file, why skipped)
    times: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # student -> (UTC, from where)
    due: datetime | None = None  # the assignment's due date (UTC), when it has one
    lms: str = "none"            # "canvas", "moodle" or "none" (a plain folder)
    names: dict[str, str] = field(default_factory=dict)  # student -> the LMS's name for them
    notes: list[str] = field(default_factory=list)       # what the instructor should know

    def late(self) -> dict[str, float]:
        """student -> hours after the due date, for late submissions."""
        if self.due is None:
            return {}
        return {s: (t - self.due).total_seconds() / 3600 for s, (t, _) in sorted(self.times.items()) if t > self.due}

    def lines(self) -> list[str]:
        out = [f"collected {len(self.collected)} submission(s)"
               + (f" from a {self.lms.capitalize()} bulk download" if self.lms != "none" else "")]
        if self.due is not None:
            out.append(f"due {self.due:%Y-%m-%d %H:%M:%S} UTC; {len(self.late())} late")
            for student, hours in self.late().items():
                label = f" ({self.names[student]})" if self.names.get(student) else ""
                how = (": marked LATE by Canvas (counted as less than one day late)"
                       if self.times[student][1] == CANVAS_LATE else f": {hours:.1f} h after the due date")
                out.append(f"late {student}{label}{how}")
        out += self.notes
        out += [f"skipped {path.name}: {why}" for path, why in self.problems]
        return out


CANVAS_LATE = "Canvas LATE marker"


def student_id(name: str, pattern: str) -> str | None:
    """The student id in a file name, or None when the name does not carry a valid one."""
    match = re.search(ID_PATTERNS.get(pattern, pattern), name)
    if match is None or "student" not in match.groupdict():
        return None
    found = match.group("student")
    return found if ID_PATTERN.match(found) else None


def _member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name. Zips written without the UTF-8 flag (rubyzip's default, so Canvas's)
    still hold UTF-8 names, which zipfile decodes as cp437: "mÃ¼ller" -> "müller"."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Zip members, refusing absolute paths, '..', and archives that unpack too large."""
    members, total = [], 0
    for info in archive.infolist():
        path = PurePosixPath(_member_name(info))
        if path.is_absolute() or ".." in path.parts or "\\" in str(path):
            raise ValueError(f"unsafe path in zip: {info.filename!r}")
        if info.is_dir() or "__MACOSX" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        total += info.file_size
        members.append(info)
    if total > MAX_UNZIPPED_BYTES:
        raise ValueError(f"zip unpacks to {total} bytes, more than {MAX_UNZIPPED_BYTES}")
    return members


def _extract(archive: zipfile.ZipFile, folder: Path, strip: bool = False) -> None:
    """Unpack the safe members of `archive` into `folder` (without their top folder if `strip`)."""
    for member in _safe_members(archive):
        parts = PurePosixPath(_member_name(member)).parts[1 if strip else 0:]
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _unpack(source: Path, folder: Path) -> None:
    """Put the files of one submission (notebook, zip or folder) into `folder`."""
    if source.is_dir():
        shutil.copytree(source, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    elif source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            # A zip of the folder ("assignment1/...") is unpacked without that top folder.
            names = [PurePosixPath(_member_name(m)).parts for m in _safe_members(archive)]
            strip = len({parts[0] for parts in names}) == 1 and all(len(parts) > 1 for parts in names)
            _extract(archive, folder, strip)
    else:
        shutil.copy2(source, folder / source.name)


def _place_notebook(folder: Path, notebook_name: str) -> None:
    """Make sure `folder` has exactly the notebook nbgrader expects, and that it is valid."""
    expected = folder / notebook_name
    if not expected.exists():
        candidates = sorted(folder.rglob("*.ipynb"))
        if not candidates:
            raise ValueError(f"expected {notebook_name}, found no notebook")
        if len(candidates) > 1:
            listed = ", ".join(c.name for c in candidates[:5]) + (", ..." if len(candidates) > 5 else "")
            hint = ("; this looks like an LMS bulk download: pass it as the INBOX itself "
                    "(`python -m autograder collect A DOWNLOAD.zip`)" if _looks_like_download(candidates)
                    else f"; keep one notebook in the submission, named {notebook_name}")
            raise ValueError(f"expected {notebook_name}, found {len(candidates)} notebooks ({listed}){hint}")
        candidates[0].rename(expected)
    try:
        nb = nbformat.read(expected, as_version=4)
    except Exception as error:
        raise ValueError(f"not a readable notebook ({type(error).__name__}: {str(error)[:120]})") from None
    if not nb.cells:
        raise ValueError("the notebook has no cells")


def _looks_like_download(paths: list[Path]) -> bool:
    names = [p.name for p in paths] + [p.parent.name for p in paths]
    return any(lms_canvas.parse_name(n) or lms_moodle.parse_name(n) for n in names)


# ---- what is in the inbox -----------------------------------------------------------

def _open_inbox(inbox: Path, scratch: Path) -> tuple[Path, bool]:
    """(the folder to read, whether it came from a zip): a zip is unpacked into `scratch`, and a
    folder that only wraps the download is entered."""
    if inbox.is_file() and zipfile.is_zipfile(inbox):
        folder = scratch / "inbox"
        folder.mkdir()
        try:
            with zipfile.ZipFile(inbox) as archive:
                _extract(archive, folder)
        except (ValueError, zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"cannot unpack the download {inbox}: {error}") from None
        inside = [p for p in folder.iterdir() if p.name != "__MACOSX"]
        if len(inside) == 1 and inside[0].is_dir() and not _is_lms_entry(inside[0].name):
            folder = inside[0]
        return folder, True
    if inbox.is_file():
        raise FileNotFoundError(f"{inbox} is a file but not a zip: pass the folder that holds the submissions, or "
                                "the LMS's bulk-download zip")
    if not inbox.is_dir():
        raise FileNotFoundError(f"no folder or zip {inbox} to collect from")
    return inbox, False


def _is_lms_entry(name: str) -> bool:
    return bool(lms_canvas.parse_name(name) or lms_canvas.online_entry(name) or lms_moodle.parse_name(name))


def detect_lms(entries: list[Path]) -> str:
    """'moodle', 'canvas' or 'none' for the entries of an inbox."""
    if any(lms_moodle.parse_name(e.name) for e in entries):
        return "moodle"
    submissions = [e for e in entries if e.is_dir() or e.suffix in SUBMISSION_SUFFIXES]
    canvas = [e for e in entries if lms_canvas.parse_name(e.name) or lms_canvas.online_entry(e.name)]
    if canvas and all(lms_canvas.parse_name(e.name) for e in submissions):
        return "canvas"
    return "none"


def _plain_candidates(entries: list[Path], id_pattern: str, report: CollectReport) -> list[Candidate]:
    out = []
    for entry in entries:
        if not (entry.is_dir() or entry.suffix in SUBMISSION_SUFFIXES):
            report.problems.append((entry, "not a notebook, zip or folder"))
            continue
        student = student_id(entry.name, id_pattern)
        if student is None:
            report.problems.append((entry, f"no student id in the name (pattern {id_pattern!r})"))
            continue
        out.append(Candidate(student, entry, ()))
    return out


def _canvas_candidates(entries: list[Path], report: CollectReport) -> list[Candidate]:
    out = []
    for entry in entries:
        online = lms_canvas.online_entry(entry.name)
        parsed = lms_canvas.parse_name(entry.name)
        if online:
            report.problems.append((entry, f"online text or URL entry of {online}: not the notebook; ignored"))
        elif parsed is None:
            report.problems.append((entry, "not a Canvas file name (<name>_[LATE_]<user id>_<attachment id>_<file>)"))
        elif entry.is_dir() or entry.suffix not in SUBMISSION_SUFFIXES:
            report.problems.append((entry, f"upload {parsed.file!r} of {parsed.student}: not a notebook or zip; "
                                           "ignored"))
        else:
            out.append(Candidate(parsed.student, entry, (parsed.attachment,), parsed.name, parsed.late))
    return out


def _moodle_candidates(entries: list[Path], notebook: str, report: CollectReport) -> list[Candidate]:
    out = []
    for entry in entries:
        parsed = lms_moodle.parse_name(entry.name)
        if parsed is None:
            report.problems.append((entry, "not a Moodle submission name (<full name>_<participant id>_"
                                           "assignsubmission_<plugin>_...)"))
        elif parsed.plugin != "file":
            report.problems.append((entry, f"{parsed.plugin} submission of {parsed.student} ({parsed.name}): "
                                           "not the notebook; ignored"))
        elif entry.is_file() and entry.suffix not in SUBMISSION_SUFFIXES:
            report.problems.append((entry, f"upload {parsed.file!r} of {parsed.student}: not a notebook or zip; "
                                           "ignored"))
        else:
            # Moodle gives no order between the files of one submission: the notebook's own name wins.
            out.append(Candidate(parsed.student, entry, (parsed.file == notebook,), parsed.name))
    return out


def _choose(candidates: list[Candidate], report: CollectReport, zone: str) -> dict[str, Candidate]:
    """One upload per student: the latest by the LMS's ordering (plain folders: submission time)."""
    by_student: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if not candidate.order:
            candidate.order = (submission_time(candidate.source, zone)[0], candidate.source.name)
        by_student.setdefault(candidate.student, []).append(candidate)
    chosen = {}
    for student, group in sorted(by_student.items()):
        group.sort(key=lambda c: c.order)
        if len(group) > 1 and group[-1].order == group[-2].order:
            listed = ", ".join(c.source.name for c in group)
            for candidate in group:
                report.problems.append((candidate.source, f"{student} has {len(group)} uploads ({listed}) and the LMS "
                                                          "says nothing of their order: keep only one in the inbox"))
            continue
        for older in group[:-1]:
            report.problems.append((older.source, f"duplicate for {student}; kept the newer {group[-1].source.name}"))
        chosen[student] = group[-1]
    return chosen

# ---- when it was submitted ------------------------------------------------------------

@dataclass
class TimeSources:
    """Where submission times may come from (see the module docstring)."""

    csv: dict[str, datetime] | None = None                       # --submission-times
    worksheet: dict[str, dict] | None = None                     # Moodle --worksheet
    file_times: bool = True                                      # plain folder, not a zip
    none: bool = False                                           # --no-late-penalty


def _times(chosen: dict[str, Candidate], lms: str, sources: TimeSources, report: CollectReport,
           zone: str) -> dict[str, tuple[datetime, str]]:
    """student -> (UTC time, origin) for the students a source knows; notes say who has none."""
    if sources.none:
        report.notes.append("no submission times recorded (--no-late-penalty): no late penalty applied here")
        return {}
    if sources.csv is not None:
        times = {s: (sources.csv[s], "submission-times CSV") for s in chosen if s in sources.csv}
    elif sources.worksheet is not None:
        times = {s: (sources.worksheet[s]["submitted"], "Moodle worksheet") for s in chosen
                 if sources.worksheet.get(s, {}).get("submitted")}
    elif lms == "canvas":
        return _canvas_times(chosen, report)
    elif lms == "moodle" or not sources.file_times:
        report.notes.append(f"no submission times: a {'Moodle' if lms == 'moodle' else 'zipped'} download carries "
                            "none (its file times are when the zip was made), so no late penalty is applied; give "
                            + ("the grading worksheet (--worksheet) or " if lms == "moodle" else "")
                            + "--submission-times CSV, or let the LMS apply its own late policy")
        return {}
    else:
        times = {s: submission_time(c.source, zone) for s, c in chosen.items()}
        return _distinct_file_times(times, report)
    missing = sorted(set(chosen) - set(times))
    if missing:
        report.notes.append(f"no submission time for {len(missing)} student(s) ({', '.join(missing[:5])}"
                            f"{', ...' if len(missing) > 5 else ''}): no late penalty for them")
    return times


def _canvas_times(chosen: dict[str, Candidate], report: CollectReport) -> dict[str, tuple[datetime, str]]:
    """Canvas's LATE marker: late students count as one second late (the policy's first day)."""
    late = sorted(s for s, c in chosen.items() if c.late)
    if report.due is None:
        if late:
            report.notes.append(f"{len(late)} submission(s) marked LATE by Canvas, but this assignment has no "
                                "due date here: no late penalty applied (give --due-date, or let Canvas's late "
                                "policy deduct it)")
        return {}
    return {s: (report.due + timedelta(seconds=1), CANVAS_LATE) for s in late}


def _distinct_file_times(times: dict[str, tuple[datetime, str]], report: CollectReport) -> dict:
    """File times all within two seconds were set by unpacking or copying, not by submitting: not used."""
    stamps = [t for t, origin in times.values() if origin == "file time"]
    if len(times) > 1 and len(stamps) == len(times) and max(stamps) - min(stamps) < timedelta(seconds=2):
        report.notes.append(f"every file has the same time ({min(stamps):%Y-%m-%d %H:%M:%S} UTC): the files were "
                            "unpacked or copied, so their times say nothing of when they were submitted; no late "
                            "penalty applied (give --submission-times CSV)")
        return {}
    return times


# ---- the record export reads ------------------------------------------------------------

def manifest_path(course: Course, assignment: str) -> Path:
    return course.reports(assignment) / "collected.csv"


def read_manifest(course: Course, assignment: str) -> dict[str, dict[str, str]]:
    """student -> collect's record of them (empty when nothing was collected with this version)."""
    path = manifest_path(course, assignment)
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def _write_manifest(course: Course, assignment: str, report: CollectReport, worksheet: dict | None) -> None:
    """Add this run's students to reports/<A>/collected.csv (replacing their earlier rows)."""
    rows = read_manifest(course, assignment)
    for student, source in report.collected.items():
        when = report.times.get(student)
        fields = (worksheet or {}).get(student, {})
        rows[student] = {"student": student, "lms": report.lms, "name": report.names.get(student, ""),
                         "source": source.name, "submitted_at": f"{when[0]:%Y-%m-%d %H:%M:%S}" if when else "",
                         "time_source": when[1] if when else "",
                         **{f: fields.get(f, "") for f in lms_moodle.USER_FIELDS}}
    path = manifest_path(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[s] for s in sorted(rows))


# ---- collect ------------------------------------------------------------------------------

def _released_notebook(course: Course, assignment: str) -> str:
    released = course.exercises / assignment
    notebooks = sorted(p.name for p in released.glob("*.ipynb"))
    if len(notebooks) != 1:
        raise FileNotFoundError(f"{released} should hold exactly one notebook (found {notebooks}): "
                                f"run `python -m autograder release {assignment}`")
    return notebooks[0]


def _candidates(folder: Path, lms: str, id_pattern: str, notebook: str, report: CollectReport) -> list[Candidate]:
    entries = [e for e in sorted(folder.iterdir()) if not e.name.startswith(".") and e.name != "__MACOSX"]
    if lms == "auto":
        report.lms = detect_lms(entries) if id_pattern == "default" else "none"
    else:
        report.lms = lms
    if lms == "auto" and report.lms == "none" and any(_is_lms_entry(e.name) for e in entries):
        report.notes.append("some names look like an LMS download but not all: read as a plain folder "
                            "(say --lms canvas or --lms moodle to read it as one)")
    if report.lms == "canvas":
        return _canvas_candidates(entries, report)
    if report.lms == "moodle":
        return _moodle_candidates(entries, notebook, report)
    return _plain_candidates(entries, id_pattern, report)


def _store(course: Course, assignment: str, student: str, source: Path, notebook: str,
           when: datetime | None) -> None:
    """Unpack one submission into submitted/<student>/<assignment>/ (ValueError when unreadable)."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / assignment
        staging.mkdir()
        _unpack(source, staging)
        _place_notebook(staging, notebook)
        (staging / "timestamp.txt").unlink(missing_ok=True)
        if when is not None:
            write_timestamp(staging, when)
        target = course.submitted(student, assignment)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)


def collect(assignment: str, inbox: Path, course: Course | None = None, *,
            id_pattern: str = "default", due_date: str | None = None, zone: str = "UTC", lms: str = "auto",
            worksheet: Path | None = None, submission_times: Path | None = None,
            no_late_penalty: bool = False) -> CollectReport:
    """Copy every submission in `inbox` (a folder, or an LMS bulk-download zip) to
    submitted/<student>/<assignment>/ with its submission time when a source knows it; store the
    due date (`due_date`, else the course config's) in the gradebook."""
    course = course or Course()
    check_id(assignment, "assignment")
    if lms not in LMS_CHOICES:
        raise ValueError(f"unknown --lms {lms!r}: use one of {', '.join(LMS_CHOICES)}")
    check_zone(zone)
    notebook = _released_notebook(course, assignment)
    sheet = lms_moodle.worksheet_students(worksheet, zone) if worksheet else None
    stated = read_submission_times(submission_times, zone) if submission_times else None
    with tempfile.TemporaryDirectory() as scratch:
        folder, zipped = _open_inbox(inbox, Path(scratch))
        report = CollectReport(due=set_due_date(course, assignment, due_date))
        chosen = _choose(_candidates(folder, lms, id_pattern, notebook, report), report, zone)
        if sheet is not None and report.lms != "moodle":
            raise ValueError("--worksheet is Moodle's grading worksheet, but this inbox is not a Moodle download")
        sources = TimeSources(csv=stated, worksheet=sheet, file_times=not zipped, none=no_late_penalty)
        times = _times(chosen, report.lms, sources, report, zone)
        for student, candidate in chosen.items():
            try:
                _store(course, assignment, student, candidate.source, notebook, times.get(student, (None,))[0])
            except (ValueError, OSError, zipfile.BadZipFile) as error:
                report.problems.append((candidate.source, f"unreadable: {error}"))
                continue
            report.collected[student] = candidate.source
            report.names[student] = candidate.name
            if student in times:
                report.times[student] = times[student]
    _write_manifest(course, assignment, report, sheet)
    return report
