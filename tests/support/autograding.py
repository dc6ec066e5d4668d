"""Shared helpers of the autograder tests: a throwaway course, samples written as files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder.config.course import REPO_ROOT, Course

FIXTURE_SOLUTIONS = REPO_ROOT / "tests" / "fixtures" / "course" / "solutions"
# Short limits keep the hanging samples quick; the course defaults are much longer.
TEST_LIMITS = ["--cell-timeout", "6", "--budget", "40", "--memory-mb", "2048"]


def temp_course(tmp: Path, solutions: Path) -> Course:
    return Course(root=tmp / "course", solutions=solutions, exercises=tmp / "exercises")


def cli(course: Course, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m autograder` on `course` as a user would."""
    command = [sys.executable, "-m", "autograder", "--course", str(course.root),
               "--solutions", str(course.solutions), "--exercises", str(course.exercises), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def write_inbox(inbox: Path, assignment: str, samples: dict) -> None:
    """Write each sample like an LMS download: '<student>_<n>_<assignment>.ipynb'."""
    inbox.mkdir(parents=True, exist_ok=True)
    for number, (name, (nb, _expected)) in enumerate(sorted(samples.items())):
        student = name.replace("_", "-")
        nbformat.write(nb, inbox / f"{student}_{1000 + number}_{assignment}.ipynb")


def collect_and_grade(course: Course, tmp: Path, assignment: str, samples: dict,
                      limits: list[str]) -> dict[str, float]:
    """Write ``samples`` (name -> (notebook, expected score)) as an LMS inbox under ``tmp``, then
    `collect` and `grade` them with two workers; returns student id -> expected score."""
    write_inbox(tmp / "inbox", assignment, samples)
    cli(course, "collect", assignment, str(tmp / "inbox"))
    cli(course, "grade", assignment, "--workers", "2", *limits)
    return {name.replace("_", "-"): score for name, (_nb, score) in samples.items()}


def gradebook_totals(course: Course, assignment: str) -> dict[str, float]:
    """student -> total score, read straight from a gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "vitcourse") as gb:
        return {s.student_id: float(s.score) for s in gb.assignment_submissions(assignment)}


def sequential_nbgrader(course: Course, assignment: str, copy_to: Path, limits: list[str]) -> dict[str, float]:
    """Plain `nbgrader autograde` (one process, one submission after another) on a copy."""
    shutil.copytree(course.root, copy_to)
    copy = Course(root=copy_to, solutions=course.solutions, exercises=course.exercises)
    nbgrader = Path(sys.executable).parent / "nbgrader"
    done = subprocess.run([str(nbgrader), "autograde", assignment, "--force", *limits],
                          cwd=copy_to, capture_output=True, text=True, timeout=1800,
                          env={**__import__("os").environ, "PATH": f"{nbgrader.parent}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    return gradebook_totals(copy, assignment)


NBGRADER_LIMITS = ["--Execute.timeout=6", "--GuardedExecute.cpu_budget=40",
                   "--SandboxedKernelManager.memory_limit_mb=2048"]
