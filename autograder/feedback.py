"""`feedback`: per-student HTML with scores and visible-test output, and no hidden tests.

nbgrader's feedback shows the autograded notebook, whose grade cells carry the
restored hidden tests -- in the cell source and in the tracebacks they raise.
RedactHiddenTests (registered in nbgrader_config.py) removes both, and blanks any
output that quotes hidden-test lines (a student cell could print the kernel's input
history). `feedback()` then re-checks every written page for hidden-test lines and
deletes a page that still has one, so a leak fails loudly instead of being sent out.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_output
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

from .course import REPO_ROOT, Course, check_id, run_api

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
HIDDEN_TRACEBACK_NOTE = "(traceback not shown: this cell contains hidden tests)"
REDACTED_OUTPUT = "[output removed by the autograder: it quoted hidden test code]\n"
# Lines shorter than this (e.g. `)` or `x = 1`) are too generic to identify hidden code.
MIN_SECRET_LINE = 6

MATHJAX_DIRS = [REPO_ROOT / "book" / "assets" / "mathjax" / "es5", REPO_ROOT / "node_modules" / "mathjax" / "es5"]
MATHJAX_FILES = ["tex-mml-chtml.js", "output/chtml/fonts/woff-v2"]


class OfflineFeedbackExporter(HTMLExporter):
    """HTMLExporter under its own config section (see nbgrader_config.py)."""


class LeakError(RuntimeError):
    """A feedback page still contains hidden-test source."""


def hidden_lines(sources: list[str]) -> set[str]:
    """Stripped lines inside hidden-test regions that appear nowhere outside them."""
    hidden, visible = set(), set()
    for source in sources:
        inside = False
        for line in source.splitlines():
            stripped = line.strip()
            if stripped == BEGIN_HIDDEN:
                inside = True
            elif stripped == END_HIDDEN:
                inside = False
            elif stripped:
                (hidden if inside else visible).add(stripped)
    # A hidden line that a visible line contains (say, the student's own code with a comment)
    # is not secret on that page.
    visible_text = "\n".join(visible)
    return {line for line in hidden if len(line) >= MIN_SECRET_LINE and line not in visible_text}


def _output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join([output.get("evalue", ""), *output.get("traceback", [])])
    return "\n".join(str(value) for value in output.get("data", {}).values())


class RedactHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests from sources, their tracebacks, and outputs quoting them."""

    def preprocess(self, nb, resources):
        self._secrets = hidden_lines([cell.source for cell in nb.cells])
        self._clear = ClearHiddenTests(enforce_metadata=False)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        had_hidden = BEGIN_HIDDEN in cell.source
        if had_hidden:
            self._clear._remove_hidden_test_region(cell)
        for position, output in enumerate(cell.get("outputs", [])):
            if had_hidden and output.get("output_type") == "error":
                output.traceback = [f"{output.ename}: {output.evalue}", HIDDEN_TRACEBACK_NOTE]
            if any(secret in _output_text(output) for secret in self._secrets):
                cell.outputs[position] = new_output("stream", name="stderr", text=REDACTED_OUTPUT)
        return cell, resources


def page_text(page: str) -> str:
    """Visible text of an HTML page: tags dropped, entities decoded."""
    without_code = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", without_code))


def leaked_lines(page: str, secrets: set[str]) -> list[str]:
    text = page_text(page)
    return sorted(secret for secret in secrets if secret in text)


def mathjax_source() -> Path | None:
    """The first local MathJax 3 es5 folder that has tex-mml-chtml.js, if any."""
    for folder in MATHJAX_DIRS:
        if (folder / MATHJAX_FILES[0]).is_file():
            return folder
    return None


def copy_mathjax(folder: Path) -> bool:
    """Put MathJax next to a feedback page (folder/mathjax/); False when none is installed."""
    source = mathjax_source()
    if source is None:
        return False
    target = folder / "mathjax"
    for name in MATHJAX_FILES:
        origin, dest = source / name, target / name
        if origin.is_dir():
            shutil.copytree(origin, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, dest)
    return True


def _student_secrets(course: Course, student: str, assignment: str) -> set[str]:
    """Hidden-test lines of the student's autograded notebooks, minus lines the student wrote."""
    import nbformat

    sources = []
    for notebook in sorted(course.autograded(student, assignment).glob("*.ipynb")):
        sources += [cell.source for cell in nbformat.read(notebook, as_version=4).cells]
    return hidden_lines(sources)


def feedback(assignment: str, course: Course | None = None, students: list[str] | None = None,
             progress=print) -> list[Path]:
    """Write feedback/<student>/<assignment>/*.html for graded students; return the pages."""
    course = course or Course()
    check_id(assignment, "assignment")
    graded = sorted(p.parent.name for p in (course.root / "autograded").glob(f"*/{assignment}"))
    todo = students or graded
    api = course.api()
    pages: list[Path] = []
    have_mathjax = mathjax_source() is not None
    if not have_mathjax:
        progress("warning: no local MathJax (run `make book` / `npm install`): math will show as TeX source")
    for student in todo:
        if student not in graded:
            raise FileNotFoundError(f"{student} has no autograded {assignment}: run `grade` first")
        run_api(api.generate_feedback(assignment, student, force=True), f"feedback for {student}")
        folder = course.feedback(student, assignment)
        secrets = _student_secrets(course, student, assignment)
        for page in sorted(folder.glob("*.html")):
            leaks = leaked_lines(page.read_text(encoding="utf-8"), secrets)
            if leaks:
                page.unlink()
                raise LeakError(f"{page} contained hidden-test lines {leaks[:3]}; page deleted")
            pages.append(page)
        if have_mathjax:
            copy_mathjax(folder)
    return pages
