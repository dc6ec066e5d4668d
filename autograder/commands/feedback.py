"""`feedback`: per-student HTML pages with scores and the grader's verdicts, and no hidden tests.

A page shows exactly three things: the student's own notebook as they submitted it (their
code and the outputs *they* saw), each test cell's verdict and points as the grader wrote it
(execute.verdict_outputs: "passed", or the failed check's message), and nothing that the
grading run printed. RedactHiddenTests (registered in nbgrader_config.py) builds that page
from the autograded notebook: it removes hidden-test regions from test cells, keeps their
verdicts, and puts back the submitted outputs of every other cell. As a second line of
defence `feedback()` scans each written page for hidden-test lines and withholds a page that
has one; that, or any other problem with one student's page, is reported and the other
students' pages are written all the same.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_output
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

from autograder.config.course import REPO_ROOT, Course, check_id, run_api
from autograder.sandbox.execute import is_test_cell

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
REDACTED_OUTPUT = "[output removed by the autograder: it quoted hidden test code]\n"
# Lines shorter than this (e.g. `)` or `x = 1`) are too generic to identify hidden code.
MIN_SECRET_LINE = 6

MATHJAX_DIRS = [REPO_ROOT / "book" / "assets" / "mathjax" / "es5", REPO_ROOT / "node_modules" / "mathjax" / "es5"]
MATHJAX_FILES = ["tex-mml-chtml.js", "output/chtml/fonts/woff-v2"]


class OfflineFeedbackExporter(HTMLExporter):
    """HTMLExporter under its own config section (see nbgrader_config.py)."""



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
    """The feedback page's notebook: submitted cells and outputs, verdicts, no hidden tests."""

    def preprocess(self, nb, resources):
        self._secrets = hidden_lines([cell.source for cell in nb.cells])
        self._clear = ClearHiddenTests(enforce_metadata=False)
        self._submitted = self._submitted_cells(resources)
        return super().preprocess(nb, resources)

    def _submitted_cells(self, resources) -> list | None:
        """The cells of the notebook as the student submitted it, or None if it cannot be read."""
        import nbformat

        info = resources.get("nbgrader", {})
        root = Path(self.config.CourseDirectory.get("root") or ".")
        path = root / "submitted" / str(info.get("student")) / str(info.get("assignment")) / f"{info.get('notebook')}.ipynb"
        try:
            return nbformat.read(path, as_version=4).cells
        except Exception:  # noqa: BLE001 - no submitted outputs then: the page shows none
            return None

    def _submitted_outputs(self, cell, index) -> list:
        cells = self._submitted
        if cells is None or index >= len(cells):
            return []
        theirs = cells[index]
        same = (theirs.cell_type == cell.cell_type and theirs.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                == cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        return list(theirs.get("outputs", [])) if same else []

    def preprocess_cell(self, cell, resources, index):
        if BEGIN_HIDDEN in cell.source:
            self._clear._remove_hidden_test_region(cell)
        if cell.cell_type != "code":
            return cell, resources
        if is_test_cell(cell):
            # The grader's verdict: one line, no traceback.
            for output in cell.outputs:
                if output.get("output_type") == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        else:
            cell.outputs = self._submitted_outputs(cell, index)
        for position, output in enumerate(cell.get("outputs", [])):
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
             progress=print, problems: list[str] | None = None) -> list[Path]:
    """Write feedback/<student>/<assignment>/*.html for graded students; return the pages.

    A student whose page cannot be written, or whose page is withheld because it still holds
    hidden-test lines, is reported through `progress` and appended to `problems`; every other
    student still gets a page.
    """
    course = course or Course()
    check_id(assignment, "assignment")
    graded = sorted(p.parent.name for p in (course.root / "autograded").glob(f"*/{assignment}"))
    todo = students or graded
    problems = [] if problems is None else problems
    api = course.api()
    pages: list[Path] = []
    have_mathjax = mathjax_source() is not None
    if not have_mathjax:
        progress("warning: no local MathJax (run `make book` / `npm install`): math will show as TeX source")
    for student in todo:
        if student not in graded:
            problems.append(f"{student}: no autograded {assignment} (run `grade` first)")
            progress(f"skipped {student}: {problems[-1]}")
            continue
        try:
            run_api(api.generate_feedback(assignment, student, force=True), f"feedback for {student}")
        except RuntimeError as error:
            problems.append(f"{student}: nbgrader could not write the page ({str(error).splitlines()[0]})")
            progress(f"skipped {student}: {problems[-1]}")
            continue
        folder = course.feedback(student, assignment)
        secrets = _student_secrets(course, student, assignment)
        for page in sorted(folder.glob("*.html")):
            leaks = leaked_lines(page.read_text(encoding="utf-8"), secrets)
            if leaks:
                page.unlink()
                problems.append(f"{student}: page {page.name} withheld, it contained {len(leaks)} hidden-test line(s)")
                progress(f"withheld {page}: it contained hidden-test lines")
                continue
            pages.append(page)
        if have_mathjax:
            copy_mathjax(folder)
    return pages
