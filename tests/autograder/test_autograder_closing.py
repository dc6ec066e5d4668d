"""Closing an assignment: similarity of answers, late work, LMS grade files.

The acceptance loop runs the command line on a sample cohort of the demo assignment:
release -> collect (with a due date) -> grade -> similarity -> export --format canvas.
The cohort plants one pair of disguised copies (ada, bob), two students who wrote the same
short answers independently (cyd, dee) and one late submission (late).
"""

from __future__ import annotations

import html
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from traitlets.config import Config

from autograder.commands import similarity as sim
from autograder.samples.cohort import demo_cohort
from autograder.commands.collect import collect
from autograder.config.course import REPO_ROOT, Course
from autograder.commands.late import (PercentPerDayLate, late_penalty, parse_due_date, set_due_date, submission_time)
from autograder.commands.release import read_source, release, stage_source
from autograder.samples.submissions import GENERIC_SAMPLES, build_samples, correct_submission
from tests.support.autograding import FIXTURE_SOLUTIONS, TEST_LIMITS, cli, temp_course

ASSIGNMENT = "demo"
DUE = "2026-11-20 17:00:00 UTC"
DUE_UTC = datetime(2026, 11, 20, 17, 0, 0, tzinfo=timezone.utc)
LATE_HOURS = 26          # two started days late: 2 x 10 % of the score
PLANTED = {("ada", "bob")}
CANVAS_COLUMN = "Demo (101)"   # the assignment's header in Canvas: 'Title (id)'



def _demo_correct(course: Course):
    student_nb = nbformat.read(course.exercises / ASSIGNMENT / "demo.ipynb", as_version=4)
    return correct_submission(student_nb, read_source(course.solutions / ASSIGNMENT / "demo.md"))


def _page_text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "\n", page.read_text()))


def _secret_lines(course: Course) -> list[str]:
    """Every line inside a solution or hidden-test region of the instructor's source."""
    lines, inside = [], False
    for line in (course.solutions / ASSIGNMENT / "demo.md").read_text().splitlines():
        if line.strip() in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
            inside = True
        elif line.strip() in ("### END SOLUTION", "### END HIDDEN TESTS"):
            inside = False
        elif inside and len(line.strip()) >= 8:
            lines.append(line.strip())
    assert len(lines) >= 8
    return lines


# ---- acceptance: the whole loop ---------------------------------------------------

@pytest.fixture(scope="module")
def closed(released_course):
    course, tmp = released_course(ASSIGNMENT, FIXTURE_SOLUTIONS, name="closing")
    inbox = tmp / "inbox"
    inbox.mkdir()
    on_time = DUE_UTC.timestamp() - 3600
    for number, (student, nb) in enumerate(sorted(demo_cohort(_demo_correct(course)).items())):
        path = inbox / f"{student}_{1000 + number}_{ASSIGNMENT}.ipynb"
        nbformat.write(nb, path)
        when = DUE_UTC.timestamp() + LATE_HOURS * 3600 if student == "late" else on_time
        os.utime(path, (when, when))
    runs = {"collect": cli(course, "collect", ASSIGNMENT, str(inbox), "--due-date", DUE)}
    runs["grade"] = cli(course, "grade", ASSIGNMENT, "--workers", "2", *TEST_LIMITS)
    runs["similarity"] = cli(course, "similarity", ASSIGNMENT)
    runs["export"] = cli(course, "export", ASSIGNMENT, "--format", "canvas", "--lms-column", CANVAS_COLUMN)
    return {"tmp": tmp, "course": course, "runs": runs}


