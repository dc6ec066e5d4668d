"""Assignment 1 (q1-q5) sample submissions, graded in one parallel batch, each score asserted.

Samples come from the released notebook + the instructor solution (autograder/samples/submissions.py),
so they follow the assignment when it changes; the specific samples are in
tests/support/assignment1_samples.py (the Dask tests grade them too).
"""

from __future__ import annotations

import pytest

from autograder.samples.submissions import GENERIC_SAMPLES, build_samples
from tests.support.assignment1_samples import SPECIFIC_SAMPLES
from tests.support.autograding import TEST_LIMITS, cli, gradebook_totals, write_inbox
from vitcourse.measure import cpu_hog

pytestmark = pytest.mark.slow
ASSIGNMENT = "assignment1"


@pytest.fixture(scope="module")
def graded(released_course):
    course, tmp = released_course(ASSIGNMENT, name="assignment1")
    built = build_samples(course.exercises, course.solutions, ASSIGNMENT, GENERIC_SAMPLES + SPECIFIC_SAMPLES)
    write_inbox(tmp / "inbox", ASSIGNMENT, built)
    cli(course, "collect", ASSIGNMENT, str(tmp / "inbox"))
    with cpu_hog():   # a busy machine: the same scores (limits count CPU-seconds)
        cli(course, "grade", ASSIGNMENT, "--workers", "2", *TEST_LIMITS)
    expected = {name.replace("_", "-"): score for name, (_nb, score) in built.items()}
    return course, expected


def test_every_assignment1_sample_gets_its_expected_score(graded):
    course, expected = graded
    assert expected["correct"] == 20.0
    totals = gradebook_totals(course, ASSIGNMENT)
    assert totals == pytest.approx(expected), {s: (totals.get(s), want) for s, want in expected.items()
                                               if totals.get(s) != want}


def test_assignment1_feedback_and_export(graded):
    course, expected = graded
    cli(course, "feedback", ASSIGNMENT, "--student", "correct", "--student", "tamper")
    page = (course.root / "feedback" / "tamper" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in page and "_softmax_reference" not in page
    cli(course, "export", ASSIGNMENT)
    scores = (course.reports(ASSIGNMENT) / "scores.csv").read_text().splitlines()
    assert scores[0].startswith("student,q1,q2,q3,q4,q5,points,late_penalty,total")
    assert len(scores) == 1 + len(expected)
