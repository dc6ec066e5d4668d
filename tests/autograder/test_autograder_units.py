"""Fast autograder tests: no kernels, no nbgrader runs (the pipeline tests do those)."""

from __future__ import annotations

import builtins
import os
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder import checks
from autograder.commands.collect import collect, student_id
from autograder.config.course import Course, check_id
from autograder.commands.export import question_of
from autograder.commands.feedback import (REDACTED_OUTPUT, RedactHiddenTests, hidden_lines,
                                 leaked_lines)
from autograder.commands.grade import review_flags
from autograder.commands.release import leaked_markers, read_source
from autograder.samples.submissions import answer_ids, grade_points, points_before
from autograder.sandbox.launch import ResourceLimits, bwrap_argv, kernel_env
from tests.support import ROOT
from tests.support.autograding import FIXTURE_SOLUTIONS

DEMO_SOURCE = FIXTURE_SOLUTIONS / "demo" / "demo.md"


# ---- checks: hidden-test helpers ---------------------------------------------------

def test_assert_close_accepts_close_values_and_reports_the_difference():
    checks.assert_close(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-9])
    with pytest.raises(checks.CheckFailed, match=r"softmax: not close .*largest difference 0.5"):
        checks.assert_close([1.0, 2.5], [1.0, 2.0], what="softmax")
    with pytest.raises(checks.CheckFailed, match=r"expected shape \(2,\), got \(1, 2\)"):
        checks.assert_close([[1.0, 2.0]], [1.0, 2.0])


def test_assert_equal_and_shape_and_true():
    checks.assert_equal(64, 64)
    checks.assert_equal("cls", "cls")
    with pytest.raises(checks.CheckFailed, match="n_patches: expected 64, got 63"):
        checks.assert_equal(63, 64, what="n_patches")
    with pytest.raises(checks.CheckFailed, match=r"expected shape \(3, 4\), got \(4, 3\)"):
        checks.assert_shape(np.zeros((4, 3)), (3, 4))
    with pytest.raises(checks.CheckFailed, match="must be True"):
        checks.assert_true(1, "must be True")  # truthy is not enough


def test_checks_survive_monkeypatched_numpy_builtins_and_assertion_error(monkeypatch):
    fake_error = type("AssertionError", (Exception,), {})
    monkeypatch.setattr(np.testing, "assert_allclose", lambda *a, **k: None)
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "asarray", lambda *a, **k: np.zeros(2))
    monkeypatch.setattr(builtins, "AssertionError", fake_error)
    monkeypatch.setattr(builtins, "abs", lambda value: 0)
    with pytest.raises(checks.CheckFailed) as caught:
        checks.assert_close([1.0, 2.0], [1.0, 3.0])
    assert isinstance(caught.value, checks._ORIGINAL_BUILTINS["AssertionError"])
    assert not isinstance(caught.value, fake_error)
    checks.restore()
    assert np.testing.assert_allclose is checks._NUMPY_ORIGINALS[(np.testing, "assert_allclose")]
    assert not np.allclose([1.0], [2.0])
    assert builtins.AssertionError is checks._ORIGINAL_BUILTINS["AssertionError"]
    assert builtins.abs(-2) == 2


