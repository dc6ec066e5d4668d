"""The whole instructor loop on the tiny demo assignment, through the command line:
release -> collect -> grade (2 workers, one batch) -> feedback -> export, plus the
sandbox, tamper-resistance, leak-freedom and nbgrader-equivalence checks.

One module-scoped batch grades every sample (kernels are slow to start).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest

from autograder.config.course import REPO_ROOT
from autograder.commands.feedback import hidden_lines, page_text
from autograder.samples.submissions import (GENERIC_SAMPLES, TAMPER_CODE, Sample, build_samples, hostile_sample,
                                with_answer)
from tests.support.autograding import (FIXTURE_SOLUTIONS, NBGRADER_LIMITS, TEST_LIMITS, cli, gradebook_totals,
                                sequential_nbgrader, write_inbox)

pytestmark = pytest.mark.slow
ASSIGNMENT = "demo"
UNSTABLE_SOFTMAX = "def softmax(x):\n    e = np.exp(np.asarray(x, dtype=float))\n    return e / e.sum(axis=-1, keepdims=True)"


def demo_samples(course, probe_paths) -> list[Sample]:
    """The generic samples plus ones that need to know the demo's questions."""
    read_targets, write_targets = probe_paths
    tamper_first = with_answer("q1_answer", "def scale(x):\n    return np.asarray(x, dtype=float) * SCALE\n"
                               + TAMPER_CODE)
    return GENERIC_SAMPLES + [
        hostile_sample(read_targets, write_targets),
        # Passes the visible q2 test, overflows on the hidden one: loses 3 of 6.
        Sample("partially_correct", with_answer("q2_answer", UNSTABLE_SOFTMAX), lambda nb: 3.0),
        # (1, n) instead of (n,): the visible shape test fails, q1's 2 points are lost.
        Sample("wrong_shapes", with_answer("q1_answer", "def scale(x):\n    return np.asarray(x, float)[None] * SCALE"),
               lambda nb: 4.0),
        # Wrong q2/q3 answers that pass the visible tests, after monkeypatching every
        # comparison helper: the hidden tests must still fail both (2 of 6 left).
        Sample("tamper_wrong_answers",
               lambda nb: with_answer("q3_answer", "n_patches = 63")(
                   with_answer("q2_answer", UNSTABLE_SOFTMAX)(tamper_first(nb))),
               lambda nb: 2.0),
    ]


@pytest.fixture(scope="module")
def graded(released_course):
    """Release, collect and grade every demo sample once; yields what the tests inspect."""
    course, tmp = released_course(ASSIGNMENT, FIXTURE_SOLUTIONS, name="pipeline")
    probe_read = [str(course.gradebook), str(course.root / "submitted"), str(REPO_ROOT / "solutions"),
                  str(FIXTURE_SOLUTIONS), str(REPO_ROOT / "autograder" / "course"), str(REPO_ROOT / "tests")]
    probe_write = [str(REPO_ROOT / "HOSTILE_WAS_HERE"), str(course.root / "HOSTILE"),
                   str(REPO_ROOT / ".venv" / "HOSTILE"), "/tmp/autograder-hostile-probe"]
    built = build_samples(course.exercises, course.solutions, ASSIGNMENT,
                          demo_samples(course, (probe_read, probe_write)))
    expected = {name.replace("_", "-"): score for name, (_nb, score) in built.items()}
    write_inbox(tmp / "inbox", ASSIGNMENT, built)
    (tmp / "inbox" / "notes.txt").write_text("not a submission")
    (tmp / "inbox" / "broken_1_demo.ipynb").write_text("{ this is not json")
    collected = cli(course, "collect", ASSIGNMENT, str(tmp / "inbox"))
    sequential_dir = tmp / "sequential-course"
    shutil.copytree(course.root, tmp / "pristine-course")
    graded_run = cli(course, "grade", ASSIGNMENT, "--workers", "2", *TEST_LIMITS)
    return {"tmp": tmp, "course": course, "expected": expected, "collect": collected, "grade": graded_run,
            "pristine": tmp / "pristine-course", "sequential_dir": sequential_dir,
            "probe_write": probe_write}


def test_collect_reports_bad_files_and_keeps_going(graded):
    out = graded["collect"].stdout
    assert f"collected {len(graded['expected'])} submission(s)" in out
    assert "skipped notes.txt: not a notebook, zip or folder" in out
    assert re.search(r"skipped broken_1_demo.ipynb: unreadable: not a readable notebook", out)


def test_every_sample_gets_its_expected_score(graded):
    totals = gradebook_totals(graded["course"], ASSIGNMENT)
    assert totals == pytest.approx(graded["expected"]), {
        s: (totals.get(s), want) for s, want in graded["expected"].items() if totals.get(s) != want}


