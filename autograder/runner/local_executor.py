"""The local executor: a fork process pool on this machine, N workers, one gradebook writer.

Each worker process holds a private copy of the gradebook and calls `worker.grade_submission`
for one submission at a time; this process merges every result into the shared gradebook.
Everything of the run on the host (the gradebook snapshot, each worker's private copy, the
kernels' scratch and runtime folders) lives in one folder, removed when the run ends.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from traitlets.config import Config

from autograder.config.course import Course
from autograder.runner.batch import Batch, run_settings
from autograder.runner.progress import BatchProgress
from autograder.runner.worker import GradeResult, grade_submission, grading_api, merge_scores
from autograder.sandbox.execute import expect_more_notebooks
from autograder.sandbox.launch import unmount_below


def run_local(batch: Batch, bar: BatchProgress) -> list[GradeResult]:
    """Grade `batch` in a process pool of `batch.workers` here; merge every result here, one by one."""
    tmp = tempfile.mkdtemp(prefix="autograder-run-")
    try:
        os.chmod(tmp, 0o755)
        snapshot = Path(tmp) / "gradebook.db"
        shutil.copy2(batch.course.gradebook, snapshot)
        settings = run_settings(batch.overrides, kernels_per_host=batch.workers,
                                hidden_folders=[str(batch.course.root.resolve())],
                                grading_seed=batch.course.grading_seed(), run_dir=tmp)
        return _run_pool(batch.course, batch.assignment, list(batch.students), batch.workers, snapshot,
                         settings, bar)
    finally:
        remove_run_dir(Path(tmp))


_worker_state: dict = {}


def _init_worker(course: Course, snapshot: Path, overrides: Config) -> None:
    """Give this worker process its own copy of the gradebook."""
    # Inside the run's folder (next to the snapshot): removed with it when the batch ends.
    private = Path(tempfile.mkdtemp(prefix="worker-", dir=snapshot.parent)) / "gradebook.db"
    shutil.copy2(snapshot, private)
    db_url, api = grading_api(course, private, overrides)
    _worker_state.update(course=course, db_url=db_url, api=api)


def _grade_in_worker(assignment: str, student: str, more_to_come: bool = False) -> tuple[GradeResult, dict | None]:
    expect_more_notebooks(more_to_come)   # start the next kernel ahead only if there is a next one
    return grade_submission(_worker_state["api"], _worker_state["db_url"], assignment, student)


def remove_run_dir(folder: Path) -> None:
    """Remove a grading run's folder, first unmounting any kernel's scratch tmpfs still inside it
    (a kernel killed with its worker never ran its own clean-up)."""
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

