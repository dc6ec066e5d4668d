"""`grade`: autograde every collected submission, in parallel, sandboxed.

This command checks the request, hands one `Batch` to an executor of autograder/runner/ (both
executors have one signature, `run(batch, bar)`, and grade each submission with the same worker
function, `runner.worker.grade_submission`), adds the review flags found in the students' own
code, and writes reports/<assignment>/grading_log.json:
  * "local" (default): a fork process pool on this machine (runner/local_executor.py);
  * "dask": tasks on a dask.distributed cluster (runner/dask_executor.py), for courses too big
    for one machine. The gradebook is still written here, only.
The run's settings travel in the batch and in the nbgrader Config the executors build from it
(runner/batch.py); grade() sets no environment variable.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import nbformat
from traitlets.config import Config

from autograder.config.course import Course, check_id
from autograder.runner.batch import Batch
from autograder.runner.dask_executor import run_dask
from autograder.runner.local_executor import run_local
from autograder.runner.progress import BatchProgress
from autograder.runner.worker import GradeResult
from autograder.sandbox.launch import check_bwrap

# Student code touching these is not necessarily cheating, but deserves a look.
TAMPER_PATTERNS = {
    "sys.modules": r"\bsys\.modules\b",
    "builtins": r"\b(__builtins__|builtins)\b",
    "ctypes": r"\bctypes\b",
    "AssertionError": r"\bAssertionError\s*=",
    "numpy.testing": r"\b(np|numpy)\.testing\.\w+\s*=",
    "torch comparisons": r"\btorch\.(allclose|equal|testing)\b[\w.]*\s*=",
    "IPython internals": r"(showtraceback|set_custom_exc|run_cell|run_code|excepthook|get_ipython\(\)\.\w+\s*=)",
    "tracing": r"\bsys\.(settrace|setprofile)\b",
    "autograder": r"\bautograder\b",
    "gc": r"\bgc\.get_(referrers|objects)\b",
}


# The course library holds every assignment's answers (the chapters build them, then keep a copy).
# A submission whose own code imports the modules or names that answer *its* assignment gets the
# review flag "library answer" (the score is not changed: a human decides).
LIBRARY_ANSWERS = {
    # Assignment 1 is NumPy only: any import of the library is one of its answers.
    "assignment1": (r"\b(from|import)\s+vitcourse\b"
                    r"|\bvitcourse\.(attention|norms|positions|patches)\b"),
    "assignment2": (r"\b(from|import)\s+vitcourse\.first_vit\b"
                    r"|\bvitcourse\.first_vit\b"
                    r"|\bfrom\s+vitcourse(\.\w+)*\s+import\s+[^\n]*\b(first_vit|FirstViT|FashionCNN|SelfAttention"
                    r"|PostNormEncoderLayer|count_parameters|parameter_table)\b"),
    "assignment3": (r"\b(from|import)\s+vitcourse\.(swin|deit|attention_maps|dino)\b"
                    r"|\bvitcourse\.(swin|deit|attention_maps|dino)\b"),
}


LIBRARY_ANSWER_FLAG = "library answer"


def review_flags(notebook: Path, assignment: str | None = None) -> list[str]:
    """Names of TAMPER_PATTERNS found in the student's own (unlocked) code cells, and
    "library answer" when that code imports the course library's answers to `assignment`."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as error:
        return [f"unreadable notebook: {type(error).__name__}"]
    student_code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code"
                             and not cell.metadata.get("nbgrader", {}).get("locked"))
    flags = [name for name, pattern in TAMPER_PATTERNS.items() if re.search(pattern, student_code)]
    answers = LIBRARY_ANSWERS.get(assignment or "")
    if answers and re.search(answers, student_code):
        flags.append(LIBRARY_ANSWER_FLAG)
    return flags


def grade_overrides(*, cell_timeout: int | None = None, budget: int | None = None,
                    memory_mb: int | None = None, sandbox: str | None = None) -> Config:
    """Config overriding the course defaults for one grading run."""
    config = Config()
    if cell_timeout is not None:
        config.Execute.timeout = cell_timeout
    if budget is not None:
        config.GuardedExecute.cpu_budget = budget
    if memory_mb is not None:
        config.SandboxedKernelManager.memory_limit_mb = memory_mb
    if sandbox is not None:
        config.SandboxedKernelManager.sandbox = sandbox
    return config


