"""`grade --executor dask`: the same scores and CSVs as local grading, nothing lost when a
worker dies, a worker-killing submission marked failed, and no solution in the task payload.

The clusters are LocalClusters of 2 single-threaded worker processes (the test machine has
2 cores). A worker is killed two ways: by the test (SIGKILL to a busy worker's process,
mid-batch), and by a worker plugin that SIGKILLs its worker whenever the task of the
student "worker-killer" starts (a sandboxed kernel cannot signal its worker itself: it runs
in its own pid namespace, which is the point of the sandbox).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal

import nbformat
import pandas as pd
import pytest

from autograder.config.course import REPO_ROOT, Course
from autograder.runner.dask_executor import (ALLOWED_FAILURES, SCHEDULER_CONFIG, GradingJobPlugin, build_job,
                                      failure_reason, kernels_per_host, submission_task, write_files)
from autograder.commands.grade import grade, grade_overrides
from autograder.runner.progress import BatchProgress, format_eta
from autograder.commands.release import read_source
from autograder.samples.submissions import GENERIC_SAMPLES, build_samples, generic_samples, hostile_sample
from tests.support.autograding import TEST_LIMITS, cli, gradebook_totals, temp_course, write_inbox
from tests.support.assignment1_samples import SPECIFIC_SAMPLES

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore:.*not in session.*")
ASSIGNMENT = "assignment1"
KILLER = "worker-killer"
LIMITS = dict(cell_timeout=6, budget=40, memory_mb=2048)  # = TEST_LIMITS, for grade()


def solution_blocks(source_md) -> list[str]:
    """The text between BEGIN/END SOLUTION markers of an instructor notebook, block by block."""
    blocks = []
    for cell in read_source(source_md).cells:
        found = re.findall(r"### BEGIN SOLUTION\n(.*?)\n\s*### END SOLUTION", cell.source, re.S)
        blocks += [block for block in found if block.strip()]
    return blocks


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Assignment 1 released into a temporary course (with an extra data file next to the
    instructor notebook), and its sample submissions written as an LMS download."""
    tmp = tmp_path_factory.mktemp("dask")
    solutions = tmp / "solutions"
    shutil.copytree(REPO_ROOT / "solutions" / ASSIGNMENT, solutions / ASSIGNMENT)
    (solutions / ASSIGNMENT / "weights.txt").write_text("data file the students get\n")
    course = temp_course(tmp, solutions)
    cli(course, "release", ASSIGNMENT)
    built = build_samples(course.exercises, course.solutions, ASSIGNMENT, GENERIC_SAMPLES + SPECIFIC_SAMPLES)
    write_inbox(tmp / "inbox", ASSIGNMENT, built)
    expected = {name.replace("_", "-"): score for name, (_nb, score) in built.items()}
    return tmp, course, expected


def copy_course(course: Course, root) -> Course:
    shutil.copytree(course.root, root)
    return Course(root=root, solutions=course.solutions, exercises=course.exercises)


# ---- fast: payload, progress, arguments ---------------------------------------------