@pytest.mark.slow
def test_similarity_flags_exactly_the_planted_pair(closed):
    course = closed["course"]
    pairs = pd.read_csv(course.reports(ASSIGNMENT) / "similarity" / "pairs.csv")
    flagged = {tuple(sorted(p)) for p in pairs[pairs["flagged"] == 1][["student_a", "student_b"]].values}
    assert flagged == PLANTED, pairs
    top = pairs.iloc[0]
    assert {top["student_a"], top["student_b"]} == {"ada", "bob"} and top["similarity"] >= 0.9
    # The same short answers, written independently: similar, but far too little to flag.
    lookalike = pairs[(pairs["student_a"].isin(["cyd", "dee"])) & (pairs["student_b"].isin(["cyd", "dee"]))]
    assert len(lookalike) == 1 and lookalike["shared_fingerprints"].iloc[0] < sim.MIN_SHARED
    pages = sorted((course.reports(ASSIGNMENT) / "similarity").glob("*.html"))
    assert [p.name for p in pages] == ["ada__bob.html"]
    text = _page_text(pages[0])
    assert "def _normalise(weights):" in text and "def scale_rows(w):" in text  # side by side
    assert "ada" in closed["runs"]["similarity"].stdout and "1 flagged" in closed["runs"]["similarity"].stdout


@pytest.mark.slow
def test_no_solution_or_hidden_test_line_in_any_similarity_page(closed, tmp_path):
    course = closed["course"]
    secrets = _secret_lines(course)
    # A student who pasted the reference solution *and* hidden-test lines into a copied answer:
    # the page for that pair must still show neither.
    leak = Course(root=tmp_path / "course", solutions=course.solutions, exercises=course.exercises)
    shutil.copytree(course.root, leak.root)
    pasted = "\n".join(secrets) + "\n"
    for student in ("ada", "bob"):
        path = leak.submitted(student, ASSIGNMENT) / "demo.ipynb"
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_answer")
        cell.source = pasted + cell.source
        nbformat.write(nb, path)
    sim.similarity(ASSIGNMENT, leak)
    pages = sorted((leak.reports(ASSIGNMENT) / "similarity").glob("*.html"))
    pages += sorted((course.reports(ASSIGNMENT) / "similarity").glob("*.html"))
    assert len(pages) == 2
    for page in pages:
        text = _page_text(page)
        assert not [line for line in secrets if line in text], page
        assert "hidden-q" not in text
    assert sim.REDACTED in _page_text(pages[0])


@pytest.mark.slow
def test_late_penalty_applied_as_configured(closed):
    course = closed["course"]
    assert "late late: 26.0 h after the due date" in closed["runs"]["collect"].stdout
    stamp = (course.submitted("late", ASSIGNMENT) / "timestamp.txt").read_text().strip()
    assert parse_due_date(stamp) == datetime(2026, 11, 21, 19, 0, 0)
    scores = pd.read_csv(course.reports(ASSIGNMENT) / "scores.csv", index_col="student")
    # Two started days at 10 % per day of 6 points (the course config's policy).
    assert scores.loc["late", "points"] == 6.0
    assert scores.loc["late", "late_penalty"] == pytest.approx(1.2)
    assert scores.loc["late", "total"] == pytest.approx(4.8)
    assert scores.loc["late", "hours_late"] == pytest.approx(26.0)
    assert (scores.drop(index="late")["late_penalty"] == 0).all()
    assert scores.loc["gus", "total"] == 6.0
    summary = pd.read_csv(course.reports(ASSIGNMENT) / "summary.csv", index_col="question")
    assert summary.loc["late_penalty", "students"] == 1
    assert summary.loc["late_penalty", "mean"] == pytest.approx(1.2 / len(scores))
    cli(course, "feedback", ASSIGNMENT, "--student", "late", "--student", "gus")
    late_page = (course.feedback("late", ASSIGNMENT) / "demo.html").read_text()
    assert "Late submission penalty (Score: -1.2)" in late_page and "Score: 4.8 / 6.0" in late_page
    assert "Late submission penalty" not in (course.feedback("gus", ASSIGNMENT) / "demo.html").read_text()


