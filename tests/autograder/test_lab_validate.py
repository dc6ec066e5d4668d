"""Validate (the CLI and, through the same command, the student Lab's button): the course's
limits, a one-line summary, the cell that really failed, and what is not checked."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import nbformat
import pytest

from autograder.config.course import REPO_ROOT
from autograder.commands.release import release
from autograder.samples.submissions import build_samples, cell_by_id
from autograder.student.validate import HIDDEN_NOTE, NOT_RUN_NOTE, auto_threads, course_config, validate_notebook
from tests.support.autograding import FIXTURE_SOLUTIONS, cli, temp_course


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The released demo assignment and a correct copy of it."""
    tmp = tmp_path_factory.mktemp("validate")
    course = temp_course(tmp, FIXTURE_SOLUTIONS)
    release("demo", course)
    untouched = course.exercises / "demo" / "demo.ipynb"
    correct_nb, _ = build_samples(course.exercises, course.solutions, "demo")["correct"]
    correct = untouched.with_name("correct.ipynb")
    nbformat.write(correct_nb, correct)
    return course, untouched, correct, correct_nb


def test_validate_summarises_failing_tests_and_says_hidden_tests_wait(demo):
    course, untouched, correct, _ = demo
    bad = cli(course, "validate", str(untouched), check=False)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0] == "3 of 3 test cells fail: q1, q2, q3"
    assert HIDDEN_NOTE in lines
    assert "at most 120 s per cell" in bad.stdout  # the course's limit, not nbgrader's 30 s
    assert "without encryption" not in bad.stderr and "WARNING" not in bad.stderr, bad.stderr  # the kernel's log
    good = cli(course, "validate", str(correct))
    assert good.stdout.startswith("Success! All 3 visible test cells pass.")
    assert HIDDEN_NOTE in good.stdout


def test_validate_names_the_cell_that_ran_out_of_time(demo, tmp_path):
    course, _, _, correct_nb = demo
    nb = nbformat.from_dict(json.loads(json.dumps(correct_nb)))
    answer = cell_by_id(nb, "q1_answer")
    answer.source = "import time\ntime.sleep(60)\n" + answer.source
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    config = course_config()
    config.Execute.timeout = 3
    report = validate_notebook(path, config)
    assert not report.ok
    assert report.failing == ["q1_tests"], report.failing
    assert report.summary() == "1 of 3 test cells fail: q1"
    assert "'q1_answer'" in report.cause and "3 s limit per cell" in report.cause, report.cause
    # The Lab dialog gets the same words first, then nbgrader's failed cells.
    value = report.lab_value()
    assert value["failed"][0]["source"].startswith("1 of 3 test cells fail: q1\nThe first error is in your answer cell 'q1_answer'")
    assert value["failed"][0]["error"] == HIDDEN_NOTE
    assert len(value["failed"]) == 2


