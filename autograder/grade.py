"""`grade`: autograde every collected submission with N parallel workers.

Each worker process runs nbgrader's own Autograde converter (the course config:
sandboxed GuardedExecute, SaveAutoGrades, ...) against a *private copy* of the
gradebook, so scores are by construction what `nbgrader autograde` computes. The
worker then reads the scores it wrote and returns them as plain data; only the
parent process writes the shared gradebook, one submission at a time. sqlite is
therefore never written concurrently, and re-grading a student simply overwrites
that student's automatic scores (manual scores are kept, as nbgrader does).

Two executors run the same per-submission function, `grade_submission`:
  * "local" (default): a fork process pool on this machine (below);
  * "dask": tasks on a dask.distributed cluster (autograder/dask_executor.py), for
    courses too big for one machine. The gradebook is still written here, only.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config

from autograder.config.course import Course, check_id
from .grading import SECRET_ENV
from .progress import BatchProgress

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


@dataclass
class GradeResult:
    """Outcome of autograding one submission."""

    student: str
    status: str  # "graded" or "failed"
    reason: str = ""
    seconds: float = 0.0
    review_flags: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)  # notebook -> grade_id -> auto score


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


# ---- worker side -----------------------------------------------------------------

_worker_state: dict = {}


def grading_api(course: Course, gradebook: Path, overrides: Config) -> tuple[str, object]:
    """(db_url, NbGraderAPI) grading `course` into `gradebook`, a worker's private copy."""
    config = Config(overrides)
    config.CourseDirectory.db_url = f"sqlite:///{gradebook}"
    return config.CourseDirectory.db_url, course.api(config)


def _init_worker(course: Course, snapshot: Path, overrides: Config) -> None:
    """Give this worker process its own copy of the gradebook."""
    # Inside the run's folder (next to the snapshot): removed with it when the batch ends.
    private = Path(tempfile.mkdtemp(prefix="worker-", dir=snapshot.parent)) / "gradebook.db"
    shutil.copy2(snapshot, private)
    db_url, api = grading_api(course, private, overrides)
    _worker_state.update(course=course, db_url=db_url, api=api)


def _read_scores(db_url: str, assignment: str, student: str) -> dict:
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
    data = _read_scores(db_url, assignment, student)
    scores = {nb: info["grades"] for nb, info in data["notebooks"].items()}
    autograded = Path(api.coursedir.format_path(api.coursedir.autograded_directory, student, assignment))
    return GradeResult(student, "graded", "", seconds, review_flags=grading_flags(autograded),
                       scores=scores), data


def grading_flags(autograded: Path) -> list[str]:
    """The review flags the grading run's tests raised (e.g. a model that scores far better on
    the public test split than on held-out images), as execute.py wrote them into each
    autograded notebook."""
    from autograder.sandbox.execute import REVIEW_METADATA

    flags = set()
    for path in sorted(autograded.glob("*.ipynb")):
        try:
            metadata = nbformat.read(path, as_version=4).metadata
            found = metadata.get(REVIEW_METADATA, {}).get("review_flags", [])
        except Exception:  # noqa: BLE001 - an unreadable notebook has no flags to add
            continue
        flags.update(str(flag) for flag in found if isinstance(flag, str))
    return sorted(flags)


def _grade_in_worker(assignment: str, student: str, more_to_come: bool = False) -> tuple[GradeResult, dict | None]:
    from autograder.sandbox.execute import expect_more_notebooks

    expect_more_notebooks(more_to_come)   # start the next kernel ahead only if there is a next one
    return grade_submission(_worker_state["api"], _worker_state["db_url"], assignment, student)


# ---- parent side -----------------------------------------------------------------

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
    from autograder.sandbox.launch import check_bwrap

    sandbox = course.config(overrides).SandboxedKernelManager.get("sandbox", "bwrap")
    if sandbox == "bwrap":
        problem = check_bwrap()
        if problem:
            raise RuntimeError(f"{problem}. Install it with `python -m autograder doctor --install`, "
                               "or grade with --no-sandbox (resource limits only, no file or network "
                               "isolation: see autograder/README.md).")


