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


def _meaningful(line: str) -> bool:
    return len(line) >= 8 and not line.startswith("#") and re.search(r"[A-Za-z]", line) is not None


def secrets(source: Path) -> set[str]:
    """Snippets that must never reach a student, each one or more whole lines.

    * Hidden tests: every distinctive line (30+ characters, not also in the visible part).
    * Solutions: every run of 3 consecutive lines (a whole short region), because the chapters
      legitimately teach the same one-liners (`weights = softmax(scores, axis=-1)`) that an
      answer uses; a leak is the answer itself, several lines of it in a row.
    """
    text = source.read_text()
    outside = {line.strip() for line in REGION.sub("", text).splitlines()}
    found = set()
    for kind, body in REGION.findall(text):
        lines = [line.strip() for line in body.splitlines() if _meaningful(line.strip())]
        if kind == "HIDDEN TESTS":
            found |= {line for line in lines if len(line) >= 30 and line not in outside}
        elif len(lines) >= 3:
            found |= {"\n".join(lines[i:i + 3]) for i in range(len(lines) - 2)}
        elif lines and sum(map(len, lines)) >= 40:
            found.add("\n".join(lines))
    return found


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


def test_the_scanner_finds_planted_secrets(tmp_path):
    """A distinctive hidden line and a run of solution lines are secrets; shared lines are not."""
    source = tmp_path / "a.md"
    source.write_text("import numpy as np\n### BEGIN HIDDEN TESTS\nassert np.isclose(square(3.0), 9.0), 'nine'\n"
                      "import numpy as np\n### END HIDDEN TESTS\n### BEGIN SOLUTION\nx = np.asarray(x)\n"
                      "y = x * x  # square\nreturn y.astype(float)\n### END SOLUTION\n")
    assert secrets(source) == {"assert np.isclose(square(3.0), 9.0), 'nine'",
                               "x = np.asarray(x)\ny = x * x  # square\nreturn y.astype(float)"}
    assert _leaks({"page.html": "<pre>x = np.asarray(x)\n  y = x * x  # square\n return y.astype(float)</pre>"},
                  secrets(source))
    assert not _leaks({"page.html": "<pre>x = np.asarray(x)\nreturn y.astype(float)</pre>"}, secrets(source))


def _normalised(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _leaks(texts: dict[str, str], snippets: set[str]) -> list[str]:
    found = []
    for name, text in texts.items():
        plain = _normalised(_unescape_html(text) if name.endswith(".html") else text)
        found += [f"{name}: {snippet!r}" for snippet in snippets if snippet in plain]
    return found


@pytest.mark.parametrize("source", instructor_sources(), ids=lambda p: p.parent.name)
def test_no_solution_or_hidden_test_text_reaches_students(source):
    snippets = secrets(source)
    assert snippets, f"{source}: no solution or hidden-test region found"
    texts = student_visible_texts()
    assert any(name.startswith(f"exercises/{source.parent.name}/") for name in texts), \
        f"exercises/{source.parent.name}/ has no notebook: run make release"
    leaks = _leaks(texts, snippets)
    assert not leaks, "solution or hidden-test text visible to students:\n" + "\n".join(leaks[:20])
