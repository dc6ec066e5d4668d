"""Assignment 1 (q1-q5) sample submissions, graded in one parallel batch, each score asserted.

Samples come from the released notebook + the instructor solution (autograder/samples/submissions.py),
so they follow the assignment when it changes. Assignment 2 (q6-q10) gets the same
treatment, with its own specific samples, once it is in solutions/.
"""

from __future__ import annotations

import pytest

from autograder.config.course import REPO_ROOT
from autograder.samples.submissions import GENERIC_SAMPLES, Sample, build_samples, with_answer
from autograder_support import TEST_LIMITS, cli, cpu_hog, gradebook_totals, temp_course, write_inbox

pytestmark = pytest.mark.slow
ASSIGNMENT = "assignment1"

HARD_CODED_SOFTMAX = """def softmax(x, axis=-1):
    # the numbers of the visible test, typed in
    return np.array([[0.04743, 0.95257], [0.11920, 0.88080]])"""
PATCHES_WRONG_SHAPE = """def extract_patches(images, patch_size):
    n = images.shape[0]
    return images.reshape(n, -1)  # one flat vector per image"""
PATCHES_WRONG_ORDER = """def extract_patches(images, patch_size):
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    p = patch_size
    return images.reshape(n, (h // p) * (w // p), p * p * c)  # rows of pixels, not squares"""

SPECIFIC_SAMPLES = [
    # Passes q1's visible test with typed-in numbers; q1's hidden tests catch it (-2), and
    # q2's attention, built on that softmax, fails its hidden tests too (-3).
    Sample("hard_coded", with_answer("q1_softmax", HARD_CODED_SOFTMAX), lambda nb: 15.0),
    # Wrong output shape: both q5 cells fail (-5).
    Sample("wrong_shapes", with_answer("q5_patches", PATCHES_WRONG_SHAPE), lambda nb: 15.0),
    # Right shape, pixels in the wrong place: visible q5 passes, hidden q5 fails (-4).
    Sample("partially_correct", with_answer("q5_patches", PATCHES_WRONG_ORDER), lambda nb: 16.0),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assignment1")
    course = temp_course(tmp, REPO_ROOT / "solutions")
    cli(course, "release", ASSIGNMENT)
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
