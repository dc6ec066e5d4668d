"""Every test cell sees the submission's names as they are at that point of the notebook.

A small assignment, graded by the real grader: one name is read by three test cells and is
rebound between them in each way a notebook does it — a reassigned value, a wrapper around the
previous object, a new object, and finally a deleted name. The reference answers score full
marks only if each test cell fetches the names afresh; a submission that keeps the first
bindings scores only the first cell, and one whose later cells undo the rebinding loses exactly
the cells that see the undone names.
"""

from __future__ import annotations

import copy

import nbformat
import pytest

from autograder.commands.release import read_source
from autograder.samples.submissions import cell_by_id, correct_submission
from tests.support.autograding import TEST_LIMITS, cli, collect_and_grade, gradebook_totals, temp_course

pytestmark = pytest.mark.slow
ASSIGNMENT = "rebind"

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def _cell(grade_id: str, source: str, *, answer: bool = False, points: int = 0) -> str:
    if answer:
        meta = "  grade: false\n  locked: false\n  solution: true\n"
    elif points:
        meta = f"  grade: true\n  locked: true\n  points: {points}\n  solution: false\n"
    else:
        meta = "  grade: false\n  locked: true\n  solution: false\n"
    return (f"```{{code-cell}} ipython3\n---\nnbgrader:\n{meta}  grade_id: {grade_id}\n"
            f"  schema_version: 3\n  task: false\n---\n{source}\n```\n")


def _test(body: str) -> str:
    return f"### BEGIN HIDDEN TESTS\nfrom autograder import checks\n{body}\n### END HIDDEN TESTS"


CELLS = [
    _cell("setup", "import numpy as np"),
    # A value and a function, first bound here.
    _cell("a1", "### BEGIN SOLUTION\nvalue = 1.0\n\n\ndef double(x):\n    return 2 * x\n### END SOLUTION",
          answer=True),
    _cell("t1", _test("checks.assert_equal(value, 1.0, what='value')\n"
                      "checks.assert_equal(double(3), 6, what='double(3)')"), points=1),
    # A reassigned value, and a wrapper around the previous function.
    _cell("a2", "### BEGIN SOLUTION\nvalue = value + 1\n_inner = double\n\n\ndef double(x):\n"
                "    return _inner(x) + 1\n### END SOLUTION", answer=True),
    _cell("t2", _test("checks.assert_equal(value, 2.0, what='value after a2')\n"
                      "checks.assert_equal(double(3), 7, what='double(3) after a2')"), points=2),
    # A new object under the old name, and a name deleted.
    _cell("a3", "### BEGIN SOLUTION\ndouble = np.negative\ndel value\n### END SOLUTION", answer=True),
    _cell("t3", _test("checks.assert_equal(double(3), -3, what='double(3) after a3')\n"
                      "try:\n    value\n    _gone = False\nexcept NameError:\n    _gone = True\n"
                      "checks.assert_true(_gone, 'value was deleted in a3: a test must not see it')"),
          points=4),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rebind")
    solutions = tmp / "solutions"
    (solutions / ASSIGNMENT).mkdir(parents=True)
    (solutions / ASSIGNMENT / f"{ASSIGNMENT}.md").write_text(HEADER + "\n" + "\n".join(CELLS))
    course = temp_course(tmp, solutions)
    cli(course, "release", ASSIGNMENT)
    released = nbformat.read(course.exercises / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    correct = correct_submission(released, read_source(solutions / ASSIGNMENT / f"{ASSIGNMENT}.md"))

    def answering(**answers):
        nb = copy.deepcopy(correct)
        for grade_id, source in answers.items():
            cell_by_id(nb, grade_id).source = source
        return nb

    planted = copy.deepcopy(correct)   # a review flag only the grader may write, planted by hand
    planted.metadata["autograder"] = {"review_flags": ["planted by the submission"]}
    samples = {
        "correct": (planted, 7.0),
        # Never rebinds: t2 and t3 see the first value and function, and fail (only t1 scores).
        "keeps_first": (answering(a2="pass", a3="pass"), 1.0),
        # Rebinds in a2, then puts the first objects back in a3: t3 sees them and fails.
        "undoes_in_a3": (answering(a3="double = _inner\nvalue = 1.0"), 3.0),
    }
    return course, collect_and_grade(course, tmp, ASSIGNMENT, samples, TEST_LIMITS)


def test_each_test_cell_grades_the_names_as_they_are_then(graded):
    course, expected = graded
    assert expected["correct"] == 7.0
    assert gradebook_totals(course, ASSIGNMENT) == pytest.approx(expected)


def test_an_object_put_back_is_the_one_graded(graded):
    course, _ = graded
    nb = nbformat.read(course.root / "autograded" / "undoes-in-a3" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                       as_version=4)
    verdict = cell_by_id(nb, "t3").outputs
    assert len(verdict) == 1 and verdict[0].output_type == "error"
    assert "double(3) after a3" in verdict[0].evalue


def test_only_the_grader_writes_review_flags(graded):
    from autograder.commands.grade import read_grading_log

    course, _ = graded
    assert read_grading_log(course, ASSIGNMENT)["correct"]["review_flags"] == []