def _fresh_checks():
    """A private copy of autograder.checks, imported now (after torch), as the kernel boot does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fresh_checks", checks.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checks_survive_monkeypatched_torch(monkeypatch):
    import torch

    fresh = _fresh_checks()
    original = torch.allclose
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch.Tensor, "numpy", lambda self: np.ones(3))
    with pytest.raises(fresh.CheckFailed, match="not close"):
        fresh.assert_close(torch.ones(3), torch.zeros(3))
    fresh.restore()
    assert torch.allclose is original


# ---- release ------------------------------------------------------------------------

def test_read_source_gives_deterministic_ids_and_drops_jupytext_metadata():
    first, second = read_source(DEMO_SOURCE), read_source(DEMO_SOURCE)
    assert [c["id"] for c in first.cells] == [c["id"] for c in second.cells]
    assert first.cells[1]["id"] == "setup" and "jupytext" not in first.metadata


def test_leaked_markers_finds_solution_and_hidden_markers(tmp_path):
    notebook = tmp_path / "a.ipynb"
    notebook.write_text("x = 1\n### BEGIN HIDDEN TESTS\n")
    assert leaked_markers(notebook) == ["### BEGIN HIDDEN TESTS"]


def test_sample_arithmetic_on_the_demo_source():
    nb = read_source(DEMO_SOURCE)
    assert answer_ids(nb) == ["q1_answer", "q2_answer", "q3_answer"]
    assert grade_points(nb) == [("q1_tests", 2.0), ("q2_tests", 3.0), ("q3_tests", 1.0)]
    assert points_before(nb, "q3_answer") == 5.0
    with pytest.raises(KeyError, match="no cell with grade_id 'nope'"):
        points_before(nb, "nope")


def test_ids_are_checked():
    assert check_id("s-001", "student") == "s-001"
    with pytest.raises(ValueError, match=r"invalid student id '\.\./x'"):
        check_id("../x", "student")


# ---- collect ------------------------------------------------------------------------

@pytest.mark.parametrize("name, pattern, expected", [
    ("s001.ipynb", "default", "s001"),
    ("doejane_12345_67890_assignment1.ipynb", "default", "doejane"),
    ("s001.zip", "default", "s001"),
    ("Jane Doe_12345_assignsubmission_file_assignment1.ipynb", "moodle", "12345"),
    ("_nameless.ipynb", "default", None),
    ("id-7.ipynb", r"id-(?P<student>\d+)", "7"),
])
def test_student_id_from_file_names(name, pattern, expected):
    assert student_id(name, pattern) == expected


def _released_course(tmp_path: Path) -> Course:
    course = Course(root=tmp_path / "course", solutions=tmp_path / "solutions", exercises=tmp_path / "exercises")
    (course.exercises / "hw").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), course.exercises / "hw" / "hw.ipynb")
    return course


def test_collect_accepts_notebooks_zips_folders_and_reports_the_rest(tmp_path):
    course = _released_course(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = nbformat.writes(new_notebook(cells=[new_code_cell("x = 2")]))
    (inbox / "alice.ipynb").write_text(good)
    with zipfile.ZipFile(inbox / "bob_hw.zip", "w") as archive:  # a zipped folder, with a data file
        archive.writestr("hw/hw.ipynb", good)
        archive.writestr("hw/data.csv", "1,2\n")
    (inbox / "carol").mkdir()
    (inbox / "carol" / "my work.ipynb").write_text(good)  # renamed notebook: still the only one
    (inbox / "dave_1_hw.ipynb").write_text(good)
    (inbox / "dave_2_hw.ipynb").write_text(good)
    os.utime(inbox / "dave_1_hw.ipynb", (1, 1))  # older: dropped as duplicate
    (inbox / "erin.ipynb").write_text("not json")
    with zipfile.ZipFile(inbox / "frank.zip", "w") as archive:
        archive.writestr("../../escape.ipynb", good)
    (inbox / "gina.zip").write_bytes(b"not a zip")
    (inbox / "_anonymous.ipynb").write_text(good)
    (inbox / "readme.txt").write_text("hi")

    report = collect("hw", inbox, course)

    assert sorted(report.collected) == ["alice", "bob", "carol", "dave"]
    assert report.collected["dave"].name == "dave_2_hw.ipynb"
    assert (course.submitted("bob", "hw") / "data.csv").read_text() == "1,2\n"
    assert nbformat.read(course.submitted("carol", "hw") / "hw.ipynb", 4).cells[0].source == "x = 2"
    problems = {path.name: why for path, why in report.problems}
    assert problems["dave_1_hw.ipynb"].startswith("duplicate for dave; kept the newer dave_2_hw.ipynb")
    assert "not a readable notebook" in problems["erin.ipynb"]
    assert "unsafe path in zip" in problems["frank.zip"]
    assert "unreadable" in problems["gina.zip"]
    assert "no student id" in problems["_anonymous.ipynb"]
    assert problems["readme.txt"] == "not a notebook, zip or folder"
    assert not (tmp_path / "escape.ipynb").exists()


def test_collect_needs_a_released_assignment(tmp_path):
    course = Course(root=tmp_path / "c", solutions=tmp_path / "s", exercises=tmp_path / "e")
    (tmp_path / "inbox").mkdir()
    with pytest.raises(FileNotFoundError, match="run `python -m autograder release hw`"):
        collect("hw", tmp_path / "inbox", course)


# ---- feedback redaction --------------------------------------------------------------

def _graded_cell(source, outputs):
    cell = new_code_cell(source, metadata={"nbgrader": {"grade": True, "grade_id": "q1_tests", "points": 1,
                                                       "locked": True, "solution": False}})
    cell.outputs = outputs
    return cell


def test_hidden_lines_are_those_only_inside_hidden_regions():
    sources = ["import numpy as np\n### BEGIN HIDDEN TESTS\nimport numpy as np\nassert f(3) == 42  # secret\n"
               "### END HIDDEN TESTS\n"]
    assert hidden_lines(sources) == {"assert f(3) == 42  # secret"}


def test_feedback_notebook_is_the_submission_plus_verdicts_without_hidden_tests(tmp_path):
    from traitlets.config import Config

    secret = "checks.assert_equal(answer(7), 49)  # secret check"
    verdict = new_output("error", ename="CheckFailed", evalue="answer(7): expected 49, got 48",
                         traceback=["CheckFailed: answer(7): expected 49, got 48", f"----> 3 {secret}"])
    graded = new_notebook(cells=[
        new_markdown_cell("intro"),
        new_code_cell("def answer(x):\n    return x * x - 1", outputs=[new_output("stream", name="stdout",
                                                                        text="printed while graded\n")]),
        _graded_cell(f"assert answer(1) == 0\n### BEGIN HIDDEN TESTS\n{secret}\n### END HIDDEN TESTS", [verdict]),
        new_code_cell("print(In[-2])", outputs=[]),
    ])
    submitted = new_notebook(cells=[
        new_markdown_cell("intro"),
        new_code_cell("def answer(x):\n    return x * x - 1", outputs=[new_output("stream", name="stdout",
                                                                        text="what the student saw\n")]),
        _graded_cell("assert answer(1) == 0", []),
        new_code_cell("print(In[-2])", outputs=[new_output("stream", name="stdout", text=f"I found: {secret}\n")]),
    ])
    folder = tmp_path / "submitted" / "s1" / "a1"
    folder.mkdir(parents=True)
    nbformat.write(submitted, folder / "a1.ipynb")
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    resources = {"nbgrader": {"student": "s1", "assignment": "a1", "notebook": "a1"}}
    redacted, _ = RedactHiddenTests(config=config).preprocess(graded, resources)
    assert redacted.cells[2].source.strip() == "assert answer(1) == 0"
    # The verdict, one line; the student's own outputs, never the grading run's.
    assert redacted.cells[2].outputs[0].traceback == ["CheckFailed: answer(7): expected 49, got 48"]
    assert redacted.cells[1].outputs[0]["text"] == "what the student saw\n"
    assert redacted.cells[3].outputs[0]["text"] == REDACTED_OUTPUT
    page = nbformat.writes(redacted)
    assert secret not in page and "printed while graded" not in page
    # Without the submitted notebook, no outputs but the verdicts.
    resources["nbgrader"]["student"] = "nobody-here"
    graded.cells[1].outputs = [new_output("stream", name="stdout", text="printed while graded\n")]
    redacted, _ = RedactHiddenTests(config=config).preprocess(graded, resources)
    assert redacted.cells[1].outputs == [] and redacted.cells[2].outputs


def test_leaked_lines_sees_text_through_html_markup():
    page = '<pre><span class="k">assert</span> <span>f</span>(3) == 42 &amp; ok</pre>'
    assert leaked_lines(page, {"assert f(3) == 42 & ok", "not there"}) == ["assert f(3) == 42 & ok"]


# ---- grading helpers ------------------------------------------------------------------

def test_review_flags_name_tampering_in_student_cells_only(tmp_path):
    nb = new_notebook(cells=[
        new_code_cell("import builtins  # instructor setup", metadata={"nbgrader": {"locked": True}}),
        new_code_cell("np.testing.assert_allclose = print\nimport ctypes"),
    ])
    path = tmp_path / "s.ipynb"
    nbformat.write(nb, path)
    assert review_flags(path) == ["ctypes", "numpy.testing"]


@pytest.mark.parametrize("assignment, answer, allowed", [
    ("assignment1", "from vitcourse.attention import softmax", "import numpy as np"),
    ("assignment1", "import vitcourse.norms as n\nlayer_norm = n.layer_norm", "x = 1"),
    ("assignment2", "from vitcourse.first_vit import FirstViT\nmodel_vit = FirstViT()",
     "from vitcourse.training import fit"),
    ("assignment2", "from vitcourse import first_vit", "from vitcourse.patches import extract_patches"),
    ("assignment3", "from vitcourse.swin import window_partition  # the answer, imported",
     "import vitcourse.vit as vit  # allowed"),
])
def test_review_flags_name_library_answers_for_every_assignment(tmp_path, assignment, answer, allowed):
    nb = new_notebook(cells=[
        new_code_cell("from vitcourse.vit import ViTConfig", metadata={"nbgrader": {"locked": True}}),
        new_code_cell(answer),
        new_code_cell(allowed),
    ])
    path = tmp_path / "s.ipynb"
    nbformat.write(nb, path)
    assert review_flags(path, assignment) == ["library answer"]
    nb.cells = [nb.cells[0], nb.cells[2]]
    nbformat.write(nb, path)
    assert review_flags(path, assignment) == []


@pytest.mark.parametrize("grade_id, question", [("q1_tests", "q1"), ("q4a_hidden", "q4"), ("bonus", "bonus")])
def test_question_of_grade_ids(grade_id, question):
    assert question_of(grade_id) == question


def test_sandbox_command_isolates_network_and_hides_the_course(tmp_path, monkeypatch):
    course_root = ROOT / "autograder" / "course"
    course_root.mkdir(exist_ok=True)  # generated and git-ignored; hidden whenever it exists
    argv = bwrap_argv(tmp_path / "scratch", tmp_path / "runtime", {"HOME": "/home/student"}, uid=1_100_002)
    assert {"--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"} <= set(argv)
    assert argv[argv.index("--chdir") + 1] == "/home/student"
    assert argv[argv.index(str(course_root)) - 1] == "--tmpfs"
    assert argv[-7:] == ["--", "setpriv", "--reuid=1100002", "--regid=1100002", "--clear-groups",
                         "--inh-caps=-all", "--bounding-set=-all"]


def test_kernel_environment_is_cleared_except_course_settings(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "do-not-pass")
    monkeypatch.setenv("VITCOURSE_PROFILE", "quick")
    env = kernel_env(threads=2)
    assert "SECRET_TOKEN" not in env
    assert env["VITCOURSE_PROFILE"] == "quick" and env["OMP_NUM_THREADS"] == "2"


def test_resource_limits_become_prlimit_flags():
    argv = ResourceLimits(memory_mb=1, cpu_seconds=5, file_size_mb=2).prlimit_argv(limit_processes=False)
    assert argv == ["prlimit", "--as=1048576", "--cpu=5", "--fsize=2097152", "--nofile=1024", "--core=0", "--"]
    assert "--nproc=512" in ResourceLimits().prlimit_argv(limit_processes=True)


def test_submission_files_are_copied_once_even_when_the_scratch_folder_lies_inside(tmp_path):
    from autograder.sandbox.launch import _copy_submission_files

    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "answer.ipynb").write_text("{}")
    scratch = tmp_path / "autograder-scratch-x"
    scratch.mkdir()
    _copy_submission_files(tmp_path, scratch)
    assert sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*")) == ["data.csv"]


def test_grade_hands_the_executor_a_batch_and_sets_no_environment(tmp_path, monkeypatch):
    """The run's settings (workers, students, overrides) reach the executor in its Batch, and the
    environment is the caller's before, during and after the run (no channel through os.environ)."""
    import types

    from autograder.commands import grade as grade_module

    seen = {}

    def fake_executor(batch, bar):
        seen.update(batch=batch, environ=dict(os.environ))
        return []

    (tmp_path / "gradebook.db").write_text("")
    (tmp_path / "submitted" / "s1" / "a1").mkdir(parents=True)
    course = types.SimpleNamespace(
        root=tmp_path, gradebook=tmp_path / "gradebook.db", grading_seed=lambda: 4242,
        students_submitted=lambda assignment: ["s1"],
        submitted=lambda student, assignment: tmp_path / "submitted" / student / assignment)
    monkeypatch.setitem(grade_module.EXECUTORS, "local", fake_executor)
    monkeypatch.setattr(grade_module, "_check_sandbox", lambda course, overrides: None)
    monkeypatch.setattr(grade_module, "_write_grading_log", lambda course, assignment, results: None)
    before = dict(os.environ)
    overrides = grade_module.grade_overrides(cell_timeout=7)
    assert grade_module.grade("a1", course, workers=3, overrides=overrides, progress=lambda line: None) == []
    assert seen["environ"] == before and dict(os.environ) == before
    batch = seen["batch"]
    assert (batch.course, batch.assignment, batch.students, batch.workers) == (course, "a1", ("s1",), 1)
    assert batch.scheduler is None
    assert batch.overrides.Execute.timeout == 7


