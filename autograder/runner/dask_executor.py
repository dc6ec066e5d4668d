"""`grade --executor dask`: the same grading, as tasks on a dask.distributed cluster.

One submission is one task. Every task runs `worker.grade_submission`, the function the
local process pool runs, inside a private course on its worker, so the sandbox and the
limits (SandboxedKernelManager: bubblewrap + prlimit, from the same nbgrader config) are
identical. Results come back as plain data; this process alone merges them into the
gradebook (`worker.merge_scores`) and writes the autograded notebooks, exactly as the local
pool's parent does. Workers need no shared filesystem:

  * once per batch, a worker plugin (`GradingJobPlugin`) ships the `GradingJob` to every
    worker, including workers that join or restart later: the gradebook snapshot (the
    assignment's definition, locked cells and hidden tests: what hidden tests need, and no
    solution: nbgrader stores cells after removing solutions) and the non-notebook files
    of release/<assignment>/ (nbgrader copies them over the student's files);
  * each task carries one `SubmissionTask`: the files of submitted/<student>/<assignment>/;
  * the task returns (GradeResult, scores, the autograded folder's files).

Nothing from solutions/ or source/ is sent (tests/autograder/test_autograder_dask.py checks it).

A worker that dies (a killed process, a lost machine) costs nothing: the scheduler runs
its task again elsewhere. A submission whose task has been running on
`allowed-failures + 1` workers that all died is marked failed with that reason instead
of being retried for ever (distributed raises KilledWorker). Exceptions inside a task are
retried TASK_RETRIES times. At most one task per worker thread is submitted at a time, so
a worker's death only ever charges the task it was running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from traitlets.config import Config

from autograder.config.course import Course, quiet_gradebook_warnings
from autograder.runner.batch import Batch, run_settings
from autograder.runner.progress import BatchProgress
from autograder.runner.worker import GradeResult, grade_submission, grading_api, merge_scores
from autograder.sandbox.launch import check_bwrap, unmount_below

# A task that was running on this many + 1 workers that died is marked failed.
ALLOWED_FAILURES = 2
# Retries of a task that raised (a worker's death is counted separately, above).
TASK_RETRIES = 2
# Scheduler settings for grading (LocalCluster gets them; set them on your own scheduler too).
SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
    # One queued task per worker thread, no prefetching: grading tasks are long.
    "distributed.scheduler.worker-saturation": 1.0,
}
# How often the progress line refreshes while no submission finishes (seconds).
REFRESH_S = 2.0
# A finished task's result lives on its worker until this process fetches it; a worker that dies
# in between takes the result along (the future then ends as "cancelled"/"lost"). Grading is
# idempotent, so such a submission is simply graded again, at most this many times.
LOST_RESULT_REGRADES = 3
WORKER_WAIT_S = 600


# ---- what travels to the workers ---------------------------------------------------

def plugin_name(token: str) -> str:
    """Name of the worker plugin holding batch `token`'s GradingJob."""
    return f"autograder-job-{token}"


@dataclass(frozen=True)
class GradingJob:
    """What every worker needs for one batch (shipped once per worker, by a plugin)."""

    token: str
    assignment: str
    gradebook: bytes  # snapshot: assignment, notebooks, locked cells and hidden tests
    release_files: dict  # path under release/<assignment>/ -> bytes (notebooks excluded)
    overrides: dict  # grade_overrides() as plain data (limits, sandbox mode)
    kernels_per_host: int  # concurrent kernels on one machine: math-library threads each
    course_root: str  # the instructor's course folder: hidden from kernels where it exists
    grading_seed: int  # the course's secret seed for inputs chosen at grading time

    @property
    def plugin_name(self) -> str:
        return plugin_name(self.token)

    def task_key(self, student: str, attempt: int = 0) -> tuple[str, str]:
        """(group, student): one task group per batch (and per re-grade), the student readable in dashboards."""
        again = f"-again{attempt}" if attempt else ""
        return (f"autograde-{self.assignment}-{self.token}{again}", student)


@dataclass(frozen=True)
class SubmissionTask:
    """One submission: the files of submitted/<student>/<assignment>/."""

    student: str
    files: dict  # relative path -> bytes


