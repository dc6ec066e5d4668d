"""`release`: instructor source (solutions/, MyST markdown) -> student notebook (exercises/).

The output is deterministic (fixed cell ids, no jupytext or execution metadata,
sorted JSON), so `test_autograder_release.py` can regenerate it into a temporary
folder and compare byte for byte to detect a stale exercises/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jupytext
import nbformat

from autograder.config.course import Course, check_id, run_api

NOTEBOOK_SUFFIX = ".md"
# Text that must never reach a student notebook.
FORBIDDEN_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS",
                     "### END HIDDEN TESTS", "### BEGIN MARK SCHEME", "### END MARK SCHEME")


def is_notebook_source(path: Path) -> bool:
    """A MyST markdown file with a jupytext kernelspec header is a notebook source."""
    if path.suffix != NOTEBOOK_SUFFIX:
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec:" in head


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read one instructor notebook (MyST markdown) with deterministic cell ids."""
    nb = jupytext.read(path)
    nb.metadata.pop("jupytext", None)
    for index, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell["id"] = grade_id or f"cell-{index:03d}"
    return nb


def normalize_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop volatile fields so regenerating the same source gives identical bytes."""
    nb.metadata.pop("jupytext", None)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def _copy_tree_files(source: Path, target: Path, *, skip) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or skip(path) or "__pycache__" in relative.parts:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)


def stage_source(course: Course, assignment: str) -> Path:
    """Convert solutions/<assignment>/ into nbgrader's source/<assignment>/ folder."""
    origin = course.solutions / assignment
    main = origin / f"{assignment}{NOTEBOOK_SUFFIX}"
    if not main.is_file():
        raise FileNotFoundError(f"no instructor notebook {main}: an assignment '{assignment}' needs "
                                f"solutions/{assignment}/{assignment}.md")
    staged = course.root / "source" / assignment
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for path in sorted(origin.glob(f"*{NOTEBOOK_SUFFIX}")):
        if is_notebook_source(path):
            write_notebook(read_source(path), staged / f"{path.stem}.ipynb")
    _copy_tree_files(origin, staged, skip=lambda p: is_notebook_source(p) or p.suffix == ".ipynb")
    return staged


def leaked_markers(notebook: Path) -> list[str]:
    """Solution / hidden-test markers present in a student notebook (should be none)."""
    text = notebook.read_text(encoding="utf-8")
    return [marker for marker in FORBIDDEN_MARKERS if marker in text]


def release(assignment: str, course: Course | None = None) -> list[Path]:
    """Generate the student version of `assignment` into exercises/<assignment>/.

    Returns the written files. Also (re)creates the assignment in the gradebook,
    which `grade` needs to restore locked cells and hidden tests.
    """
    course = course or Course()
    check_id(assignment, "assignment")
    stage_source(course, assignment)
    run_api(course.api().generate_assignment(assignment, force=True, create=True), "nbgrader generate_assignment")
    generated = course.root / "release" / assignment
    target = course.exercises / assignment
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    written = []
    for path in sorted(generated.rglob("*")):
        if path.is_dir():
            continue
        out = target / path.relative_to(generated)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ipynb":
            write_notebook(normalize_notebook(nbformat.read(path, as_version=4)), out)
            leaks = leaked_markers(out)
            if leaks:
                shutil.rmtree(target)
                raise RuntimeError(f"{out} would contain {leaks}: check the markers in the source")
        else:
            shutil.copy2(path, out)
        written.append(out)
    return written
