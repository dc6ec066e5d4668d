"""Nothing a student must not see may reach exercises/ or the built HTML book.

Two checks: the nbgrader markers themselves, and the actual text inside every solution region
and hidden-test region of every instructor source under solutions/ (so a leak is caught even if
the markers were stripped).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS")
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def instructor_sources() -> list[Path]:
    return sorted((ROOT / "solutions").glob("*/*.md"))


def secret_lines(source: Path) -> set[str]:
    """Lines inside solution/hidden regions that appear nowhere else in the source.

    Lines the visible part of the assignment also contains (a shared import, `return out`) are
    not secrets; everything else is.
    """
    text = source.read_text()
    inside = {line.strip() for _, body in REGION.findall(text) for line in body.splitlines()}
    outside = {line.strip() for line in REGION.sub("", text).splitlines()}
    return {line for line in inside - outside
            if len(line) >= 12 and not line.startswith("#") and re.search(r"[A-Za-z]", line)}


def student_visible_texts() -> dict[str, str]:
    texts = {}
    for notebook in sorted((ROOT / "exercises").rglob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        texts[str(notebook.relative_to(ROOT))] = "\n".join(
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in cells)
    html = ROOT / "_build" / "html"
    for page in sorted(html.rglob("*.html")) + sorted(html.rglob("*.ipynb")) + sorted(html.rglob("*.md")):
        texts[str(page.relative_to(ROOT))] = page.read_text(errors="replace")
    for page in sorted((html / "_sources").rglob("*")) if (html / "_sources").exists() else []:
        if page.is_file():
            texts[str(page.relative_to(ROOT))] = page.read_text(errors="replace")
    return texts


def _unescape_html(text: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", text))


def test_no_marker_in_student_visible_files():
    leaks = [name for name, text in student_visible_texts().items() if MARKERS.search(text)]
    assert not leaks, f"nbgrader solution/hidden-test markers found in: {leaks}"


def test_secret_lines_are_found_by_the_scanner(tmp_path):
    """The scanner itself works: a planted hidden line is a secret, a shared line is not."""
    source = tmp_path / "a.md"
    source.write_text("import numpy as np\n### BEGIN HIDDEN TESTS\nassert np.isclose(f(3), 9.0)\n"
                      "import numpy as np\n### END HIDDEN TESTS\n")
    assert secret_lines(source) == {"assert np.isclose(f(3), 9.0)"}


@pytest.mark.parametrize("source", instructor_sources(), ids=lambda p: p.parent.name)
def test_no_solution_or_hidden_test_text_reaches_students(source):
    secrets = secret_lines(source)
    assert secrets, f"{source}: no solution or hidden-test region found"
    texts = student_visible_texts()
    assert any(name.startswith("exercises/") for name in texts), "exercises/ has no notebook: run make release"
    leaks = []
    for name, text in texts.items():
        plain = _unescape_html(text) if name.endswith(".html") else text
        leaks += [f"{name}: {line}" for line in secrets if line in text or line in plain]
    assert not leaks, "solution or hidden-test text visible to students:\n" + "\n".join(leaks[:20])