def read_files(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder` (symlinks skipped), by relative POSIX path."""
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write `files` (from read_files) under `folder`; refuses paths that would leave it."""
    for name, content in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"refusing to write {name!r}: not a relative path inside {folder}")
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def build_job(course: Course, assignment: str, overrides: Config, *, kernels_per_host: int,
              token: str | None = None) -> GradingJob:
    """The batch's payload: gradebook snapshot + release files, never solutions/ or source/."""
    release = course.root / "release" / assignment
    if not release.is_dir():
        raise FileNotFoundError(f"no {release}: run `python -m autograder release {assignment}` first")
    release_files = {name: content for name, content in read_files(release).items()
                     if not name.endswith(".ipynb")}
    return GradingJob(token=token or uuid.uuid4().hex[:12], assignment=assignment,
                      gradebook=course.gradebook.read_bytes(), release_files=release_files,
                      overrides=json.loads(json.dumps(overrides)), kernels_per_host=max(1, kernels_per_host),
                      course_root=str(course.root.resolve()), grading_seed=course.grading_seed())


def submission_task(course: Course, assignment: str, student: str) -> SubmissionTask:
    return SubmissionTask(student, read_files(course.submitted(student, assignment)))


# ---- worker side -------------------------------------------------------------------

def sandbox_problem(overrides: dict) -> str | None:
    """None when this machine can run the sandbox the config asks for, else why not."""
    sandbox = Config(overrides).get("SandboxedKernelManager", {}).get("sandbox", "bwrap")
    return check_bwrap() if sandbox == "bwrap" else None


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # dask is an optional extra: the local executor never needs it
    WorkerPlugin = object


class GradingJobPlugin(WorkerPlugin):
    """Holds a GradingJob on a worker and builds private courses from it, one per thread.

    A private course is an nbgrader course folder in the worker's local directory:
    gradebook.db (the snapshot; this thread's scores go there), source/<assignment>/ (the
    release files) and, while a task runs, submitted/ and autograded/ of one student.
    """

    def __init__(self, job: GradingJob):
        self.job = job
        self.name = job.plugin_name

    def setup(self, worker) -> None:
        quiet_gradebook_warnings()  # worker processes do not inherit the CLI's filters
        self._folder = Path(worker.local_directory) / "autograder-courses" / self.job.token
        self._courses: dict[int, tuple[Course, str, object]] = {}
        # Kernels' scratch and runtime folders, apart from the private courses (which kernels
        # must not see), removed at teardown.
        self._run_dir = tempfile.mkdtemp(prefix="autograder-run-")
        os.chmod(self._run_dir, 0o755)
        self._lock = threading.Lock()
        self._checked = False

    def teardown(self, worker) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)
        unmount_below(Path(self._run_dir))
        shutil.rmtree(self._run_dir, ignore_errors=True)

    @property
    def hidden_folders(self) -> list[str]:
        """Folders no kernel started here may see: the instructor's course folder, and this
        worker's private courses (SandboxedKernelManager.hidden_folders)."""
        return [self.job.course_root, str(self._folder.parent)]

    def settings(self) -> Config:
        """The job's config with this worker's run settings (runner.batch.run_settings)."""
        return run_settings(Config(self.job.overrides), kernels_per_host=self.job.kernels_per_host,
                            hidden_folders=self.hidden_folders, grading_seed=self.job.grading_seed,
                            run_dir=self._run_dir)

    def private_course(self) -> tuple[Course, str, object]:
        """(course, db_url, NbGraderAPI) of the calling thread, created on first use."""
        thread = threading.get_ident()
        with self._lock:
            if not self._checked:
                problem = sandbox_problem(self.job.overrides)
                if problem:
                    raise RuntimeError(f"this worker cannot run the sandbox: {problem}")
                self._checked = True
            if thread not in self._courses:
                root = self._folder / f"thread-{len(self._courses)}"
                shutil.rmtree(root, ignore_errors=True)
                (root / "source" / self.job.assignment).mkdir(parents=True)
                write_files(root / "source" / self.job.assignment, self.job.release_files)
                (root / "gradebook.db").write_bytes(self.job.gradebook)
                # No solutions/ or exercises/ here: autograde never reads them.
                course = Course(root=root, solutions=root / "solutions", exercises=root / "exercises")
                db_url, api = grading_api(course, root / "gradebook.db", self.settings())
                self._courses[thread] = (course, db_url, api)
            return self._courses[thread]


def grade_task(token: str, task: SubmissionTask) -> tuple[GradeResult, dict | None, dict[str, bytes]]:
    """The Dask task: grade one submission on this worker; return (result, scores, autograded files)."""
    from distributed import get_worker

    plugin = get_worker().plugins[plugin_name(token)]
    job: GradingJob = plugin.job
    course, db_url, api = plugin.private_course()
    submitted = course.submitted(task.student, job.assignment)
    autograded = course.autograded(task.student, job.assignment)
    for folder in (submitted, autograded):
        shutil.rmtree(folder, ignore_errors=True)
    try:
        submitted.mkdir(parents=True)
        write_files(submitted, task.files)
        result, data = grade_submission(api, db_url, job.assignment, task.student)
        files = read_files(autograded) if data is not None and autograded.is_dir() else {}
    finally:
        for folder in (submitted, autograded):
            shutil.rmtree(folder, ignore_errors=True)
    return result, data, files


# ---- client side -------------------------------------------------------------------

def kernels_per_host(worker_info: dict) -> int:
    """Most worker threads on one machine (scheduler_info()['workers'] -> int)."""
    per_host: dict[str, int] = {}
    for info in worker_info.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + int(info["nthreads"])
    return max(per_host.values(), default=1)


def failure_reason(error: BaseException) -> str:
    """Why a task ended in error, for the grading log and scores.csv."""
    from distributed.scheduler import KilledWorker

    if isinstance(error, KilledWorker):
        return (f"the submission killed {error.allowed_failures + 1} grading workers "
                "(distributed.scheduler.allowed-failures); not retried")
    text = str(error).strip().splitlines()
    return f"the grading task failed {TASK_RETRIES + 1} times: {type(error).__name__}: {text[-1] if text else ''}"


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A Client of the scheduler at `scheduler`, or of a fresh LocalCluster of `workers`
    single-threaded processes (both closed on exit)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is None:
        with dask.config.set(SCHEDULER_CONFIG), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as error:
        raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from error
    with client:
        yield client


def run_dask(batch: Batch, bar: BatchProgress) -> list[GradeResult]:
    """Grade `batch` as Dask tasks on the cluster at `batch.scheduler` (or a LocalCluster of
    `batch.workers` processes); merge every result into the gradebook here, one by one."""
    with dask_client(batch.scheduler, batch.workers) as client:
        return _run_on(client, batch.course, batch.assignment, list(batch.students), batch.overrides, bar)


def _run_on(client, course: Course, assignment: str, todo: list[str], overrides: Config,
            bar: BatchProgress) -> list[GradeResult]:
    """run_dask on a connected `client`."""
    from distributed import TimeoutError as DaskTimeout
    from distributed import wait
    from distributed.client import FuturesCancelledError
    from nbgrader.api import Gradebook

    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except DaskTimeout as error:
        raise RuntimeError(f"no Dask worker joined the scheduler in {WORKER_WAIT_S} s") from error
    problems = {address: problem for address, problem in
                client.run(sandbox_problem, json.loads(json.dumps(overrides))).items() if problem}
    if problems:
        raise RuntimeError("these Dask workers cannot run the sandbox: "
                           + "; ".join(f"{a}: {p}" for a, p in sorted(problems.items()))
                           + ". Install bubblewrap there (`python -m autograder doctor --install`) "
                             "or grade with --no-sandbox (see autograder/README.md).")
    info = client.scheduler_info(n_workers=-1)["workers"]
    job = build_job(course, assignment, overrides, kernels_per_host=kernels_per_host(info))
    threads = {address: worker["nthreads"] for address, worker in info.items()}
    bar.note(f"dask: scheduler {client.scheduler.address}, {len(threads)} workers, "
             f"{sum(threads.values())} threads")
    if max(threads.values()) > 1:
        bar.note("dask: workers with several threads grade side by side in one process; "
                 "one thread per worker is the tested setup (dask worker --nthreads 1)")
    client.register_plugin(GradingJobPlugin(job))
    results: list[GradeResult] = []
    queue = list(todo)
    in_flight: dict = {}
    regrades: dict[str, int] = {}   # student -> times their result was lost with a worker
    bar.start()  # the ETA counts grading, not the cluster's start-up

    def top_up() -> None:
        """Submit queued submissions until every live worker thread has one task."""
        nonlocal threads
        live = client.nthreads()
        for address in sorted(set(threads) - set(live)):
            bar.note(f"dask: worker {address} left; its task goes to another worker")
        threads = live
        # One task per live thread: a worker's death then only charges its own task.
        while queue and len(in_flight) < max(1, sum(live.values())):
            student = queue.pop(0)
            future = client.submit(grade_task, job.token, submission_task(course, assignment, student),
                                   key=job.task_key(student, regrades.get(student, 0)), retries=TASK_RETRIES,
                                   pure=False)
            in_flight[future] = student

    try:
        with Gradebook(course.db_url, "vitcourse") as gb:
            while queue or in_flight:
                top_up()
                running = sum(len(keys) for keys in client.processing().values())
                bar.set_running(min(running, len(in_flight)))
                try:
                    wait(list(in_flight), timeout=REFRESH_S, return_when="FIRST_COMPLETED")
                except (DaskTimeout, FuturesCancelledError):
                    pass
                finished = [(f, in_flight.pop(f)) for f in list(in_flight) if f.status != "pending"]
                if finished:
                    top_up()  # the next submissions start while this process merges
                for future, student in finished:
                    if future.status not in ("finished", "error") and regrades.get(student, 0) < LOST_RESULT_REGRADES:
                        regrades[student] = regrades.get(student, 0) + 1
                        bar.note(f"dask: {student}: the result was lost with its worker "
                                 f"({future.status}); grading it again")
                        future.release()
                        queue.insert(0, student)
                        continue
                    result = _collect(future, course, assignment, student, gb)
                    results.append(result)
                    bar.finished(student, result.status, result.seconds, result.reason)
    finally:
        for future in in_flight:
            future.cancel()
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(job.plugin_name)
    return results


def _collect(future, course: Course, assignment: str, student: str, gb) -> GradeResult:
    """Turn one finished future into a GradeResult; merge its scores and files (single writer)."""
    if future.status == "finished":
        result, data, files = future.result()
        if data is not None:
            target = course.autograded(student, assignment)
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            write_files(target, files)
            merge_scores(gb, assignment, student, data)
    elif future.status == "error":
        result = GradeResult(student, "failed", failure_reason(future.exception()))
    else:
        result = GradeResult(student, "failed", f"the Dask task ended as {future.status!r}")
    future.release()
    return result
