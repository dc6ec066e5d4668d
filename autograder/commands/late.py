"""Late work through nbgrader's own mechanism.

* The due date is the gradebook assignment's `duedate` (what `nbgrader db assignment add
  --duedate`, formgrader and `total_seconds_late` use). `collect` writes it there from the
  course config, `c.DueDates.due_dates = {"assignment1": "2026-12-14 23:59:00 Europe/Zurich"}`
  in autograder/config/nbgrader_config.py, or from `collect --due-date`.
* The submission time is written by `collect` to `submitted/<student>/<A>/timestamp.txt`,
  the file nbgrader's autograde reads (`CourseDirectory.get_existing_timestamp`).
* The penalty is computed by nbgrader's `AssignLatePenalties` preprocessor (in the course's
  autograde pipeline) with the plugin configured there, `PercentPerDayLate` below, and
  stored as the notebook's `late_submission_penalty`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Dict, Float
from traitlets.config import Configurable

from autograder.config.course import Course

# A date and time in a file name, e.g. Blackboard's "..._attempt_2026-12-01-17-05-33_...",
# or "2026-12-01T17:05:33" / "2026-12-01_17-05-33".
NAME_TIMESTAMP = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[T_ -](\d{2})[-:](\d{2})[-:](\d{2})(?!\d)")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"   # read back by nbgrader.utils.parse_utc


class DueDates(Configurable):
    """Due date of each assignment (course config)."""

    due_dates = Dict(
        {}, help="assignment -> due date, in any form nbgrader's parse_utc reads, e.g. "
                 "'2026-12-14 23:59:00 Europe/Zurich' or '2026-12-14 22:59:00 UTC'").tag(config=True)


class PercentPerDayLate(LateSubmissionPlugin):
    """Take `percent_per_day` % of the notebook's score for every started day late;
    the whole score from `zero_after_days` days late on."""

    percent_per_day = Float(10.0, help="percent of the score taken per started day late").tag(config=True)
    zero_after_days = Float(7.0, help="from this many days late on, the penalty is the whole score").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        return late_penalty(score, total_seconds_late, self.percent_per_day, self.zero_after_days)


def late_penalty(score: float, seconds_late: float, percent_per_day: float, zero_after_days: float) -> float:
    """The policy itself: one copy, used by the plugin and by the tests that check it."""
    if seconds_late <= 0:
        return 0.0
    days = seconds_late / 86400
    if days >= zero_after_days:
        return float(score)
    return min(float(score), float(score) * math.ceil(days) * percent_per_day / 100)


def parse_due_date(text: str) -> datetime:
    """A due date as nbgrader stores it (naive UTC), or ValueError saying how to write it."""
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except (ValueError, OverflowError, TypeError) as error:
        raise ValueError(f"cannot read the due date {text!r} ({error}): write it like "
                         "'2026-12-14 23:59:00 Europe/Zurich' or '2026-12-14 22:59:00 UTC'") from None


def configured_due_date(course: Course, assignment: str) -> str | None:
    return course.config().get("DueDates", {}).get("due_dates", {}).get(assignment)


def set_due_date(course: Course, assignment: str, due: str | None = None) -> datetime | None:
    """Write the due date (`due`, else the course config's) to the gradebook; return it.

    Without either, the gradebook's own due date (formgrader, `nbgrader db`) is kept and returned.
    """
    from nbgrader.api import Gradebook, MissingEntry

    text = due or configured_due_date(course, assignment)
    if not course.gradebook.exists():
        if text:
            raise FileNotFoundError(f"no gradebook at {course.gradebook} to store the due date in: "
                                    f"run `python -m autograder release {assignment}` first")
        return None
    with Gradebook(course.db_url, "vitcourse") as gb:
        if text:
            when = parse_due_date(text)
            gb.update_or_create_assignment(assignment, duedate=when)
            return when
        try:
            return gb.find_assignment(assignment).duedate
        except MissingEntry:
            return None


def check_zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}: use an IANA name such as 'UTC' or "
                         "'Europe/Zurich'") from None


def submission_time(source: Path, zone: str = "UTC") -> tuple[datetime, str]:
    """(naive UTC time, where it came from) of an inbox entry: a date and time in its name
    (read in `zone`), else the file's modification time (for a folder, its newest file, not
    counting a timestamp.txt)."""
    match = NAME_TIMESTAMP.search(source.name)
    if match:
        tz = check_zone(zone)
        try:
            local = datetime(*map(int, match.groups()), tzinfo=tz)
        except ValueError:
            local = None
        if local is not None:
            return local.astimezone(timezone.utc).replace(tzinfo=None), "file name"
    if source.is_dir():
        times = ([p.stat().st_mtime for p in source.rglob("*") if p.is_file() and p.name != "timestamp.txt"]
                 or [source.stat().st_mtime])
        seconds = max(times)
    else:
        seconds = source.stat().st_mtime
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None), "file time"


def write_timestamp(folder: Path, when: datetime) -> None:
    """nbgrader's timestamp.txt (UTC) for a collected submission."""
    (folder / "timestamp.txt").write_text(when.strftime(TIMESTAMP_FORMAT) + "\n")


def read_submission_times(path: Path, zone: str = "UTC") -> dict[str, datetime]:
    """student -> naive UTC submission time, from a CSV the instructor gives (columns `student`
    and `submitted_at`: '2026-12-14 23:59:00', read in `zone`, or with an offset, '...+01:00')."""
    import csv
    import io

    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        rows = list(reader)
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the submission times {path}: {error}") from None
    if not {"student", "submitted_at"} <= set(reader.fieldnames or []):
        raise ValueError(f"{path} needs the columns 'student' and 'submitted_at' (found {reader.fieldnames}), "
                         "one row per student: 4711,2026-12-14 23:59:00")
    tz, times = check_zone(zone), {}
    for number, row in enumerate(rows, start=2):
        try:
            when = datetime.fromisoformat((row["submitted_at"] or "").strip())
        except ValueError:
            raise ValueError(f"{path}, line {number}: cannot read the time {row['submitted_at']!r}: write it like "
                             "'2026-12-14 23:59:00' (in --timezone) or '2026-12-14T23:59:00+01:00'") from None
        when = when if when.tzinfo else when.replace(tzinfo=tz)
        times[(row["student"] or "").strip()] = when.astimezone(timezone.utc).replace(tzinfo=None)
    return times
