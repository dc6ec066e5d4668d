"""exercises/ must be exactly what `python -m autograder release` makes from solutions/,
and must not contain any solution or hidden-test text."""

from __future__ import annotations

import pytest

from autograder.config.course import REPO_ROOT, Course
from autograder.commands.release import FORBIDDEN_MARKERS, read_source, release

SOLUTIONS = REPO_ROOT / "solutions"
EXERCISES = REPO_ROOT / "exercises"
ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.md").is_file())


def region_lines(source: str, begin: str, end: str) -> list[str]:
    """Stripped, non-blank lines between `begin` and `end` marker lines."""
    lines, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == begin:
            inside = True
        elif stripped == end:
            inside = False
        elif inside and stripped:
            lines.append(stripped)
    return lines


def test_every_assignment_is_released_and_nothing_else():
    assert ASSIGNMENTS, "solutions/ holds no assignment"
    assert sorted(p.name for p in EXERCISES.iterdir() if p.is_dir()) == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_are_up_to_date_with_solutions(assignment, tmp_path):
    course = Course(root=tmp_path / "course", solutions=SOLUTIONS, exercises=tmp_path / "exercises")
    fresh = {p.relative_to(course.exercises / assignment): p.read_bytes()
             for p in release(assignment, course)}
    committed = {p.relative_to(EXERCISES / assignment): p.read_bytes()
                 for p in (EXERCISES / assignment).rglob("*") if p.is_file()}
    assert sorted(fresh) == sorted(committed)
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"exercises/{assignment} is stale: run `python -m autograder release {assignment}` ({stale})"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_hold_no_solution_or_hidden_test_text(assignment):
    instructor = read_source(SOLUTIONS / assignment / f"{assignment}.md")
    student_text = "\n".join(p.read_text() for p in (EXERCISES / assignment).glob("*.ipynb"))
    student_lines = {line.strip() for p in (EXERCISES / assignment).glob("*.ipynb")
                     for cell in read_cells(p) for line in cell.splitlines()}
    outside = set()
    secret = set()
    for cell in instructor.cells:
        in_regions = (region_lines(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
                      + region_lines(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
        secret.update(in_regions)
        outside.update(line.strip() for line in cell.source.splitlines() if line.strip() not in in_regions)
    # A line that also appears outside the regions (e.g. `import numpy as np`) is public anyway.
    leaked = sorted((secret - outside) & student_lines)
    assert not leaked, f"exercises/{assignment} contains solution/hidden lines: {leaked[:5]}"
    assert not [marker for marker in FORBIDDEN_MARKERS if marker in student_text]


def read_cells(path) -> list[str]:
    import nbformat

    return [cell.source for cell in nbformat.read(path, as_version=4).cells]
