"""Sample submissions built from the released notebook, so they never go stale.

A sample starts from the student notebook in exercises/ with every answer cell
filled from the instructor source ("correct"), then applies one disruption. The
disruptions that break a cell go into the *last* answer cell, so the expected
score is known for any assignment: the points of grade cells before that cell.

Used by tests/test_autograder*.py and bench/grading_speed.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

from autograder.commands.release import read_source

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def answer_ids(nb) -> list[str]:
    """grade_ids of the code cells students write in, in notebook order."""
    return [_meta(c)["grade_id"] for c in nb.cells if c.cell_type == "code" and _meta(c).get("solution")]


def _autograded(cell) -> bool:
    """A test cell (a graded markdown cell is an answer graded by hand, 0 points until then)."""
    return bool(_meta(cell).get("grade")) and cell.cell_type == "code"


def grade_points(nb) -> list[tuple[str, float]]:
    """(grade_id, points) of every autograded cell, in notebook order."""
    return [(_meta(c)["grade_id"], float(_meta(c).get("points", 0))) for c in nb.cells if _autograded(c)]


def points_before(nb, grade_id: str) -> float:
    """Total points of the autograded cells above the cell `grade_id`."""
    total = 0.0
    for cell in nb.cells:
        if _meta(cell).get("grade_id") == grade_id:
            return total
        if _autograded(cell):
            total += float(_meta(cell).get("points", 0))
    raise KeyError(f"no cell with grade_id {grade_id!r}")


def cell_by_id(nb, grade_id: str):
    for cell in nb.cells:
        if _meta(cell).get("grade_id") == grade_id:
            return cell
    raise KeyError(f"no cell with grade_id {grade_id!r}")


def correct_submission(student_nb, instructor_nb):
    """The released notebook with every answer cell filled with the instructor's solution."""
    nb = copy.deepcopy(student_nb)
    solutions = {_meta(c)["grade_id"]: strip_solution_markers(c.source)
                 for c in instructor_nb.cells if _meta(c).get("solution")}
    for cell in nb.cells:
        if _meta(cell).get("solution"):
            cell.source = solutions[_meta(cell)["grade_id"]]
    return nb


@dataclass(frozen=True)
class Sample:
    """A named way to break a correct submission, and the score it should then get."""

    name: str
    build: Callable  # (correct nb) -> submission nb (edits a copy)
    expected: Callable  # (released nb) -> expected total score


def with_answer(grade_id: str, source: str):
    """A build step that replaces the answer cell `grade_id` with `source`."""
    def build(nb):
        nb = copy.deepcopy(nb)
        cell_by_id(nb, grade_id).source = source
        return nb
    return build


def with_answers(answers: dict[str, str]):
    """A build step that replaces several answer cells: {grade_id: source}."""
    def build(nb):
        for grade_id, source in answers.items():
            nb = with_answer(grade_id, source)(nb)
        return nb
    return build


def with_code(code: str, *, keep_solution: bool, answer: int = -1):
    """A build step that writes `code` into answer cell number `answer` (default: the last)."""
    def build(nb):
        nb = copy.deepcopy(nb)
        cell = cell_by_id(nb, answer_ids(nb)[answer])
        cell.source = (cell.source + "\n" if keep_solution else "") + code
        return nb
    return build


def _total(nb) -> float:
    return sum(points for _, points in grade_points(nb))


def _before_answer(answer: int):
    return lambda nb: points_before(nb, answer_ids(nb)[answer])


def _delete_last_grade_cell(nb):
    nb = copy.deepcopy(nb)
    last = grade_points(nb)[-1][0]
    nb.cells = [c for c in nb.cells if _meta(c).get("grade_id") != last]
    return nb


def _retype_grade_cell(nb, answer: int):
    """A wrong answer, and the first grade cell after it turned into markdown."""
    nb = with_code("raise ValueError('wrong on purpose')", keep_solution=False, answer=answer)(nb)
    cell = _grade_cells_after(nb, answer_ids(nb)[answer])[0]
    cell.cell_type = "markdown"
    for key in ("outputs", "execution_count"):
        cell.pop(key, None)
    return nb


def _grade_cells_after(nb, grade_id: str) -> list:
    cells = nb.cells[[_meta(c).get("grade_id") for c in nb.cells].index(grade_id):]
    return [cell for cell in cells if _autograded(cell)]


