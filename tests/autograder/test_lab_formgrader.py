"""Written answers are graded by hand in Formgrader: the manual score reaches `export`."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.autograding import cli
from tests.support.lab import graded_written_course


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return graded_written_course(tmp_path_factory.mktemp("written"))


def test_a_written_answer_waits_for_manual_grading(course):
    cli(course, "export", "written")
    scores = pd.read_csv(course.reports("written") / "scores.csv", index_col="student")
    assert scores.loc["ada", "q1"] == 1 and scores.loc["ada", "q2"] == 0
    reasons = (course.reports("written") / "failure_reasons.csv").read_text()
    assert "q2,needs manual grading,1" in reasons
    summary = pd.read_csv(course.reports("written") / "summary.csv", index_col="question")
    assert summary.loc["q2", "max_score"] == 2 and summary.loc["total", "max_score"] == 3


def test_the_manual_score_reaches_export(course):
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "vitcourse") as gb:
        grade = gb.find_grade("q2_written", "written", "written", "ada")
        assert grade.needs_manual_grade and grade.max_score == 2
        grade.manual_score = 1.5   # what Formgrader's score box stores
        gb.db.commit()
    cli(course, "export", "written")
    scores = pd.read_csv(course.reports("written") / "scores.csv", index_col="student")
    assert scores.loc["ada", "q2"] == 1.5 and scores.loc["ada", "total"] == 2.5
    assert "needs manual grading" not in (course.reports("written") / "failure_reasons.csv").read_text()
