"""The leak scanner: the text inside every solution and hidden-test region, and where it shows up.

Used by tests/autograder/test_leaks.py (exercises/, the built book) and test_student_package.py
(the student package).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from tests.support import ROOT

MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS")
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def instructor_sources() -> list[Path]:
    """Every instructor source under solutions/."""
    return sorted((ROOT / "solutions").glob("*/*.md"))


def meaningful(line: str) -> bool:
    """A line long and wordy enough that finding it elsewhere means it leaked."""
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
        lines = [line.strip() for line in body.splitlines() if meaningful(line.strip())]
        if kind == "HIDDEN TESTS":
            found |= {line for line in lines if len(line) >= 30 and line not in outside}
        elif len(lines) >= 3:
            found |= {"\n".join(lines[i:i + 3]) for i in range(len(lines) - 2)}
        elif lines and sum(map(len, lines)) >= 40:
            found.add("\n".join(lines))
    return found


def unescape_html(text: str) -> str:
    """The text of an HTML page, tags removed and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def normalised(text: str) -> str:
    """Lines stripped, blank lines dropped."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def leaks(texts: dict[str, str], snippets: set[str]) -> list[str]:
    """Each snippet found in a text, as "name: snippet"."""
    found = []
    for name, text in texts.items():
        plain = normalised(unescape_html(text) if name.endswith(".html") else text)
        found += [f"{name}: {snippet!r}" for snippet in snippets if snippet in plain]
    return found
