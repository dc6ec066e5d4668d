"""Command line: python -m autograder COMMAND ... (see autograder/README.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.config.course import Course, quiet_gradebook_warnings
from autograder.student.cli import add_lab, add_validate, run_command


def _course(args) -> Course:
    defaults = Course()
    return Course(root=Path(args.course or defaults.root).resolve(),
                  solutions=Path(args.solutions or defaults.solutions).resolve(),
                  exercises=Path(args.exercises or defaults.exercises).resolve())


def cmd_release(args) -> int:
    from autograder.commands.release import release

    course = _course(args)
    if args.all == bool(args.assignment):
        raise ValueError("give one ASSIGNMENT or --all")
    names = (sorted(p.name for p in course.solutions.iterdir() if (p / f"{p.name}.md").is_file())
             if args.all else [args.assignment])
    for name in names:
        for path in release(name, course):
            print(f"wrote {path}")
    return 0


def cmd_collect(args) -> int:
    from autograder.commands.collect import collect

    report = collect(args.assignment, Path(args.inbox), _course(args), id_pattern=args.id_pattern,
                     due_date=args.due_date, zone=args.timezone, lms=args.lms,
                     worksheet=Path(args.worksheet) if args.worksheet else None,
                     submission_times=Path(args.submission_times) if args.submission_times else None,
                     no_late_penalty=args.no_late_penalty)
    print("\n".join(report.lines()))
    return 0 if report.collected else 1


def cmd_grade(args) -> int:
    from autograder.commands.grade import grade, grade_overrides

    overrides = grade_overrides(cell_timeout=args.cell_timeout, budget=args.budget,
                                memory_mb=args.memory_mb, sandbox="none" if args.no_sandbox else None)
    results = grade(args.assignment, _course(args), workers=args.workers, students=args.student or None,
                    overrides=overrides, executor=args.executor, scheduler=args.scheduler)
    failed = [r for r in results if r.status != "graded"]
    flagged = [r for r in results if r.review_flags]
    print(f"graded {len(results) - len(failed)} of {len(results)} submission(s)")
    for result in flagged:
        print(f"review {result.student}: {'; '.join(result.review_flags)}")
    return 0


def cmd_feedback(args) -> int:
    from autograder.commands.feedback import feedback

    problems: list[str] = []
    for page in feedback(args.assignment, _course(args), students=args.student or None, problems=problems):
        print(f"wrote {page}")
    if problems:
        print(f"{len(problems)} student(s) got no page or an incomplete one:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    return 0


def cmd_similarity(args) -> int:
    from autograder.commands.similarity import similarity

    report = similarity(args.assignment, _course(args))
    print("\n".join(report.lines()))
    return 0


def cmd_export(args) -> int:
    from autograder.commands.export import export

    written = export(args.assignment, _course(args), fmt=args.format, id_column=args.id_column,
                     column=args.lms_column, gradebook=Path(args.gradebook) if args.gradebook else None,
                     worksheet=Path(args.worksheet) if args.worksheet else None)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def cmd_formgrader(args) -> int:
    from autograder.student.lab import run_lab

    course = _course(args)
    course.ensure()   # Formgrader reads the course folder's nbgrader_config.py
    return run_lab("instructor", course.root, args.jupyter_args)


def cmd_package(args) -> int:
    from autograder.commands.package import DEFAULT_OUT, build_package

    out = Path(args.out) if args.out else DEFAULT_OUT
    written = build_package(out, _course(args), make_zip=args.zip)
    print(f"wrote the student package: {out.resolve()} ({sum(p.suffix != '.zip' for p in written)} files)")
    if args.zip:
        print(f"wrote {written[-1]}")
    return 0


def cmd_doctor(args) -> int:
    from autograder.commands.doctor import doctor

    return 0 if doctor(install_missing=args.install) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    parser.add_argument("--course", help="nbgrader course folder (default: autograder/course)")
    parser.add_argument("--solutions", help="instructor sources (default: solutions/)")
    parser.add_argument("--exercises", help="student notebooks (default: exercises/)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="solutions/A/A.md -> exercises/A/A.ipynb (+ gradebook)")
    p.add_argument("assignment", nargs="?")
    p.add_argument("--all", action="store_true", help="every assignment in solutions/")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("collect", help="import submissions (notebooks, zips, folders, LMS downloads)")
    p.add_argument("assignment")
    p.add_argument("inbox", help="folder holding the submissions, or an LMS bulk download (zip or folder)")
    p.add_argument("--lms", choices=["auto", "canvas", "moodle", "none"], default="auto",
                   help="the LMS the download comes from (default: recognised from its names; 'none': a plain folder)")
    p.add_argument("--id-pattern", default="default",
                   help="plain folders: 'default', 'moodle', 'blackboard', or a regex with a (?P<student>...) "
                        "group, matched to file names")
    p.add_argument("--worksheet", help="Moodle: the assignment's grading worksheet (CSV): submission times from "
                                       "'Last modified (submission)', and each participant's user fields for export")
    p.add_argument("--submission-times", help="CSV with columns student,submitted_at: the submission times "
                                              "(read in --timezone unless they carry an offset)")
    p.add_argument("--no-late-penalty", action="store_true",
                   help="record no submission times (the LMS applies its own late policy)")
    p.add_argument("--due-date", help="due date stored in the gradebook, e.g. '2026-12-14 23:59:00 Europe/Zurich' "
                                      "(default: c.DueDates.due_dates in autograder/config/nbgrader_config.py)")
    p.add_argument("--timezone", default="UTC",
                   help="time zone of dates in file names (Blackboard), in the Moodle worksheet and in "
                        "--submission-times (default: UTC)")
    p.set_defaults(run=cmd_collect)

    p = sub.add_parser("grade", help="autograde collected submissions in parallel, sandboxed")
    p.add_argument("assignment")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel workers (default: CPU cores); with --executor dask and no --scheduler, "
                        "the processes of the LocalCluster")
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="'local': a process pool on this machine (default); 'dask': one task per submission "
                        "on a dask.distributed cluster (see autograder/README.md)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address (tcp://host:8786); without it --executor dask starts a LocalCluster")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--cell-timeout", type=int, help="CPU-seconds per cell (default in nbgrader_config.py)")
    p.add_argument("--budget", type=int, help="CPU-seconds per notebook (default in nbgrader_config.py)")
    p.add_argument("--memory-mb", type=int, help="address-space limit per kernel (MiB)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="fallback without bubblewrap: resource limits only, NO file/network isolation")
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("feedback", help="per-student HTML feedback without hidden tests")
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.set_defaults(run=cmd_feedback)

    p = sub.add_parser("similarity", help="pairs of submissions sharing answer passages (reports/A/similarity/)")
    p.add_argument("assignment")
    p.set_defaults(run=cmd_similarity)

    p = sub.add_parser("export", help="scores.csv, summary.csv, failure_reasons.csv, histogram.png "
                                      "(+ an LMS grade file with --format)")
    p.add_argument("assignment")
    p.add_argument("--format", choices=["canvas", "moodle", "csv"],
                   help="also write <format>_grades.csv, the file that LMS's gradebook imports")
    p.add_argument("--id-column", help="column holding the student id (canvas: 'ID' for ids collected from a Canvas "
                                       "download, else 'SIS Login ID' (default) or 'SIS User ID'; moodle: 'Email "
                                       "address', 'ID number' or 'Username' for a Moodle download, else any header)")
    p.add_argument("--lms-column", help="canvas: the assignment's column header in Canvas, 'Title (id)' as its "
                                        "Gradebook export writes it")
    p.add_argument("--gradebook", help="canvas: the Gradebook export (CSV) to fill: the assignment's column is "
                                       "written, students matched by Canvas user id")
    p.add_argument("--worksheet", help="moodle: the grading worksheet (CSV) to fill for 'Upload grading worksheet'")
    p.set_defaults(run=cmd_export)

    add_validate(sub, help="student side: run a notebook with the course's limits and "
                           "report failing visible tests (hidden tests run only when graded)")

    p = sub.add_parser("package", help="the student package: exercises, library, README; no solutions")
    p.add_argument("--out", help="folder to write (replaced; default: _build/student-package)")
    p.add_argument("--zip", action="store_true", help="also write OUT.zip")
    p.set_defaults(run=cmd_package)

    add_lab(sub, help="JupyterLab for students on the exercises (Validate; no exchange panels); "
                      "other options go to jupyter lab")

    p = sub.add_parser("formgrader", help="nbgrader's Formgrader on the course folder (manual grading); "
                                          "other options go to jupyter lab")
    p.set_defaults(run=cmd_formgrader)

    p = sub.add_parser("doctor", help="check the OS packages the sandbox needs")
    p.add_argument("--install", action="store_true", help="apt-get install what is missing (root)")
    p.set_defaults(run=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, ("lab", "formgrader"), before=quiet_gradebook_warnings)


if __name__ == "__main__":
    sys.exit(main())