def test_run_settings_reach_the_kernel_manager_and_the_tests_in_the_config(tmp_path):
    """runner.batch.run_settings: threads per kernel, hidden folders, run folder and secret seed are
    read from the Config by the kernel manager and GuardedExecute; the caller's overrides are not changed."""
    from autograder import grading
    from autograder.config.course import PACKAGE_DIR
    from autograder.commands.grade import grade_overrides
    from autograder.runner.batch import run_settings
    from autograder.sandbox.execute import GuardedExecute
    from autograder.sandbox.launch import SandboxedKernelManager

    overrides = grade_overrides(memory_mb=512)
    hidden = PACKAGE_DIR / "config" / "templates"   # inside a folder every kernel sees read-only
    config = run_settings(overrides, kernels_per_host=4, hidden_folders=[str(hidden)], grading_seed=4242,
                          run_dir=str(tmp_path))
    assert set(overrides.SandboxedKernelManager) == {"memory_limit_mb"} and "GuardedExecute" not in overrides
    manager = SandboxedKernelManager(config=config)
    manager.threads = 0
    assert manager._threads() == max(1, (os.cpu_count() or 1) // 4) and manager.memory_limit_mb == 512
    assert manager.run_dir == str(tmp_path)
    argv = bwrap_argv(tmp_path, tmp_path, {}, uid=None, hidden=manager.hidden_folders)
    assert ["--tmpfs", str(hidden.resolve())] == argv[argv.index(str(hidden.resolve())) - 1:][:2]
    assert str(hidden.resolve()) not in bwrap_argv(tmp_path, tmp_path, {}, uid=None)   # not hidden unless asked
    execute = GuardedExecute(config=config)
    assert execute.course_seed() == 4242
    execute._seed, execute._channel, execute._review_flags = execute.course_seed(), None, []
    execute._grader_namespace, execute._grader_names = {"grading": grading}, {"grading"}
    assert execute._run_in_grader("seen = grading.secret_seed()", "test") is None
    assert execute._grader_namespace["seen"] == 4242 and grading.secret_seed() == 0