EXECUTORS = ("local", "dask")


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
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise ValueError("--scheduler is the address of a Dask scheduler: use it with --executor dask")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    overrides = overrides or Config()
    if not course.gradebook.exists():
        raise FileNotFoundError(f"no gradebook at {course.gradebook}: run `python -m autograder release "
                                f"{assignment}` first")
    todo = students or course.students_submitted(assignment)
    missing = [s for s in todo if not course.submitted(check_id(s, "student"), assignment).is_dir()]
    if missing:
        raise FileNotFoundError(f"no collected submission of {assignment} for {missing}: run `collect` first")
    if not todo:
        progress(f"no submissions of {assignment} in {course.root / 'submitted'}")
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if executor == "local" or scheduler is None:
        _check_sandbox(course, overrides)  # remote workers check their own machine (dask_executor)
    # Seen by every kernel manager: thread count per kernel, and the folder to hide; and by the
    # tests run in the grader: the course's secret seed (never passed to a kernel).
    # Set for this run only: grade() leaves the caller's environment as it found it.
    run_env = {"AUTOGRADER_WORKERS": str(workers), "AUTOGRADER_COURSE_ROOT": str(course.root.resolve()),
               SECRET_ENV: str(course.grading_seed())}
    saved_env = {key: os.environ.get(key) for key in run_env}
    os.environ.update(run_env)

    bar = BatchProgress(len(todo), write=progress, tty=tty)
    try:
        if executor == "dask":
            try:
                import distributed  # noqa: F401
            except ImportError as error:
                raise RuntimeError("--executor dask needs the dask and distributed packages: "
                                   "pip install -e '.[course]' (or make setup)") from error
            from .dask_executor import run_dask

            results = run_dask(course, assignment, todo, overrides, bar, workers=workers, scheduler=scheduler)
        else:
            # Everything of this run on the host lives in one folder, removed when it ends: the
            # gradebook snapshot, each worker's private copy, the kernels' scratch and runtime.
            tmp = tempfile.mkdtemp(prefix="autograder-run-")
            try:
                os.chmod(tmp, 0o755)
                os.environ["AUTOGRADER_RUN_DIR"] = tmp
                snapshot = Path(tmp) / "gradebook.db"
                shutil.copy2(course.gradebook, snapshot)
                results = _run_pool(course, assignment, todo, workers, snapshot, overrides, bar)
            finally:
                os.environ.pop("AUTOGRADER_RUN_DIR", None)
                remove_run_dir(Path(tmp))
    finally:
        bar.close()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for result in results:
        notebook_dir = course.submitted(result.student, assignment)
        result.review_flags = sorted(set(result.review_flags) | {
            flag for nb in sorted(notebook_dir.glob("*.ipynb")) for flag in review_flags(nb, assignment)})
    _write_grading_log(course, assignment, results)
    return sorted(results, key=lambda r: r.student)


def remove_run_dir(folder: Path) -> None:
    """Remove a grading run's folder, first unmounting any kernel's scratch tmpfs still inside it
    (a kernel killed with its worker never ran its own clean-up)."""
    from autograder.sandbox.launch import unmount_below

    unmount_below(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _preload_grading_modules() -> None:
    """Import nbgrader's grading stack once, before the workers fork, so none pays it again."""
    import nbgrader.api  # noqa: F401
    import nbgrader.apps  # noqa: F401
    import nbgrader.converters  # noqa: F401

    from autograder.sandbox import execute  # noqa: F401


def _run_pool(course, assignment, todo, workers, snapshot, overrides, bar) -> list[GradeResult]:
    _preload_grading_modules()
    overrides = Config(overrides)
    # Each worker boots its next kernel while it grades: see autograder/sandbox/execute.py.
    overrides.GuardedExecute.start_kernels_ahead = True
    results: list[GradeResult] = []
    pending = list(todo)
    while pending:
        _run_pool_once(course, assignment, workers, snapshot, overrides, bar, pending, results)
    return results


def _run_pool_once(course, assignment, workers, snapshot, overrides, bar, pending, results) -> None:
    """Grade `pending` until done or a worker process dies (then the caller starts a new pool)."""
    from nbgrader.api import Gradebook

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(course, snapshot, overrides)) as pool:
        # Tasks run roughly in order: the last `workers` are each some worker's last notebook.
        futures = {pool.submit(_grade_in_worker, assignment, s, index < len(pending) - workers): s
                   for index, s in enumerate(pending)}
        bar.set_running(min(workers, len(pending)))
        # Opened after the workers forked: they never inherit the shared gradebook's connection.
        with Gradebook(course.db_url, "vitcourse") as gb:
            try:
                for future in as_completed(futures):
                    student = futures[future]
                    result, data = future.result()
                    if data is not None:
                        merge_scores(gb, assignment, student, data)
                    results.append(result)
                    pending.remove(student)
                    bar.finished(student, result.status, result.seconds, result.reason)
                    bar.set_running(min(workers, len(pending)))
            except BrokenProcessPool:
                # A worker process itself died (not a kernel: those are handled inside).
                # Record the submission it was on as failed and carry on with a fresh pool.
                unfinished = [s for f, s in futures.items() if s in pending and not f.done()]
                culprit = unfinished[0] if unfinished else pending[0]
                results.append(GradeResult(culprit, "failed", "the grading worker process died"))
                pending.remove(culprit)
                bar.finished(culprit, "failed", 0.0, "the grading worker process died")
