"""Parallel `python -m autograder grade` vs sequential `nbgrader autograde`, same files.

Releases an assignment into a temporary course, collects N copies of its correct sample
submission, then grades them twice from the same starting gradebook:
  1. sequential: `nbgrader autograde ASSIGNMENT` (one process, one submission after another,
     the course config: same sandbox and limits);
  2. parallel:   `python -m autograder grade ASSIGNMENT --workers W`.
Prints both wall times, checks the scores are identical, and ends with the line
`sequential_over_parallel=<ratio>` (issue 6 asks for >= 1.8 with 20 submissions, 2 workers).

    python bench/grading_speed.py [--assignment assignment1] [--submissions 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from autograder.config.course import Course  # noqa: E402
from autograder.samples.submissions import build_samples, generic_samples  # noqa: E402


def gradebook_scores(course: Course, assignment: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "vitcourse") as gb:
        return {s.student_id: float(s.score) for s in gb.assignment_submissions(assignment)}


def prepare(tmp: Path, assignment: str, submissions: int) -> Course:
    """A released course with `submissions` collected copies of the correct sample."""
    course = Course(root=tmp / "course", solutions=REPO_ROOT / "solutions", exercises=tmp / "exercises")
    run([sys.executable, "-m", "autograder", "--course", str(course.root), "--solutions", str(course.solutions),
         "--exercises", str(course.exercises), "release", assignment])
    correct = [s for s in generic_samples() if s.name == "correct"]
    notebook, _score = build_samples(course.exercises, course.solutions, assignment, correct)["correct"]
    for index in range(submissions):
        folder = course.submitted(f"s{index:03d}", assignment)
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")
    return course


def run(command: list[str], cwd: Path | None = None) -> float:
    """Run `command`; return its wall time in seconds (raise with its output if it fails)."""
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{scripts}:{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="assignment1")
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="grading-speed-") as tmp_name:
        tmp = Path(tmp_name)
        parallel = prepare(tmp, args.assignment, args.submissions)
        sequential = Course(root=tmp / "sequential-course", solutions=parallel.solutions,
                            exercises=parallel.exercises)
        shutil.copytree(parallel.root, sequential.root)

        nbgrader = str(Path(sys.executable).parent / "nbgrader")
        seq_s = run([nbgrader, "autograde", args.assignment, "--force"], cwd=sequential.root)
        print(f"sequential nbgrader autograde: {args.submissions} submissions in {seq_s:.1f} s", flush=True)
        par_s = run([sys.executable, "-m", "autograder", "--course", str(parallel.root), "--solutions",
                     str(parallel.solutions), "--exercises", str(parallel.exercises),
                     "grade", args.assignment, "--workers", str(args.workers)])
        print(f"parallel autograder grade --workers {args.workers}: {args.submissions} submissions in "
              f"{par_s:.1f} s", flush=True)

        seq_scores, par_scores = gradebook_scores(sequential, args.assignment), gradebook_scores(parallel,
                                                                                                 args.assignment)
        same = seq_scores == par_scores and len(par_scores) == args.submissions
        print(f"identical scores: {same} (totals {sorted(set(par_scores.values()))})")
        if not same:
            raise SystemExit(f"scores differ: sequential {seq_scores}, parallel {par_scores}")
        print(f"cores: {os.cpu_count()}")
        print(f"sequential_over_parallel={seq_s / par_s:.2f}")


if __name__ == "__main__":
    main()