def test_validate_says_how_to_set_a_retyped_cell_back(demo, tmp_path):
    """An answer cell turned into Markdown: the report names the cell, the way it went (Code into
    Markdown, not nbgrader's reversed "markdown -> code") and the one-step fix, in the CLI and the Lab."""
    course, _, _, correct_nb = demo
    nb = nbformat.from_dict(json.loads(json.dumps(correct_nb)))
    index = next(i for i, cell in enumerate(nb.cells) if cell.metadata.get("nbgrader", {}).get("grade_id") == "q1_answer")
    cell = nb.cells[index]
    nb.cells[index] = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata, id=cell.get("id"))
    path = tmp_path / "retyped.ipynb"
    nbformat.write(nb, path)
    done = cli(course, "validate", str(path), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Cell 'q1_answer' was turned from Code into Markdown: set it back to Code, save, and validate again."
    assert lines[1] == NOT_RUN_NOTE
    assert lines[2].startswith("  'q1_answer' (") and lines[2].endswith(
        "Code cell, now Markdown. To set it back: click it, press Esc, then Y (or choose Code in the toolbar's "
        "cell-type menu)."), lines[2]
    assert "markdown -> code" not in done.stdout and "released notebook" not in done.stdout
    value = json.loads(cli(course, "validate", "--json", str(path), check=False).stdout)["lab_value"]
    [head] = value["failed"]  # the Lab dialog: the summary and the fix, nothing labelled "failed"
    assert head["source"].splitlines() == [lines[0], lines[2]] and head["raw_error"] == NOT_RUN_NOTE


def test_validate_reports_an_edited_locked_cell_with_its_fix(demo, tmp_path):
    _, _, _, correct_nb = demo
    nb = nbformat.from_dict(json.loads(json.dumps(correct_nb)))
    cell_by_id(nb, "q2_tests").source = "assert True  # my edit"
    path = tmp_path / "edited.ipynb"
    nbformat.write(nb, path)
    report = validate_notebook(path)
    assert report.summary().startswith("1 locked cell(s) were edited: the grader puts back its own copy")
    assert "  'assert True  # my edit'" in report.lines()
    [head] = report.lab_value()["failed"]
    assert head["source"].startswith(report.summary()) and "'assert True  # my edit'" in head["source"]


@pytest.mark.parametrize("name, message", [
    ("missing.ipynb", r"missing\.ipynb does not exist: the notebooks in \S+ are broken\.ipynb, demo\.ipynb$"),
    ("nowhere/a.ipynb", r"a\.ipynb does not exist: give the path from the course folder, "
                        r"e\.g\. exercises/assignment1/assignment1\.ipynb$"),
    ("", r"is a folder: give the notebook file in it \(broken\.ipynb, demo\.ipynb\)$"),
    ("notes.txt", r"notes\.txt is not a notebook \(\.ipynb\): give the \.ipynb file you work in"),
    ("broken.ipynb", r"broken\.ipynb cannot be read as a notebook \(.*\): if you edited it outside JupyterLab"),
])
def test_validate_says_what_is_wrong_with_the_path(tmp_path, name, message):
    import re

    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "demo.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (folder / "notes.txt").write_text("my notes")
    (folder / "broken.ipynb").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "autograder", "validate", str(folder / name)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done
    assert re.search(message, done.stderr.strip()), done.stderr
    assert (folder / "broken.ipynb").read_text() == "{not json"  # nothing was touched


@pytest.mark.parametrize("cores, busy, threads", [(2, 0.1, 2), (2, 0.6, 1), (2, 10.0, 1), (8, 3.0, 5), (1, 0.0, 1)])
def test_auto_threads_uses_the_idle_cores(cores, busy, threads):
    assert auto_threads(cores, busy) == threads


def test_the_course_config_sets_the_validate_limits():
    config = course_config()
    assert config.Execute.timeout >= 120
    assert config.CourseValidator.threads == 0


@pytest.mark.slow
def test_correct_assignment2_validates_beside_two_cpu_hogs(tmp_path):
    """A correct assignment 2 passes Validate while two processes keep both cores busy."""
    course = temp_course(tmp_path, REPO_ROOT / "solutions")
    release("assignment2", course)
    nb, _ = build_samples(course.exercises, course.solutions, "assignment2")["correct"]
    path = course.exercises / "assignment2" / "correct.ipynb"
    nbformat.write(nb, path)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(2)
        done = cli(course, "validate", str(path), check=False)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success! All 5 visible test cells pass."), done.stdout


def test_busy_cores_sees_a_cpu_hog():
    from autograder.student.validate import busy_cores

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert busy_cores(0.5) >= 0.8
    finally:
        hog.kill()
        hog.wait()


def test_a_pass_slower_than_the_grader_allows_is_a_warning_in_the_lab():
    from autograder.student.validate import Report

    slow = Report(results={}, tests=["q1_tests"], seconds=700, cell_timeout=120, wall_clock=600)
    assert slow.ok and slow.summary() == "Success! All 1 visible test cells pass."
    assert slow.lab_value()["failed"][0]["source"].startswith(
        "Success! All 1 visible test cells pass.\nThe notebook took 700 s: the grader stops a notebook after 600 CPU-seconds")
    assert Report(results={}, tests=["q1_tests"], seconds=5, wall_clock=600).lab_value() == {}
