"""Nothing a student must not see may reach exercises/ or the built HTML book.

Two checks: the nbgrader markers themselves, and the actual text inside every solution region
and hidden-test region of every instructor source under solutions/ (so a leak is caught even if
the markers were stripped).
"""

from __future__ import annotations

import json

import pytest

from tests.support import ROOT
from tests.support.leaks import MARKERS, instructor_sources, leaks as find_leaks, secrets


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


def test_no_marker_in_student_visible_files():
    leaks = [name for name, text in student_visible_texts().items() if MARKERS.search(text)]
    assert not leaks, f"nbgrader solution/hidden-test markers found in: {leaks}"


def test_the_scanner_finds_planted_secrets(tmp_path):
    """A distinctive hidden line and a run of solution lines are secrets; shared lines are not."""
    source = tmp_path / "a.md"
    source.write_text("import numpy as np\n### BEGIN HIDDEN TESTS\nassert np.isclose(square(3.0), 9.0), 'nine'\n"
                      "import numpy as np\n### END HIDDEN TESTS\n### BEGIN SOLUTION\nx = np.asarray(x)\n"
                      "y = x * x  # square\nreturn y.astype(float)\n### END SOLUTION\n")
    assert secrets(source) == {"assert np.isclose(square(3.0), 9.0), 'nine'",
                               "x = np.asarray(x)\ny = x * x  # square\nreturn y.astype(float)"}
    assert find_leaks({"page.html": "<pre>x = np.asarray(x)\n  y = x * x  # square\n return y.astype(float)</pre>"},
                  secrets(source))
    assert not find_leaks({"page.html": "<pre>x = np.asarray(x)\nreturn y.astype(float)</pre>"}, secrets(source))


@pytest.mark.parametrize("source", instructor_sources(), ids=lambda p: p.parent.name)
def test_no_solution_or_hidden_test_text_reaches_students(source):
    snippets = secrets(source)
    assert snippets, f"{source}: no solution or hidden-test region found"
    texts = student_visible_texts()
    assert any(name.startswith(f"exercises/{source.parent.name}/") for name in texts), \
        f"exercises/{source.parent.name}/ has no notebook: run make release"
    leaks = find_leaks(texts, snippets)
    assert not leaks, "solution or hidden-test text visible to students:\n" + "\n".join(leaks[:20])