@pytest.mark.slow
def test_similar_pairs_show_in_review_flags(closed):
    scores = pd.read_csv(closed["course"].reports(ASSIGNMENT) / "scores.csv", index_col="student")
    flags = scores["review_flags"].fillna("")
    assert flags["ada"] == "similar: bob" and flags["bob"] == "similar: ada"
    assert not any("similar" in flags[s] for s in ("cyd", "dee", "fay", "gus", "late"))


@pytest.mark.slow
def test_canvas_file_reads_back_column_by_column(closed):
    course = closed["course"]
    path = course.reports(ASSIGNMENT) / "canvas_grades.csv"
    assert f"canvas: {path}" in closed["runs"]["export"].stdout
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", CANVAS_COLUMN]
    assert table.iloc[0].tolist() == ["Points Possible", "", "", "", "", "6"]
    body = table.iloc[1:].set_index("Student")
    assert sorted(body.index) == ["ada", "bob", "cyd", "dee", "fay", "gus", "late"]
    assert (body["SIS Login ID"] == body.index).all()
    assert (body["ID"] == "").all() and (body["SIS User ID"] == "").all() and (body["Section"] == "").all()
    grades = body[CANVAS_COLUMN].astype(float)
    assert grades["late"] == pytest.approx(4.8) and grades["gus"] == 6.0


@pytest.mark.slow
def test_moodle_and_csv_files_include_manual_scores(closed, tmp_path):
    from nbgrader.api import Gradebook

    course = Course(root=tmp_path / "course", solutions=closed["course"].solutions,
                    exercises=closed["course"].exercises)
    shutil.copytree(closed["course"].root, course.root)
    with Gradebook(course.db_url, "vitcourse") as gb:   # a grader lowers gus's q1 in formgrader
        grade = gb.find_grade("q1_tests", "demo", ASSIGNMENT, "gus")
        grade.manual_score = 0.5
        gb.db.commit()
    cli(course, "export", ASSIGNMENT, "--format", "moodle")
    moodle = pd.read_csv(course.reports(ASSIGNMENT) / "moodle_grades.csv", keep_default_na=False)
    assert list(moodle.columns) == ["ID number", ASSIGNMENT, "Feedback"]
    moodle = moodle.set_index("ID number")
    assert moodle.loc["gus", ASSIGNMENT] == pytest.approx(4.5)
    assert moodle.loc["late", ASSIGNMENT] == pytest.approx(4.8)
    assert moodle.loc["late", "Feedback"] == "late submission penalty: -1.2"
    assert moodle.loc["ada", "Feedback"] == ""
    cli(course, "export", ASSIGNMENT, "--format", "csv", "--id-column", "login")
    plain = pd.read_csv(course.reports(ASSIGNMENT) / "csv_grades.csv")
    assert list(plain.columns) == ["login", "grade", "max_score", "late_penalty", "percent"]
    plain = plain.set_index("login")
    assert plain.loc["gus"].tolist() == pytest.approx([4.5, 6.0, 0.0, 75.0])
    assert plain.loc["late"].tolist() == pytest.approx([4.8, 6.0, 1.2, 80.0])
    bad = cli(course, "export", ASSIGNMENT, "--format", "canvas", "--lms-column", CANVAS_COLUMN,
              "--id-column", "Email", check=False)
    assert bad.returncode == 2 and "Canvas matches students by" in bad.stderr


@pytest.mark.slow
def test_unreadable_submission_is_reported_and_skipped(closed, tmp_path):
    course = Course(root=tmp_path / "course", solutions=closed["course"].solutions,
                    exercises=closed["course"].exercises)
    shutil.copytree(closed["course"].root, course.root)
    (course.submitted("gus", ASSIGNMENT) / "demo.ipynb").write_text("{ not json")
    shutil.rmtree(course.submitted("fay", ASSIGNMENT))
    course.submitted("fay", ASSIGNMENT).mkdir(parents=True)
    done = cli(course, "similarity", ASSIGNMENT)
    assert "skipped gus: not a readable notebook" in done.stdout
    assert "skipped fay: no demo.ipynb" in done.stdout
    assert "compared 5 submission(s)" in done.stdout and "1 flagged" in done.stdout
    skipped = pd.read_csv(course.reports(ASSIGNMENT) / "similarity" / "skipped.csv")
    assert sorted(skipped["student"]) == ["fay", "gus"]


