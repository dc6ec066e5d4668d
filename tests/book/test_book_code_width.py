"""No line of code in the book is wider than its code box.

The book's code box shows 88 characters at the 1280 px layout; a longer line is clipped (or
scrolls), so the reader sees half a statement. Checked on the sources: every code cell of every
book/*.md chapter, and every library listing a chapter shows with {literalinclude} (resolved
exactly as Sphinx resolves it, :pyobject: and all).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tests.support.pages import ROOT

WIDTH = 88
BOOK = ROOT / "book"
CELL = re.compile(r"^(?P<fence>```+|~~~+)\s*\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.S | re.M)
LITERALINCLUDE = re.compile(r"^```+\{literalinclude\} (?P<path>\S+)\n(?P<options>(?::[\w-]+:.*\n)*)", re.M)
CHAPTERS = sorted(BOOK.glob("*.md"))


def code_cell_lines(text: str):
    """(line number in the .md, line) for every line of code in a code cell (the cell's
    options — a leading ``---`` YAML block or ``:key: value`` lines — are not shown)."""
    for match in CELL.finditer(text):
        first = text.count("\n", 0, match.start("body")) + 1
        lines = match["body"].split("\n")
        skip = 0
        if lines[0].strip() == "---" and "---" in lines[1:]:
            skip = lines.index("---", 1) + 1
        while skip < len(lines) and re.match(r"^:[\w-]+:", lines[skip]):
            skip += 1
        for offset, line in enumerate(lines[skip:], start=skip):
            yield first + offset, line


def listings(page):
    """(path, options, text) of every {literalinclude} on ``page``, as Sphinx would show it."""
    from sphinx.directives.code import LiteralIncludeReader

    for match in LITERALINCLUDE.finditer(page.read_text()):
        options = {}
        for line in match["options"].splitlines():
            key, _, value = line[1:].partition(":")
            options[key] = value.strip() or True
            if key == "dedent":  # as the directive's option spec reads it: bare means "all of it" (None)
                options[key] = int(value) if value.strip() else None
            elif key == "lineno-start":
                options[key] = int(options[key])
        path = (page.parent / match["path"]).resolve()
        text, _ = LiteralIncludeReader(str(path), options, SimpleNamespace(source_encoding="utf-8")).read()
        yield path, options, text


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_code_cells_fit_the_code_box(page):
    wide = [f"{page.name}:{number}: {len(line)} characters: {line.strip()[:60]}…"
            for number, line in code_cell_lines(page.read_text()) if len(line) > WIDTH]
    assert not wide, f"code lines wider than {WIDTH} characters (wrap them):\n" + "\n".join(wide)


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_whole_code_cells_fit_in_bytes(page):
    """Stricter, for the downloaded .ipynb and any editor: every line of a code cell, its
    options (captions, alt text) included, fits in WIDTH bytes of UTF-8 (×, – and · take two
    or three bytes, so a line of WIDTH characters can be wider than it looks)."""
    text = page.read_text()
    wide = []
    for match in CELL.finditer(text):
        first = text.count("\n", 0, match.start("body")) + 1
        for offset, line in enumerate(match["body"].split("\n")):
            if len(line.encode()) > WIDTH:
                wide.append(f"{page.name}:{first + offset}: {len(line.encode())} bytes: {line.strip()[:60]}…")
    assert not wide, f"code-cell lines over {WIDTH} bytes (wrap them):\n" + "\n".join(wide)


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_library_listings_fit_the_code_box(page):
    wide = []
    for path, options, text in listings(page):
        what = options.get("pyobject") or options.get("lines") or "whole file"
        wide += [f"{path.relative_to(ROOT)} ({what}): {len(line)} characters: {line.strip()[:60]}…"
                 for line in text.splitlines() if len(line) > WIDTH]
    assert not wide, f"{page.name} shows library lines wider than {WIDTH} characters:\n" + "\n".join(wide)


def test_the_width_check_sees_code_cells_and_listings():
    cells = sum(1 for page in CHAPTERS for _ in code_cell_lines(page.read_text()))
    shown = sum(1 for page in CHAPTERS for _ in listings(page))
    assert cells > 1000 and shown > 20, (cells, shown)
    assert list(code_cell_lines("```{code-cell} ipython3\nx = 1\n```\n")) == [(2, "x = 1"), (3, "")]
    with_options = "```{code-cell} ipython3\n---\ntags: [" + "x" * 99 + "]\n---\ny = 2\n```\n"
    assert list(code_cell_lines(with_options)) == [(5, "y = 2"), (6, "")]


def plain_code_blocks(text: str):
    """Lines of fenced blocks that are not directives (```bash, ```python, plain ```)."""
    fence, plain = None, False
    for line in text.splitlines():
        if fence is None:
            match = re.match(r"^(`{3,}|~{3,})(.*)$", line)
            if match:
                fence, plain = match[1], "{" not in match[2]
        elif line.strip() == fence:
            fence = None
        elif plain:
            yield line


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_plain_code_blocks_fit_the_code_box(page):
    """```bash and other plain fenced blocks (not directives) are code boxes too."""
    wide = [line for line in plain_code_blocks(page.read_text()) if len(line) > WIDTH]
    assert not wide, f"{page.name}: fenced code lines wider than {WIDTH}: {wide}"
    assert list(plain_code_blocks("```{code-cell}\n" + "x" * 99 + "\n```\n```bash\nls\n```\n")) == ["ls"]