def test_task_payload_holds_release_files_and_hidden_tests_but_no_solution(released):
    tmp, course, _expected = released
    shipped = copy_course(course, tmp / "payload-course")
    cli(shipped, "collect", ASSIGNMENT, str(tmp / "inbox"))
    job = build_job(shipped, ASSIGNMENT, grade_overrides(**LIMITS), kernels_per_host=2)
    tasks = [submission_task(shipped, ASSIGNMENT, s) for s in shipped.students_submitted(ASSIGNMENT)]
    # Exactly what goes over the wire: the plugin (once per worker) and every task.
    payload = pickle.dumps((GradingJobPlugin(job), tasks)).decode("latin-1")

    assert job.release_files == {"weights.txt": b"data file the students get\n"}
    assert "BEGIN HIDDEN TESTS" in payload  # the gradebook snapshot: hidden tests are needed
    assert "### BEGIN SOLUTION" not in payload
    source = course.solutions / ASSIGNMENT / f"{ASSIGNMENT}.md"
    blocks = solution_blocks(source)
    assert len(blocks) == source.read_text().count("### BEGIN SOLUTION") >= 5
    # A student's answer is the solution in the "correct" sample, so check the job alone there.
    job_text = pickle.dumps(GradingJobPlugin(job)).decode("latin-1")
    assert [block for block in blocks if block in job_text] == []
    instructor_notebook = (shipped.root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert instructor_notebook not in payload
    assert str(course.solutions) not in payload and "solutions/" not in payload
    # collect records a submission time only where a source knows it (this inbox's files were all
    # written at once, so their times say nothing): the notebook, and a timestamp if one was kept.
    assert {t.student for t in tasks} == set(_expected) and all(
        set(t.files) - {"timestamp.txt"} == {f"{ASSIGNMENT}.ipynb"} for t in tasks)


def test_write_files_refuses_paths_outside_the_folder(tmp_path):
    write_files(tmp_path, {"a/b.txt": b"ok"})
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"ok"
    for name in ("../escape.txt", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError, match="not a relative path inside"):
            write_files(tmp_path, {name: b"x"})


def test_progress_counts_and_eta():
    now = [100.0]
    lines = []
    bar = BatchProgress(10, write=lines.append, tty=False, clock=lambda: now[0])
    assert bar.state() == "0 failed, 0 running, 10 queued, ETA ?"
    bar.set_running(2)
    now[0] = 130.0
    bar.finished("ann", "graded", 12.5)
    bar.set_running(2)
    now[0] = 160.0
    bar.finished("bob", "failed", 0.0, "it killed 3 grading workers")
    # 2 done in 60 s: 8 left -> 240 s.
    assert lines == ["[ 1/10] 0 failed, 1 running, 8 queued, ETA 4:30 | ann: graded in 12.5 s",
                     "[ 2/10] 1 failed, 1 running, 7 queued, ETA 4:00 | bob: failed in 0.0 s "
                     "(it killed 3 grading workers)"]
    assert format_eta(3725) == "1:02:05" and format_eta(None) == "?"
    with pytest.raises(ValueError, match="non-negative"):
        BatchProgress(-1, tty=False)


def test_kernels_per_host_adds_the_threads_of_one_machine():
    workers = {"tcp://a:1": {"host": "a", "nthreads": 1}, "tcp://a:2": {"host": "a", "nthreads": 2},
               "tcp://b:1": {"host": "b", "nthreads": 1}}
    assert kernels_per_host(workers) == 3
    assert kernels_per_host({}) == 1


def test_failure_reason_names_the_killed_workers():
    from distributed.scheduler import KilledWorker

    error = KilledWorker(("autograde-x", "bob"), last_worker=None, allowed_failures=ALLOWED_FAILURES)
    assert failure_reason(error).startswith(f"the submission killed {ALLOWED_FAILURES + 1} grading workers")
    assert failure_reason(OSError("disk full")) == "the grading task failed 3 times: OSError: disk full"


def test_bad_executor_arguments_are_refused(tmp_path):
    course = Course(root=tmp_path / "course")
    with pytest.raises(ValueError, match="unknown executor 'spark'"):
        grade(ASSIGNMENT, course, executor="spark")
    with pytest.raises(ValueError, match="use it with --executor dask"):
        grade(ASSIGNMENT, course, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        grade(ASSIGNMENT, course, executor="dask", workers=0)


# ---- the sample batch: dask equals local --------------------------------------------

@pytest.mark.slow  # two batches of 15 samples: about 2 minutes on 2 cores
def test_dask_grades_every_sample_like_local_grading_and_exports_the_same_csv(released):
    tmp, course, expected = released
    local = copy_course(course, tmp / "local-course")
    dask = copy_course(course, tmp / "dask-course")
    for target in (local, dask):
        cli(target, "collect", ASSIGNMENT, str(tmp / "inbox"))
    cli(local, "grade", ASSIGNMENT, "--workers", "2", *TEST_LIMITS)
    run = cli(dask, "grade", ASSIGNMENT, "--executor", "dask", "--workers", "2", *TEST_LIMITS)

    assert "dask: scheduler tcp://127.0.0.1:" in run.stdout and "2 workers" in run.stdout
    assert f"[{len(expected)}/{len(expected)}] 0 failed, 0 running, 0 queued" in run.stdout
    dask_totals = gradebook_totals(dask, ASSIGNMENT)
    assert dask_totals == gradebook_totals(local, ASSIGNMENT)
    assert dask_totals == pytest.approx(expected)
    for target in (local, dask):
        cli(target, "export", ASSIGNMENT)
    for name in ("scores.csv", "summary.csv", "failure_reasons.csv"):
        assert (dask.reports(ASSIGNMENT) / name).read_text() == (local.reports(ASSIGNMENT) / name).read_text(), name
    # Feedback reads the gradebook and autograded/, which the client wrote: it just works.
    cli(dask, "feedback", ASSIGNMENT, "--student", "tamper")
    page = (dask.root / "feedback" / "tamper" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in page and "_softmax_reference" not in page


# ---- dead workers -------------------------------------------------------------------

class KillWorkerOnStart(distributed.WorkerPlugin):
    """SIGKILLs its worker process whenever a task of `student` starts executing there."""

    def __init__(self, student: str):
        self.student = student

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and isinstance(key, tuple) and key[-1] == self.student:
            os.kill(os.getpid(), signal.SIGKILL)


def test_lost_workers_lose_nothing_a_worker_killer_fails_and_the_sandbox_holds(released):
    import dask

    tmp, course, _expected = released
    killed = copy_course(course, tmp / "killed-course")
    correct = [s for s in generic_samples() if s.name == "correct"]
    notebook, score = build_samples(killed.exercises, killed.solutions, ASSIGNMENT, correct)["correct"]
    students = ["s0", "s1", "s2", "s3", KILLER]
    for student in students:
        folder = killed.submitted(student, ASSIGNMENT)
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    probe_write = [str(killed.root / "HOSTILE"), str(REPO_ROOT / "HOSTILE_WAS_HERE"), "/tmp/autograder-hostile-probe"]

    # The production setting (2): an innocent task hit by the manual kill *and* by one of the
    # killer's deaths (it may be queued on that worker) must still be retried, not failed.
    with dask.config.set(SCHEDULER_CONFIG), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        # A correct submission that also looks for the gradebooks: the client's, and the
        # workers' private copies in their local directories.
        worker_dirs = sorted(client.run(lambda dask_worker: dask_worker.local_directory).values())
        probe_read = [str(killed.gradebook), str(killed.root / "submitted"), str(killed.solutions),
                      str(REPO_ROOT / "solutions"), *worker_dirs]
        hostile, hostile_score = build_samples(killed.exercises, killed.solutions, ASSIGNMENT,
                                               [hostile_sample(probe_read, probe_write)])["hostile"]
        killed.submitted("hostile", ASSIGNMENT).mkdir(parents=True)
        nbformat.write(hostile, killed.submitted("hostile", ASSIGNMENT) / f"{ASSIGNMENT}.ipynb")
        client.register_plugin(KillWorkerOnStart(KILLER), name="kill-worker-on-start")
        lines, victims = [], []

        def progress(line):
            lines.append(line)
            if victims or ": graded in" not in line:
                return
            # Kill a worker busy with an innocent submission, once, mid-batch.
            busy = {address: keys for address, keys in client.processing().items()
                    if keys and all(key[-1] != KILLER for key in keys)}
            if busy:
                address, keys = sorted(busy.items())[0]
                victims.append(keys[0][-1])
                os.kill(client.run(os.getpid, workers=[address])[address], signal.SIGKILL)

        results = grade(ASSIGNMENT, killed, executor="dask", scheduler=cluster.scheduler_address,
                        overrides=grade_overrides(**LIMITS), progress=progress, tty=False)

    innocent = students[:4] + ["hostile"]
    outcome = {r.student: (r.status, r.reason) for r in results}
    assert victims and victims[0] in innocent, lines
    assert any("left; its task goes to another worker" in line for line in lines), lines
    assert {s: outcome[s][0] for s in innocent} == dict.fromkeys(innocent, "graded")
    assert outcome[KILLER] == ("failed", f"the submission killed {ALLOWED_FAILURES + 1} grading workers "
                                         "(distributed.scheduler.allowed-failures); not retried")
    assert gradebook_totals(killed, ASSIGNMENT) == {**dict.fromkeys(students[:4], score), "hostile": hostile_score}
    cli(killed, "export", ASSIGNMENT)
    scores = pd.read_csv(killed.reports(ASSIGNMENT) / "scores.csv", index_col="student")
    assert sorted(scores.index) == sorted(students + ["hostile"])
    assert scores.loc[KILLER, "status"] == "failed" and scores.loc[KILLER, "total"] == 0
    assert (scores.loc[innocent, "total"] == score).all()
    # The sandbox on a Dask worker: nothing of the host readable, nothing written, no network.
    graded = nbformat.read(killed.autograded("hostile", ASSIGNMENT) / f"{ASSIGNMENT}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", []))
    assert "HOSTILE-READ []" in printed
    assert "HOSTILE-WROTE ['/tmp/autograder-hostile-probe']" in printed  # the sandbox's private /tmp
    assert "HOSTILE-NET blocked" in printed
    assert not any(os.path.exists(path) for path in probe_write)
