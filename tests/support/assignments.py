"""Run an assignment's instructor source in-process, cell by cell, as the grader would.

The source (solutions/<name>/<name>.md) is read with jupytext and its code cells run in order
in one fresh namespace per run (no kernel: fast). Answer cells can be swapped for other
implementations, or blanked as nbgrader's release blanks them, and each graded cell reports
whether it passed.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import jupytext


ROOT = Path(__file__).resolve().parents[2]
SOLUTION_REGION = re.compile(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION", re.S)


def source_of(assignment: str) -> Path:
    return ROOT / "solutions" / assignment / f"{assignment}.md"


def cells_of(assignment: str):
    return jupytext.read(source_of(assignment)).cells


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def release(source: str) -> str:
    """What nbgrader's generate step leaves in an answer cell."""
    return SOLUTION_REGION.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()", source)


def run_assignment(assignment: str, answers: dict[str, str] | None = None, released: bool = False,
                   namespace: dict | None = None) -> dict[str, bool]:
    """Run every code cell; return {grade_id: passed} for the graded cells.

    answers: grade_id → replacement source for that answer cell.
    released: blank every solution region, as the student version has it.
    namespace: the globals to run in (a fresh one by default); read it back to inspect results.
    """
    answers = answers or {}
    namespace = {"__name__": "__main__"} if namespace is None else namespace
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wrong answers overflow on purpose; stand-in data warns
        for cell in cells_of(assignment):
            if cell.cell_type != "code":
                continue
            info = meta(cell)
            source = answers.get(info.get("grade_id"), cell.source)
            if released and info.get("solution"):
                source = release(source)
            try:
                exec(compile(source, info.get("grade_id", "cell"), "exec"), namespace)
                passed = True
            except BaseException:  # noqa: BLE001 - a failing cell is a result, not an error here
                passed = False
            if info.get("grade"):
                results[info["grade_id"]] = passed
    return results


def points(assignment: str) -> dict[str, int]:
    """{grade_id: points} of every autograded (code) cell."""
    return {meta(c)["grade_id"]: meta(c)["points"] for c in cells_of(assignment)
            if meta(c).get("grade") and c.cell_type == "code"}


def manual_points(assignment: str) -> dict[str, int]:
    """{grade_id: points} of every answer graded by hand (a graded markdown cell)."""
    return {meta(c)["grade_id"]: meta(c)["points"] for c in cells_of(assignment)
            if meta(c).get("grade") and c.cell_type == "markdown"}


def hidden_regions(assignment: str) -> list[str]:
    """The hidden-test region of every graded cell that has one, checked for the grader's rules.

    Hidden tests run in the grader's process on values that crossed autograder/sandbox/channel.py; each
    imports `autograder.checks` and compares with `checks.*` only (exact, canonical comparisons
    with messages written for the student), never with a bare `assert`.
    """
    regions = []
    for cell in cells_of(assignment):
        if "### BEGIN HIDDEN TESTS" not in cell.source:
            continue
        region = cell.source.split("### BEGIN HIDDEN TESTS\n", 1)[1]
        assert "from autograder import checks" in region, cell.metadata
        assert "assert " not in region.replace("checks.assert_", ""), "compare with checks.* in hidden tests"
        regions.append(region)
    return regions
