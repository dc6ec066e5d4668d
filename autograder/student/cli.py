"""The student side of the course tool.

  python -m autograder validate NOTEBOOK   run the notebook from a fresh kernel, top to bottom,
                                           with the course's limits; report changed locked cells
                                           and the visible tests that fail (hidden tests run
                                           only when the notebook is graded)
  python -m autograder lab                 JupyterLab on exercises/ with the Validate button
                                           (other options go to jupyter lab)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autograder.student.settings import EXERCISES

ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError, PermissionError)
VALIDATE_HELP = ("run a notebook with the course's limits and report failing visible tests "
                 "(hidden tests run only when graded)")
LAB_HELP = "JupyterLab on exercises/ with the Validate button; other options go to jupyter lab"


def cmd_validate(args) -> int:
    """`validate NOTEBOOK [--json]`: the report, or its JSON for the Lab's dialog; 1 when a test fails."""
    from autograder.student.validate import validate_notebook

    report = validate_notebook(Path(args.notebook))
    print(json.dumps(report.as_json()) if args.json else "\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_lab(args) -> int:
    """`lab [JUPYTER OPTIONS]`: the student Lab on the exercises (`--exercises` where the CLI has it)."""
    from autograder.student.lab import run_lab

    exercises = Path(getattr(args, "exercises", None) or EXERCISES).resolve()
    return run_lab("student", exercises, args.jupyter_args)


def add_validate(sub, help: str = VALIDATE_HELP) -> None:
    """The `validate` subcommand (the instructor's command line adds it too, with its own help)."""
    p = sub.add_parser("validate", help=help)
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON (the Lab's Validate button reads it)")
    p.set_defaults(run=cmd_validate)


def add_lab(sub, help: str = LAB_HELP) -> None:
    """The `lab` subcommand (other options go to jupyter lab)."""
    p = sub.add_parser("lab", help=help)
    p.set_defaults(run=cmd_lab)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_validate(sub)
    add_lab(sub)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None, passes_extra: tuple[str, ...],
                before=None) -> int:
    """Parse `argv`, run the command; extra options only for `passes_extra` (jupyter's), errors -> exit 2."""
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in passes_extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.jupyter_args = extra  # lab, formgrader: passed on to jupyter lab
    if before is not None:
        before()
    try:
        return args.run(args)
    except ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, ("lab",))