# ---- false positives on the sample batches ------------------------------------------

def _sample_course(tmp: Path, assignment: str) -> Course:
    if assignment == ASSIGNMENT:
        course = temp_course(tmp, FIXTURE_SOLUTIONS)
        release(ASSIGNMENT, course)
    else:
        course = Course(root=tmp / "course", solutions=REPO_ROOT / "solutions", exercises=REPO_ROOT / "exercises")
        stage_source(course, assignment)
    for name, (nb, _score) in build_samples(course.exercises, course.solutions, assignment, GENERIC_SAMPLES).items():
        folder = course.submitted(name.replace("_", "-"), assignment)
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
    return course


@pytest.mark.slow  # four releases' worth of samples: about half a minute
def test_false_positive_rate_on_the_sample_batches(tmp_path):
    """The generic samples of every assignment (all share the reference answers and differ
    by one disruption each): no pair may be flagged. Prints the measured rate."""
    flagged = total = 0
    for assignment in (ASSIGNMENT, "assignment1", "assignment2", "assignment3"):
        course = _sample_course(tmp_path / assignment, assignment)
        report = sim.similarity(assignment, course)
        n = report.students
        assert n == len(GENERIC_SAMPLES) and not report.skipped
        flagged += len(report.flagged)
        total += n * (n - 1) // 2
    print(f"similarity false positives on the sample batches: {flagged} of {total} pairs")
    assert flagged == 0


# ---- units ------------------------------------------------------------------------

def test_tokens_ignore_names_comments_and_layout():
    a = "def f(values):\n    total = values.sum(axis=-1)  # sum\n    return values / total\n"
    b = "# a comment\ndef g( v ):\n\n    s=v.sum( axis = -1 )\n    return v/s"
    assert [t for t, _ in sim.code_tokens(a)] == [t for t, _ in sim.code_tokens(b)]
    assert [t for t, _ in sim.code_tokens("x = len(y).shape")] == ["V", "=", "len", "(", "V", ")", ".", "shape"]
    # Code that does not tokenise (an unclosed bracket) still gives tokens.
    assert [t for t, _ in sim.code_tokens("x = foo(1,")] == ["V", "=", "V", "(", "1", ","]


def test_winnowing_finds_every_long_common_run():
    hashes = list(range(100, 0, -1))
    chosen = sim.winnow(hashes)
    for start in range(len(hashes) - sim.WINDOW + 1):
        assert chosen & set(hashes[start:start + sim.WINDOW])


def test_answer_cells_are_solution_cells_and_added_cells():
    cells = [{"cell_type": "code", "source": "locked", "metadata": {"nbgrader": {"locked": True, "grade_id": "t"}}},
             {"cell_type": "code", "source": "mine", "metadata": {"nbgrader": {"solution": True, "grade_id": "q1"}}},
             {"cell_type": "markdown", "source": "my notes", "metadata": {}},
             {"cell_type": "raw", "source": "raw", "metadata": {}}]
    assert sim.answer_cells(cells) == [("q1", "code", "mine"), ("added cell 1", "markdown", "my notes")]


def test_penalty_policy():
    assert late_penalty(6.0, 0, 10, 7) == 0.0
    assert late_penalty(6.0, 1, 10, 7) == pytest.approx(0.6)           # one second: one started day
    assert late_penalty(6.0, 86400, 10, 7) == pytest.approx(0.6)
    assert late_penalty(6.0, 86401, 10, 7) == pytest.approx(1.2)
    assert late_penalty(6.0, 7 * 86400, 10, 7) == 6.0                  # zero from 7 days on
    assert late_penalty(6.0, 3 * 86400, 50, 7) == 6.0                  # never more than the score
    plugin = PercentPerDayLate(config=Config({"PercentPerDayLate": {"percent_per_day": 25.0}}))
    assert plugin.late_submission_penalty("s", 8.0, 2 * 86400) == pytest.approx(4.0)