def _edit_locked_tests(nb, answer: int):
    """A wrong answer, with every test cell after it replaced by `pass`."""
    nb = with_code("raise ValueError('wrong on purpose')", keep_solution=False, answer=answer)(nb)
    for cell in _grade_cells_after(nb, answer_ids(nb)[answer]):
        cell.source = "pass"
    return nb


TAMPER_CODE = """
import builtins, numpy
numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.allclose = lambda *args, **kwargs: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
try:
    import torch
    torch.allclose = lambda *args, **kwargs: True
    torch.testing.assert_close = lambda *args, **kwargs: None
except ImportError:
    pass
get_ipython().showtraceback = lambda *args, **kwargs: None
"""


def _tamper_then_fail(nb, answer: int):
    """Answer `answer` wrong, with every comparison helper monkeypatched by the first answer cell."""
    nb = with_code("raise ValueError('wrong on purpose')", keep_solution=False, answer=answer)(nb)
    first = cell_by_id(nb, answer_ids(nb)[0])
    first.source = TAMPER_CODE + "\n" + first.source  # before any failure in that cell
    return nb


def hostile_code(read_targets: list[str], write_targets: list[str]) -> str:
    """Student code that tries to read/list secrets, write outside its scratch folder, and
    reach the network; it prints what succeeded on lines starting with HOSTILE-."""
    return f"""
import os, socket
readable = []
for target in {read_targets!r}:
    try:
        if os.path.isdir(target):
            readable += [target + '/' + name for name in os.listdir(target)]
        else:
            with open(target, 'rb') as handle:
                handle.read(1)
            readable.append(target)
    except OSError:
        pass
print('HOSTILE-READ', readable)
written = []
for target in {write_targets!r}:
    try:
        with open(target, 'w') as handle:
            handle.write('x')
        written.append(target)
    except OSError:
        pass
print('HOSTILE-WROTE', written)
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    print('HOSTILE-NET open')
except OSError:
    print('HOSTILE-NET blocked')
"""


def hostile_sample(read_targets: list[str], write_targets: list[str]) -> Sample:
    """A correct submission that also probes the sandbox (see hostile_code)."""
    return Sample("hostile", with_code(hostile_code(read_targets, write_targets), keep_solution=True),
                  _total)


def generic_samples(answer: int = -1) -> list[Sample]:
    """Samples that work for any assignment; the breaking ones hit answer cell `answer`.

    With the default (the last answer) the points of every earlier question must survive.
    A long assignment can use answer=0 to keep them cheap (nothing to train before it).
    """
    def breaking(name: str, code: str) -> Sample:
        return Sample(name, with_code(code, keep_solution=False, answer=answer), _before_answer(answer))

    return [
        Sample("correct", lambda nb: copy.deepcopy(nb), _total),
        breaking("exception_in_cell", "raise RuntimeError('student bug')"),
        breaking("infinite_loop", "while True:\n    pass"),
        breaking("stubborn_loop",
                 "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"),
        breaking("memory_bomb", "hog = bytearray(64 * 1024 ** 3)"),
        breaking("os_exit", "import os\nos._exit(3)"),
        breaking("sys_exit", "import sys\nsys.exit(1)"),
        Sample("huge_output", with_code("for i in range(300_000):\n    print('spam' * 10, i)",
                                                keep_solution=True, answer=answer), _total),
        Sample("edited_locked_cell", lambda nb: _edit_locked_tests(nb, answer), _before_answer(answer)),
        Sample("deleted_grade_cell", _delete_last_grade_cell, lambda nb: _total(nb) - grade_points(nb)[-1][1]),
        Sample("retyped_grade_cell", lambda nb: _retype_grade_cell(nb, answer), _before_answer(answer)),
        Sample("tamper", lambda nb: _tamper_then_fail(nb, answer), _before_answer(answer)),
    ]


GENERIC_SAMPLES = generic_samples()


def build_samples(exercises: Path, solutions: Path, assignment: str, samples=GENERIC_SAMPLES) -> dict:
    """{sample name: (submission notebook, expected score)} for one assignment."""
    student_nb = nbformat.read(exercises / assignment / f"{assignment}.ipynb", as_version=4)
    instructor_nb = read_source(solutions / assignment / f"{assignment}.md")
    correct = correct_submission(student_nb, instructor_nb)
    return {sample.name: (sample.build(correct), sample.expected(student_nb)) for sample in samples}