def _log_path(course: Course, assignment: str) -> Path:
    return course.reports(assignment) / "grading_log.json"


def read_grading_log(course: Course, assignment: str) -> dict[str, dict]:
    path = _log_path(course, assignment)
    return json.loads(path.read_text()) if path.exists() else {}


def _write_grading_log(course: Course, assignment: str, results: list[GradeResult]) -> None:
    log = read_grading_log(course, assignment)
    for result in results:
        entry = asdict(result)
        entry.pop("student")
        log[result.student] = entry
    path = _log_path(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log, indent=1, sort_keys=True) + "\n")


def _check_sandbox(course: Course, overrides: Config) -> None:
    sandbox = course.config(overrides).SandboxedKernelManager.get("sandbox", "bwrap")
    if sandbox == "bwrap":
        problem = check_bwrap()
        if problem:
            raise RuntimeError(f"{problem}. Install it with `python -m autograder doctor --install`, "
                               "or grade with --no-sandbox (resource limits only, no file or network "
                               "isolation: see autograder/README.md).")


# Every executor: run(batch, bar) -> list[GradeResult].
EXECUTORS = {"local": run_local, "dask": run_dask}


def _students(course: Course, assignment: str, students: list[str] | None) -> list[str]:
    """The students to grade: `students`, or everyone with a collected submission."""
    if not course.gradebook.exists():
        raise FileNotFoundError(f"no gradebook at {course.gradebook}: run `python -m autograder release "
                                f"{assignment}` first")
    todo = students or course.students_submitted(assignment)
    missing = [s for s in todo if not course.submitted(check_id(s, "student"), assignment).is_dir()]
    if missing:
        raise FileNotFoundError(f"no collected submission of {assignment} for {missing}: run `collect` first")
    return todo


def _check_executor(executor: str, scheduler: str | None, workers: int | None) -> None:
    """Refuse an unknown executor, a scheduler without Dask, a worker count below one."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise ValueError("--scheduler is the address of a Dask scheduler: use it with --executor dask")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if executor == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as error:
            raise RuntimeError("--executor dask needs the dask and distributed packages: "
                               "pip install -e '.[course]' (or make setup)") from error


def _add_review_flags(results: list[GradeResult], course: Course, assignment: str) -> None:
    """Add the flags of each student's own code (review_flags) to their result."""
    for result in results:
        notebook_dir = course.submitted(result.student, assignment)
        result.review_flags = sorted(set(result.review_flags) | {
            flag for nb in sorted(notebook_dir.glob("*.ipynb")) for flag in review_flags(nb, assignment)})


def grade(assignment: str, course: Course | None = None, *, workers: int | None = None,
          students: list[str] | None = None, overrides: Config | None = None,
          progress=print, executor: str = "local", scheduler: str | None = None,
          tty: bool | None = None) -> list[GradeResult]:
    """Autograde the collected submissions of `assignment` (all, or only `students`).

    executor: "local" (a process pool here, `workers` processes, default: CPU cores) or
    "dask" (a dask.distributed cluster at `scheduler`, or a LocalCluster of `workers`
    processes when no address is given). progress: where plain-text progress lines go;
    tty: force (True) or forbid (False) the tqdm bar instead (default: when stderr is a TTY).
    """
    course = course or Course()
    check_id(assignment, "assignment")
    _check_executor(executor, scheduler, workers)
    overrides = overrides or Config()
    todo = _students(course, assignment, students)
    if not todo:
        progress(f"no submissions of {assignment} in {course.root / 'submitted'}")
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if executor == "local" or scheduler is None:
        _check_sandbox(course, overrides)  # remote workers check their own machine (dask_executor)
    batch = Batch(course, assignment, tuple(todo), overrides, workers, scheduler)
    bar = BatchProgress(len(todo), write=progress, tty=tty)
    try:
        results = EXECUTORS[executor](batch, bar)
    finally:
        bar.close()
    _add_review_flags(results, course, assignment)
    _write_grading_log(course, assignment, results)
    return sorted(results, key=lambda r: r.student)
