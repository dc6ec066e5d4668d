"""How long `python -m autograder similarity` takes on a large cohort.

Builds N synthetic submissions of an assignment (the reference answers plus 6-12 lines of
random code per answer cell, P pairs of them disguised copies: renamed, reordered,
commented), writes them as collected submissions of a temporary course, runs
`similarity` (one process) and prints the time, then checks that exactly the planted pairs
are flagged. Last line: `similarity_seconds=<s>`.

    python bench/similarity_speed.py [--assignment assignment1] [--submissions 300] [--pairs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from autograder.samples.cohort import synthetic_cohort  # noqa: E402
from autograder.config.course import Course  # noqa: E402
from autograder.commands.release import read_source, stage_source  # noqa: E402
from autograder.samples.submissions import correct_submission  # noqa: E402
from autograder.commands.similarity import similarity  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="assignment1")
    parser.add_argument("--submissions", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="similarity-bench-") as tmp:
        course = Course(root=Path(tmp) / "course", solutions=REPO_ROOT / "solutions",
                        exercises=REPO_ROOT / "exercises")
        stage_source(course, args.assignment)
        released = nbformat.read(course.exercises / args.assignment / f"{args.assignment}.ipynb", as_version=4)
        correct = correct_submission(released, read_source(course.solutions / args.assignment
                                                           / f"{args.assignment}.md"))
        cohort, planted = synthetic_cohort(correct, args.submissions, args.pairs)
        for student, nb in cohort.items():
            folder = course.submitted(student, args.assignment)
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{args.assignment}.ipynb")
        start = time.perf_counter()
        report = similarity(args.assignment, course)
        seconds = time.perf_counter() - start
        flagged = {(p.a, p.b) for p in report.flagged}
        print(f"{args.assignment}: {report.students} submissions, {len(report.pairs)} pairs sharing passages, "
              f"{len(flagged)} flagged (planted {len(planted)}); {os.cpu_count()} CPU cores")
        print(f"planted pairs flagged: {len(flagged & planted)} of {len(planted)}; "
              f"other pairs flagged: {len(flagged - planted)}")
        print(f"similarity_seconds={seconds:.2f}")
        return 0 if flagged == planted else 1


if __name__ == "__main__":
    sys.exit(main())
