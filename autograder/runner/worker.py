"""The one per-submission step of every executor, and the gradebook round trip around it.

A worker grades one collected submission with nbgrader's own Autograde converter (the course
config: sandboxed GuardedExecute, SaveAutoGrades, ...) against a *private copy* of the gradebook,
so scores are by construction what `nbgrader autograde` computes, and returns them as plain data;
only the process that runs the batch writes the shared gradebook (`merge_scores`), one submission
at a time. sqlite is therefore never written concurrently, and re-grading a student simply
overwrites that student's automatic scores (manual scores are kept, as nbgrader does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config

from autograder.config.course import Course
from autograder.sandbox.execute import REVIEW_METADATA


@dataclass
class GradeResult:
    """Outcome of autograding one submission."""

    student: str
    status: str  # "graded" or "failed"
    reason: str = ""
    seconds: float = 0.0
    review_flags: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)  # notebook -> grade_id -> auto score


def grading_api(course: Course, gradebook: Path, overrides: Config) -> tuple[str, object]:
    """(db_url, NbGraderAPI) grading `course` into `gradebook`, a worker's private copy."""
    config = Config(overrides)
    config.CourseDirectory.db_url = f"sqlite:///{gradebook}"
    return config.CourseDirectory.db_url, course.api(config)


def read_scores(db_url: str, assignment: str, student: str) -> dict:
    """The automatic scores nbgrader just saved for one submission, as plain data."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, "vitcourse") as gb:
        submission = gb.find_submission(assignment, student)
        return {
            "timestamp": submission.timestamp.isoformat() if submission.timestamp else None,
            "notebooks": {
                nb.name: {
                    "grades": {g.name: g.auto_score for g in nb.grades},
                    "comments": {c.name: c.auto_comment for c in nb.comments},
                    "late_submission_penalty": nb.late_submission_penalty,
                }
                for nb in submission.notebooks
            },
        }


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["unknown error"])[-1][:300]


def grade_submission(api, db_url: str, assignment: str, student: str) -> tuple[GradeResult, dict | None]:
    """Autograde one collected submission with `api` (saving into the private gradebook at
    `db_url`); return the outcome and, when graded, the saved scores as plain data.

    The one per-submission step of every executor: the sandbox and limits come from the
    api's config (SandboxedKernelManager), so they are the same wherever this runs.
    """
    start = time.monotonic()
    try:
        result = api.autograde(assignment, student, force=True, create=True)
    except Exception as error:  # nbgrader normally reports failures in `result`
        result = {"success": False, "error": f"{type(error).__name__}: {error}"}
    seconds = time.monotonic() - start
    if not result.get("success"):
        reason = _last_error_line((result.get("error") or "") + "\n" + (result.get("log") or ""))
        return GradeResult(student, "failed", f"nbgrader could not grade it: {reason}", seconds), None
    data = read_scores(db_url, assignment, student)
    scores = {nb: info["grades"] for nb, info in data["notebooks"].items()}
    autograded = Path(api.coursedir.format_path(api.coursedir.autograded_directory, student, assignment))
    return GradeResult(student, "graded", "", seconds, review_flags=grading_flags(autograded),
                       scores=scores), data


def grading_flags(autograded: Path) -> list[str]:
    """The review flags the grading run's tests raised (e.g. a model that scores far better on
    the public test split than on held-out images), as execute.py wrote them into each
    autograded notebook."""
    flags = set()
    for path in sorted(autograded.glob("*.ipynb")):
        try:
            metadata = nbformat.read(path, as_version=4).metadata
            found = metadata.get(REVIEW_METADATA, {}).get("review_flags", [])
        except Exception:  # noqa: BLE001 - an unreadable notebook has no flags to add
            continue
        flags.update(str(flag) for flag in found if isinstance(flag, str))
    return sorted(flags)


def merge_scores(gb, assignment: str, student: str, data: dict) -> None:
    """Write one worker's scores into the shared gradebook `gb` (the single writer)."""
    from datetime import datetime

    timestamp = datetime.fromisoformat(data["timestamp"]) if data["timestamp"] else None
    gb.update_or_create_student(student)
    submission = gb.update_or_create_submission(assignment, student, timestamp=timestamp)
    for nb in submission.notebooks:
        info = data["notebooks"].get(nb.name)
        if info is None:
            continue
        for grade in nb.grades:
            grade.auto_score = info["grades"].get(grade.name)
            # nbgrader's rule (SaveAutoGrades): a manual score or no automatic
            # score means a human has to look at the cell.
            grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        for comment in nb.comments:
            comment.auto_comment = info["comments"].get(comment.name)
        nb.late_submission_penalty = info["late_submission_penalty"]
    gb.db.commit()

