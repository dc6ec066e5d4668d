"""Scale-out grading through Dask: 1 vs 2 workers, the scheduler's cost per task, and a
throughput model for N machines.

Releases an assignment into a temporary course and collects N copies of its correct
sample (the same preparation as bench/grading_speed.py), then:
  1. grades them with `grade(executor="dask")` on a LocalCluster of 1, then 2 single-threaded
     worker processes, `--repeats` batches each from the same starting gradebook (cluster
     start-up timed apart; the best batch counts: the machine may be shared), and checks every
     score is the full mark;
  2. measures the scheduler's overhead per task through the same kind of client: M no-op
     tasks submitted at once (pipelined cost per task) and one after another (round trip);
  3. prints the model  time ~ overhead*tasks + ceil(tasks / (machines*workers_per_machine))
     * per_task_time  with the measured numbers, for 1, 2, 10 and 50 machines.
The last line is `dask_speedup_2_workers=<seconds with 1 worker / seconds with 2>`.

    python bench/grading_scaleout.py [--assignment assignment1] [--submissions 12] [--repeats 2]
                                     [--noop-tasks 300] [--model-tasks 1000]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from grading_speed import gradebook_scores, prepare  # noqa: E402

from autograder.config.course import Course, quiet_gradebook_warnings  # noqa: E402
from autograder.runner.dask_executor import SCHEDULER_CONFIG  # noqa: E402
from autograder.commands.grade import grade  # noqa: E402

MACHINES = (1, 2, 10, 50)


def noop(x):
    return x


def scheduler_overhead(client, tasks: int) -> tuple[float, float]:
    """(pipelined seconds per no-op task, seconds per submit-and-wait round trip)."""
    client.gather(client.map(noop, range(20), pure=False))  # warm the connections
    start = time.perf_counter()
    client.gather(client.map(noop, range(tasks), pure=False))
    pipelined = (time.perf_counter() - start) / tasks
    rounds = max(10, tasks // 10)
    start = time.perf_counter()
    for index in range(rounds):
        client.submit(noop, index, pure=False).result()
    return pipelined, (time.perf_counter() - start) / rounds


def grade_on_cluster(pristine: Course, root: Path, assignment: str, workers: int, repeats: int,
                     noop_tasks: int = 0) -> dict:
    """Grade `repeats` fresh copies of `pristine` on one new LocalCluster of `workers` processes
    (the first batch pays the workers' first imports); then, when noop_tasks > 0, measure the
    scheduler overhead through the same client."""
    import dask
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with dask.config.set(SCHEDULER_CONFIG), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - start
        times, scores = [], []
        for repeat in range(repeats):
            course = Course(root=root / f"repeat-{repeat}", solutions=pristine.solutions,
                            exercises=pristine.exercises)
            shutil.copytree(pristine.root, course.root)
            start = time.perf_counter()
            results = grade(assignment, course, executor="dask", scheduler=cluster.scheduler_address,
                            progress=lambda line: None, tty=False)
            times.append(time.perf_counter() - start)
            failed = [r.student for r in results if r.status != "graded"]
            if failed:
                raise SystemExit(f"{workers} worker(s): not graded: {failed}")
            scores.append(gradebook_scores(course, assignment))
        overhead = scheduler_overhead(client, noop_tasks) if noop_tasks else None
    return {"workers": workers, "startup": startup, "first": times[0], "seconds": min(times),
            "overhead": overhead, "scores": scores}


def grade_locally(pristine: Course, root: Path, assignment: str, workers: int, repeats: int) -> float:
    """Best seconds of the local process pool over `repeats` fresh copies of `pristine`."""
    times = []
    for repeat in range(repeats):
        course = Course(root=root / f"repeat-{repeat}", solutions=pristine.solutions, exercises=pristine.exercises)
        shutil.copytree(pristine.root, course.root)
        start = time.perf_counter()
        results = grade(assignment, course, workers=workers, progress=lambda line: None, tty=False)
        times.append(time.perf_counter() - start)
        if any(r.status != "graded" for r in results):
            raise SystemExit(f"local pool: not graded: {[r.student for r in results if r.status != 'graded']}")
    return min(times)


def model_seconds(tasks: int, machines: int, per_machine: int, overhead: float, per_task: float) -> float:
    return overhead * tasks + math.ceil(tasks / (machines * per_machine)) * per_task


def main(args: argparse.Namespace) -> None:
    quiet_gradebook_warnings()
    with tempfile.TemporaryDirectory(prefix="grading-scaleout-") as tmp_name:
        tmp = Path(tmp_name)
        pristine = prepare(tmp, args.assignment, args.submissions)
        runs = [grade_on_cluster(pristine, tmp / f"course-{w}", args.assignment, w, args.repeats,
                                 args.noop_tasks if w == 1 else 0) for w in (1, 2)]
        local = grade_locally(pristine, tmp / "course-local", args.assignment, 2, args.repeats)

    n = args.submissions
    full = {score for run in runs for batch in run["scores"] for score in batch.values()}
    if any(len(batch) != n for run in runs for batch in run["scores"]) or len(full) != 1:
        raise SystemExit(f"scores differ or are missing: {[run['scores'] for run in runs]}")
    print(f"{args.assignment}: {n} copies of the correct submission, every one scored {full.pop():g}; "
          f"{os.cpu_count()} CPU cores")
    print(f"best of {args.repeats} batch(es) per cluster; 'first' is the first batch (workers still importing "
          "nbgrader); start-up is the LocalCluster's")
    print(f"{'workers':>7} {'start-up s':>10} {'first s':>8} {'seconds':>8} {'submissions/s':>13} {'speed-up':>8}")
    for run in runs:
        print(f"{run['workers']:>7} {run['startup']:>10.1f} {run['first']:>8.1f} {run['seconds']:>8.1f} "
              f"{n / run['seconds']:>13.3f} {runs[0]['seconds'] / run['seconds']:>8.2f}")

    print(f"  local process pool, 2 workers (for comparison): {local:.1f} s, {n / local:.3f} submissions/s")
    pipelined, round_trip = runs[0]["overhead"]
    print(f"scheduler overhead per task: {pipelined * 1e3:.2f} ms pipelined ({args.noop_tasks} no-op tasks "
          f"at once), {round_trip * 1e3:.2f} ms per submit-and-wait round trip")
    # Per-task time of one worker slot when a machine runs 2 workers (measured, overhead removed).
    per_machine = 2
    per_task = (runs[1]["seconds"] - pipelined * n) / math.ceil(n / per_machine)
    print(f"per-task time with {per_machine} workers on one machine: {per_task:.2f} s "
          f"(1 worker alone: {(runs[0]['seconds'] - pipelined * n) / n:.2f} s)")
    tasks = args.model_tasks
    print(f"model: time ~ overhead*tasks + ceil(tasks / (machines*workers_per_machine)) * per_task_time\n"
          f"       = {pipelined * 1e3:.2f} ms*tasks + ceil(tasks / (machines*{per_machine})) * {per_task:.2f} s; "
          f"for {tasks} submissions:")
    print(f"{'machines':>8} {'workers':>7} {'seconds':>9} {'submissions/s':>13} {'scheduler share':>15}")
    for machines in MACHINES:
        seconds = model_seconds(tasks, machines, per_machine, pipelined, per_task)
        print(f"{machines:>8} {machines * per_machine:>7} {seconds:>9.1f} {tasks / seconds:>13.2f} "
              f"{pipelined * tasks / seconds:>15.1%}")
    print(f"per_task_time is one worker slot's seconds per submission with {per_machine} workers on one "
          f"machine of {os.cpu_count()} cores; measure it on the real machines (this script, there) "
          "before trusting the model")
    print(f"ceiling set by the scheduler alone: {1 / pipelined:.0f} tasks/s")
    print(f"dask_speedup_2_workers={runs[0]['seconds'] / runs[1]['seconds']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="assignment1")
    parser.add_argument("--submissions", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2, help="batches per cluster; the best counts")
    parser.add_argument("--noop-tasks", type=int, default=300)
    parser.add_argument("--model-tasks", type=int, default=1000, help="batch size the model is printed for")
    main(parser.parse_args())
