"""Assignment 3 (q11-q15) through the real grader: release, collect, grade in parallel, feedback.

The question-by-question wrong answers are covered in-process by test_assignment3.py; here a
small batch checks what only the grader can: the reference gets 20, the untouched release 0
(without crashing the grader), a partly wrong notebook keeps the points it earned, a kernel
killed in the middle keeps the points before it, and no hidden test reaches the feedback.
"""

from __future__ import annotations

import copy

import pytest

from autograder.samples.submissions import Sample, build_samples, generic_samples, with_answer
from tests.support.autograding import TEST_LIMITS, cli, collect_and_grade, gradebook_totals

pytestmark = pytest.mark.slow
ASSIGNMENT = "assignment3"

# q13 with the bands of the rows reused for the columns: visible test passes, hidden fails (-3).
MASK_SQUARE_ONLY = '''def shifted_window_mask(height, width, window, shift):
    wrapped = torch.arange(height) >= height - shift if shift else torch.zeros(height, dtype=torch.bool)
    labels = (wrapped[:, None].int() * 2 + wrapped[None, :].int()).float()
    windows = labels.view(height // window, window, height // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    return windows[:, :, None] != windows[:, None, :]'''


def _untouched(nb):
    """The released notebook exactly as a student received it."""
    return copy.deepcopy(nb)


@pytest.fixture(scope="module")
def graded(released_course):
    course, tmp = released_course(ASSIGNMENT, name="assignment3")
    chosen = [s for s in generic_samples(answer=2) if s.name in {"correct", "os_exit"}]
    samples = chosen + [Sample("partially_correct", with_answer("q13_mask", MASK_SQUARE_ONLY), lambda nb: 17.0)]
    built = build_samples(course.exercises, course.solutions, ASSIGNMENT, samples)
    import nbformat

    released = nbformat.read(course.exercises / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    built["untouched"] = (_untouched(released), 0.0)
    return course, collect_and_grade(course, tmp, ASSIGNMENT, built, TEST_LIMITS)


def test_every_assignment3_sample_gets_its_expected_score(graded):
    course, expected = graded
    # os._exit in q13's answer cell: q11 and q12 (8 points) were earned before the kernel died.
    assert expected == {"correct": 20.0, "os-exit": 8.0, "partially-correct": 17.0, "untouched": 0.0}
    assert gradebook_totals(course, ASSIGNMENT) == pytest.approx(expected)


def test_assignment3_feedback_hides_the_hidden_tests(graded):
    course, _expected = graded
    cli(course, "feedback", ASSIGNMENT, "--student", "partially-correct")
    page = (course.root / "feedback" / "partially-correct" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "q13 visible test passed" in page
    for secret in ("BEGIN HIDDEN TESTS", "_mask_reference", "_loss_reference", "_windows_reference"):
        assert secret not in page, secret