def test_course_config_selects_the_plugin():
    config = Course().config()
    assert config.AssignLatePenalties.plugin_class == "autograder.commands.late.PercentPerDayLate"
    assert "nbgrader.preprocessors.AssignLatePenalties" in config.Autograde.autograde_preprocessors
    assert config.PercentPerDayLate.percent_per_day == 10.0 and config.PercentPerDayLate.zero_after_days == 7.0


def test_submission_time_from_lms_name_or_file_time(tmp_path):
    board = tmp_path / "A1_jdoe_attempt_2026-12-01-18-05-33_a1.ipynb"
    board.write_text("{}")
    assert submission_time(board, "Europe/Zurich") == (datetime(2026, 12, 1, 17, 5, 33), "file name")
    plain = tmp_path / "jdoe_a1.ipynb"
    plain.write_text("{}")
    os.utime(plain, (1_700_000_000, 1_700_000_000))
    assert submission_time(plain) == (datetime(2023, 11, 14, 22, 13, 20), "file time")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        submission_time(board, "Mars/Base")
    with pytest.raises(ValueError, match="cannot read the due date"):
        parse_due_date("next friday-ish")


@pytest.fixture(scope="module")
def released_demo(tmp_path_factory):
    course = temp_course(tmp_path_factory.mktemp("released"), FIXTURE_SOLUTIONS)
    release(ASSIGNMENT, course)
    return course


def test_collect_writes_nbgrader_timestamp_and_ignores_uploaded_one(released_demo, tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    course = released_demo
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    nb = nbformat.read(course.exercises / ASSIGNMENT / "demo.ipynb", as_version=4)
    folder = inbox / "sly"
    folder.mkdir()
    nbformat.write(nb, folder / "demo.ipynb")
    (folder / "timestamp.txt").write_text("2000-01-01 00:00:00 UTC")   # forged by the student
    os.utime(folder / "demo.ipynb", (DUE_UTC.timestamp() + 60, DUE_UTC.timestamp() + 60))
    nbformat.write(nb, inbox / f"{ASSIGNMENT}_kim_attempt_2026-11-20-17-30-00_demo.ipynb")
    # The due date comes from the course config when --due-date is not given.
    config = Course.config
    monkeypatch.setattr(Course, "config", lambda self, overrides=None: config(self, Config(
        {"DueDates": {"due_dates": {ASSIGNMENT: "2026-11-20 18:00:00 Europe/Zurich"}}})))
    report = collect(ASSIGNMENT, inbox, course, id_pattern="blackboard")
    assert sorted(report.collected) == ["kim"]
    stamp = (course.submitted("kim", ASSIGNMENT) / "timestamp.txt").read_text().strip()
    assert stamp == "2026-11-20 17:30:00.000000 UTC"
    assert report.due == datetime(2026, 11, 20, 17, 0, 0)
    assert report.late() == {"kim": pytest.approx(0.5)}
    with Gradebook(course.db_url, "vitcourse") as gb:
        assert gb.find_assignment(ASSIGNMENT).duedate == datetime(2026, 11, 20, 17, 0, 0)
    collect(ASSIGNMENT, inbox, course, id_pattern=r"^(?P<student>sly)$")
    stamp = (course.submitted("sly", ASSIGNMENT) / "timestamp.txt").read_text().strip()
    assert stamp == "2026-11-20 17:01:00.000000 UTC"
    # --due-date wins over the config, and is kept in the gradebook.
    assert set_due_date(course, ASSIGNMENT, "2026-11-19 12:00:00 UTC") == datetime(2026, 11, 19, 12, 0, 0)