def test_parallel_scores_equal_sequential_nbgrader_autograde(graded):
    pristine = graded["course"].__class__(root=graded["pristine"], solutions=graded["course"].solutions,
                                          exercises=graded["course"].exercises)
    sequential = sequential_nbgrader(pristine, ASSIGNMENT, graded["sequential_dir"], NBGRADER_LIMITS)
    assert sequential == gradebook_totals(graded["course"], ASSIGNMENT)


def test_regrading_one_student_is_idempotent(graded):
    course = graded["course"]
    before = gradebook_totals(course, ASSIGNMENT)
    cli(course, "grade", ASSIGNMENT, "--student", "partially-correct", "--student", "os-exit", *TEST_LIMITS)
    assert gradebook_totals(course, ASSIGNMENT) == before


def test_hostile_submission_finds_nothing_and_writes_nowhere(graded):
    import nbformat

    nb = nbformat.read(graded["course"].autograded("hostile", ASSIGNMENT) / "demo.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "HOSTILE-READ []" in printed
    # Only the sandbox's private /tmp is writable; nothing reaches the host.
    assert "HOSTILE-WROTE ['/tmp/autograder-hostile-probe']" in printed
    assert "HOSTILE-NET blocked" in printed
    assert not any(__import__("os").path.exists(path) for path in graded["probe_write"])


def test_failure_reasons_are_recorded(graded):
    course = graded["course"]
    cli(course, "export", ASSIGNMENT)
    reasons = pd.read_csv(course.reports(ASSIGNMENT) / "failure_reasons.csv")
    text = " ".join(reasons["reason"])
    assert "not executed: the kernel died" in text  # os._exit
    # The stubborn loop: interrupted at its CPU limit, it ignored the interrupt and was stopped.
    assert "not executed: the cell used its 6 CPU-seconds and was interrupted (it ignored the interrupt)" in text
    assert "cell deleted or not gradable" in text
    assert "CheckFailed" in set(reasons["reason"])


def test_export_writes_scores_summary_and_histogram(graded):
    course = graded["course"]
    cli(course, "export", ASSIGNMENT)
    reports = course.reports(ASSIGNMENT)
    scores = pd.read_csv(reports / "scores.csv", index_col="student")
    assert scores.loc["correct", ["q1", "q2", "q3", "total"]].tolist() == [2.0, 3.0, 1.0, 6.0]
    assert scores.loc["partially-correct", "q2"] == 0.0
    assert "numpy.testing" in scores.loc["tamper-wrong-answers", "review_flags"]
    summary = pd.read_csv(reports / "summary.csv", index_col="question")
    assert summary.loc["total", "max_score"] == 6.0
    assert summary.loc["q1", "mean"] == pytest.approx(scores["q1"].mean())
    assert summary.loc["total", "median"] == pytest.approx(scores["total"].median())
    assert (reports / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_feedback_has_scores_and_no_hidden_test_source(graded):
    course = graded["course"]
    cli(course, "feedback", ASSIGNMENT)
    source = (course.root / "source" / ASSIGNMENT / "demo.ipynb").read_text()
    import json
    secrets = hidden_lines(["".join(c["source"]) for c in json.loads(source)["cells"]])
    assert any("hidden-q2-marker" in line for line in secrets)
    pages = sorted((course.root / "feedback").glob(f"*/{ASSIGNMENT}/demo.html"))
    assert len(pages) == len(graded["expected"])
    for page in pages:
        html = page.read_text()
        text = page_text(html)
        assert "BEGIN HIDDEN TESTS" not in html and "hidden-q" not in html, page
        assert not [line for line in secrets if line in text], page
        assert (page.parent / "mathjax" / "tex-mml-chtml.js").is_file()
        assert 'src="mathjax/tex-mml-chtml.js"' in html and "cdnjs" not in html
    correct = page_text((course.root / "feedback" / "correct" / ASSIGNMENT / "demo.html").read_text())
    assert "Score: 6.0 / 6.0" in correct


@pytest.mark.browser
def test_feedback_math_renders_offline_in_chromium(graded):
    course = graded["course"]
    cli(course, "feedback", ASSIGNMENT, "--student", "correct")
    page = course.root / "feedback" / "correct" / ASSIGNMENT / "demo.html"
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<mjx-container" in dom


def test_validate_reports_failing_visible_tests(graded):
    course = graded["course"]
    good = cli(course, "validate", str(course.submitted("correct", ASSIGNMENT) / "demo.ipynb"))
    assert "Success!" in good.stdout
    bad = cli(course, "validate", str(course.exercises / ASSIGNMENT / "demo.ipynb"), check=False)
    assert bad.returncode == 1
    assert "3 of 3 test cells fail: q1, q2, q3" in bad.stdout
