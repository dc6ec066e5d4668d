"""Page-level promises of the built book (`make book` first), the classes of issue 30 a check can keep:

* no line of a cell's output is wider than the code box (88 characters, as the sources' code);
* a glossary term's first use in a page's prose is a link to the glossary, on every chapter and
  appendix and on the pages that introduce the course (intro, how to use); the glossary lists its
  terms in alphabetical order;
* a glued value reads as the prose around it: myst-nb's stylesheet sets pasted text in bold, and
  the book's own stylesheet (book/assets/course.css, loaded after it) takes that back;
* a figure caption sits on an image only: a captioned cell shows no table, value or colour-bar repr;
* no cell ends by showing a stray return value (a glue call's value, a Colorbar repr), read from the
  outputs the build stored (the jupyter-cache where ``jupyter_execute`` has none);
* every number in a chapter's prose is a glued value, a cited result, or inside maths or code,
  apart from a short explicit allowlist (structural references such as "chapter 5").

The build read is ``_build`` of this checkout, or the folder ``BOOK_BUILD`` names (read only), e.g.
``BOOK_BUILD=/path/to/other/checkout/_build pytest tests/book/test_book_pages.py``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from pathlib import Path

import pytest

from tests.support.pages import ROOT, glossary_definitions, is_notebook_page, parse_html, toc_files

pytestmark = pytest.mark.book

BUILD = Path(os.environ.get("BOOK_BUILD") or ROOT / "_build")
HTML = BUILD / "html"
WIDTH = 88  # characters in a code box at 1280 px (book/assets/course.css; tests/test_book_code_width.py)
CHAPTERS = [file for file in toc_files() if is_notebook_page(file)]
# Pages whose prose must link each glossary term at its first use: every page of the book's own
# text, the executed chapters and the pages written as plain Markdown (intro, how to use) alike.
# Not the glossary (it defines the terms) nor the bibliography (its lines are the papers' titles).
NOT_TERM_CHECKED = {"book/glossary", "book/bibliography"}
TERM_PAGES = [file for file in toc_files() if file not in NOT_TERM_CHECKED]


def page(file: str):
    """The parsed HTML of a built page, or a clear failure naming the build that lacks it."""
    path = HTML / f"{file}.html"
    if not path.exists():
        pytest.fail(f"{path} is missing: build the book first (`make book`), or point BOOK_BUILD at a build")
    return parse_html(path.read_text())


def executed(file: str) -> dict:
    """The executed notebook of a chapter as the build ran it: the cell metadata of its source and,
    per code cell, the outputs the build stored (``_build/jupyter_execute``, or the jupyter-cache
    record whose code is the chapter's, where the build keeps its outputs only there)."""
    import jupytext

    source = BUILD.parent / f"{file}.md"
    notebook = json.loads(jupytext.writes(jupytext.read(source, fmt="md:myst"), fmt="ipynb"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    for cell, shown in zip(code, _stored_outputs(file, [_source(c) for c in code])):
        cell["outputs"] = shown
    return notebook


def _stored_outputs(file: str, sources: list[str]) -> list[list]:
    """The outputs of each code cell (by its source) in the build's executed copies of ``file``."""
    candidates = [BUILD / "jupyter_execute" / f"{file}.ipynb",
                  *sorted((BUILD / ".jupyter_cache" / "executed").glob("*/base.ipynb"))]
    for path in candidates:
        if not path.exists():
            continue
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        if [_source(c) for c in cells] == sources and any(c.get("outputs") for c in cells):
            return [c.get("outputs", []) for c in cells]
    pytest.fail(f"no executed copy of {file} with outputs under {BUILD}: build the book first (`make book`)")


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def article(root):
    """The page's own content (no navigation, no generated run-it-yourself or stand-in boxes)."""
    return next(root.find_all("article"))


# -- prose: the page's text with code, maths, outputs and glued values set aside -------------------

SKIP_CLASSES = {"cell_input", "cell_output", "highlight", "math", "headerlink", "caption-number",
                "run-this-chapter", "standin-banner", "section-number"}
PLACEHOLDER = {"pasted-text": " ⟨GLUED⟩ ", "pasted-inline": " ⟨GLUED⟩ ", "bibtex-citation": " ⟨CITED⟩ ",
               "math": " ⟨MATH⟩ "}
BLOCKS = ("p", "dt", "dd", "th", "td", "li")


def _is_skipped(node) -> bool:
    return node.tag in ("pre", "code", "script", "style") or bool(node.classes & SKIP_CLASSES)


def prose_text(node, *, terms: bool = False) -> str:
    """``node``'s text as a reader reads the prose: glued values, citations and maths become
    placeholders, code and outputs vanish; with ``terms``, glossary links become ⟦their text⟧ and
    other links inside the book (``{doc}``, ``{ref}``: a page's or section's title, where a term
    cannot be linked) become a placeholder."""
    parts = []
    for child in node.children:
        if isinstance(child, str):
            parts.append(child)
            continue
        marker = next((PLACEHOLDER[c] for c in PLACEHOLDER if c in child.classes), None)
        if marker:
            parts.append(marker)
        elif _is_skipped(child):
            continue
        elif terms and child.tag == "a" and "#term-" in child.attrs.get("href", ""):
            parts.append(f"⟦{child.text()}⟧")
        elif terms and child.tag == "a" and "internal" in child.classes:
            parts.append(" ⟨PAGE⟩ ")  # a cross-reference shows a page's title: no place for a term link
        else:
            parts.append(prose_text(child, terms=terms))
    return "".join(parts)


def prose_blocks(root, *, terms: bool = False):
    """The text of every innermost prose block (paragraph, list item, table cell, definition) of
    the article, in reading order, outside code, outputs and generated boxes."""
    for node in article(root).find_all():
        if node.tag not in BLOCKS or _is_skipped(node) or any(_is_skipped(a) for a in node.ancestors()):
            continue
        if any(c.tag in BLOCKS for c in node.find_all()):
            continue  # an outer block: its inner blocks are read on their own
        yield " ".join(prose_text(node, terms=terms).split())


# -- glossary terms -----------------------------------------------------------------------------

# Words the glossary defines that plain English also uses ("the value of", "the key idea", "head of"):
# their first use cannot be told from a plain word by matching, so they are not checked here.
PLAIN_ENGLISH = {"value", "key", "head", "profile", "temperature", "centring", "query"}


def glossary_terms() -> list[str]:
    """The terms book/glossary.md defines (the unindented lines of its {glossary} block)."""
    return list(glossary_definitions())


def term_pattern(term: str) -> re.Pattern:
    """A term as prose writes it: whole words, a plural allowed; acronyms and names keep their case."""
    words = re.escape(term).replace(r"\ ", r"[\s-]+")
    plural = r"(?:es|s)?" if term[-1].isalpha() else ""
    flags = 0 if any(c.isupper() for c in term) else re.I
    return re.compile(rf"(?<![\w-])(⟦)?{words}{plural}(?![\w-])", flags)


def unlinked_first_uses(blocks: list[str], terms: list[str]) -> list[str]:
    """Terms whose first occurrence in ``blocks`` (prose with links as ⟦text⟧) is not a link."""
    text = "\n".join(blocks)
    missing = []
    for term in terms:
        if term in PLAIN_ENGLISH:
            continue
        match = term_pattern(term).search(text)
        if match and not match.group(1):
            start = text.rfind("\n", 0, match.start()) + 1
            context = text[max(start, match.start() - 60):match.end() + 30]
            missing.append(f"{term!r} first used unlinked in: …{context}…")
    return missing


# -- numbers in prose ---------------------------------------------------------------------------

# A number that reads as a measurement: a decimal (0.731), a percentage (88 %), a factor (2.9×), or a
# count of 1,000 or more (42,506). Small whole numbers in prose are the chapter's settings and
# indices ("width 4", "strip 2", "4 heads") and are left to the reader; the ones this check sees
# are results, and a result must come from the run (glued), from a paper (cited) or be worked out
# in maths on the page.
NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d{4,}|\d+\.\d+|\d+(?=\s?%)|\d+(?=×))"
                    r"(?:\s?%|×)?(?![\w])")
CITED = "⟨CITED⟩"
# The allowlist, small and explicit: text that holds digits but states no result.
ALLOWED = re.compile(
    r"\b(?:chapters?|assignments?|appendix|sections?|questions?|fig(?:ure)?\.?|table|python|pytorch|torch|"
    r"numpy|jupyter book|matplotlib|tensorflow|keras)\s+\d+(?:\.\d+)*"  # a place in the course, a version
    r"|\b\d+\s*px\b"                                    # the page layout (1280 px window)
    r"|\b(?:19|20)\d\d\b"                                # a year
    r"|\d+(?:\s*×\s*\d+)+(?!\s*(?:pairs|tokens|parameters))",  # a shape or size setting: 224 × 224
    re.I)


def sentences(block: str):
    return re.split(r"(?<=[.!?;:])\s+(?=[A-Z⟨(])", block)


def unglued_numbers(blocks: list[str], glued_markdown: set[str] = frozenset()) -> list[str]:
    """Measurement-like numbers in prose sentences that are neither glued, cited, in maths or
    code, nor allowlisted (:data:`ALLOWED`). ``{glue:md}`` pastes a computed sentence as plain
    prose, with no mark in the page: numbers in ``glued_markdown`` (those the chapter's glued
    markdown values hold) count as glued."""
    found = []
    for block in blocks:
        for sentence in sentences(block):
            if CITED in sentence:
                continue  # a result quoted from a paper, with its citation
            for number in NUMBER.findall(ALLOWED.sub(" ", sentence)):
                if number.strip() not in glued_markdown:
                    found.append(f"{number.strip()!r} in: {sentence[:160]}")
    return found


def glued_markdown_numbers(notebook: dict) -> set[str]:
    """Every measurement-like number in the markdown values a chapter glued (``{glue:md}``)."""
    numbers = set()
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for kind, value in output.get("data", {}).items():
                if kind.startswith("application/papermill.record/") and kind.endswith("markdown"):
                    text = "".join(value) if isinstance(value, list) else str(value)
                    numbers.update(n.strip() for n in NUMBER.findall(text))
    return numbers


# -- the checks ---------------------------------------------------------------------------------

def test_there_are_chapters_and_terms_to_check():
    assert len(CHAPTERS) >= 10, CHAPTERS
    terms = glossary_terms()
    assert {"attention", "patch", "LayerNorm", "CLS token", "Swin", "shifted windows"} <= set(terms), terms


def _is_hidden_glue(output: dict) -> bool:
    """A ``glue(..., display=False)`` record: stored for the prose, never shown under the cell."""
    keys = list(output.get("data", {}))
    return bool(keys) and all(k.startswith("application/papermill.record/") for k in keys)


def _output_lines(notebook: dict):
    """(cell's first source line, output line) for every line of text a cell's outputs show."""
    for cell in notebook["cells"]:
        first = "".join(cell.get("source", "")).strip().splitlines()[:1] or [""]
        for output in cell.get("outputs", []):
            if _is_hidden_glue(output):
                continue
            if "text" in output:
                text = "".join(output["text"])
            elif "text/html" in output.get("data", {}) or "image/png" in output.get("data", {}):
                continue  # an HTML table or an image is laid out by the browser, not as lines
            else:
                text = "".join(output.get("data", {}).get("text/plain", ""))
            for line in text.splitlines():
                yield first[0], line


@pytest.mark.parametrize("file", CHAPTERS)
def test_no_output_line_is_wider_than_the_column(file):
    wide = [f"{len(line)} chars: {line[:100]!r} (cell: {first[:50]!r})"
            for first, line in _output_lines(executed(file)) if len(line.expandtabs()) > WIDTH]
    assert not wide, (f"{file}: output lines wider than {WIDTH} characters scroll sideways:\n"
                      + "\n".join(wide))


def test_every_page_of_the_books_own_text_is_term_checked():
    assert {"book/intro", "book/how_to_use", "book/setup_check", "book/01_attention_by_hand",
            "book/appendix_fast_small_models"} <= set(TERM_PAGES), TERM_PAGES
    assert set(CHAPTERS) <= set(TERM_PAGES) and not NOT_TERM_CHECKED & set(TERM_PAGES)


@pytest.mark.parametrize("file", TERM_PAGES)
def test_glossary_terms_are_linked_on_first_use(file):
    blocks = list(prose_blocks(page(file), terms=True))
    missing = unlinked_first_uses(blocks, glossary_terms())
    assert not missing, (f"{file}: link each term where the page first uses it ({{term}}`...`):\n"
                         + "\n".join(missing))


def sort_key(term: str) -> str:
    """A glossary's alphabetical order: letters without regard to case (Sphinx's :sorted: too)."""
    return unicodedata.normalize("NFD", term).casefold()


def test_the_glossary_lists_its_terms_in_alphabetical_order():
    terms = glossary_terms()
    wrong = [f"{a!r} before {b!r}" for a, b in zip(terms, terms[1:]) if sort_key(a) > sort_key(b)]
    assert not wrong, "book/glossary.md: put the terms in alphabetical order:\n" + "\n".join(wrong)


def test_the_built_glossary_shows_its_terms_in_alphabetical_order():
    shown = [" ".join(prose_text(dt).split()) for dt in article(page("book/glossary")).find_all("dt")]
    assert len(shown) == len(glossary_terms()), shown
    assert shown == sorted(shown, key=sort_key), shown


@pytest.mark.parametrize("file", CHAPTERS)
def test_figure_captions_sit_on_images_only(file):
    """A captioned cell's rich outputs are exactly one image: a table, a printed value or a
    Colorbar repr beside it would take the caption too (a phantom figure number)."""
    wrong = []
    for cell in executed(file)["cells"]:
        if not cell.get("metadata", {}).get("mystnb", {}).get("figure"):
            continue
        rich = [o for o in cell.get("outputs", []) if not _is_hidden_glue(o)
                and o.get("output_type") in ("display_data", "execute_result")]
        kinds = [sorted(k for k in o.get("data", {}) if k != "text/plain") or ["text/plain"] for o in rich]
        images = [k for k in kinds if any(kind.startswith("image/") for kind in k)]
        if len(rich) != 1 or len(images) != 1:
            wrong.append(f"outputs {kinds} under caption "
                         f"{cell['metadata']['mystnb']['figure'].get('caption', '')[:60]!r}")
    assert not wrong, f"{file}: captioned cells must show one image and nothing else:\n" + "\n".join(wrong)


@pytest.mark.parametrize("file", CHAPTERS)
def test_no_cell_shows_a_stray_return_value_in_its_stored_outputs(file):
    """test_book_built's stray-value check, on the outputs the build stored: in a cache-mode build
    ``_build/jupyter_execute`` holds most chapters without outputs, so that check sees nothing there.
    A glue call, ``ax.axis("off")`` or ``fig.colorbar(...)`` ending a cell must show no value."""
    from tests.support.pages import STRAY_VALUE

    stray = []
    for cell in executed(file)["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/plain", ""))
            if output.get("output_type") == "execute_result" and STRAY_VALUE.search(text):
                stray.append(f"{text[:60]!r} after: {_source(cell).splitlines()[-1][:60]!r}")
    assert not stray, f"{file}: stray values shown:\n" + "\n".join(stray)


@pytest.mark.parametrize("file", CHAPTERS)
def test_no_cell_prints_library_log_noise(file):
    """A log line from a library is not for the reader: matplotlib's "findfont: Font family ...
    not found" (a font list written by another matplotlib install; tools/build_book.py gives the
    kernels their own) once printed twenty lines above a figure."""
    noisy = [f"{text.strip()[:80]!r} in: {_source(cell).splitlines()[0][:50]!r}"
             for cell in executed(file)["cells"] for output in cell.get("outputs", [])
             if output.get("output_type") == "stream"
             and "findfont:" in (text := "".join(output.get("text", "")))]
    assert not noisy, f"{file}: library log lines in the outputs:\n" + "\n".join(noisy)


@pytest.mark.parametrize("file", CHAPTERS)
def test_numbers_in_prose_are_glued_cited_or_maths(file):
    found = unglued_numbers(list(prose_blocks(page(file))), glued_markdown_numbers(executed(file)))
    assert not found, (f"{file}: numbers in prose must be glued ({{glue:text}}), cited, or written as "
                       "maths/code:\n" + "\n".join(found))


# -- glued values read as prose -----------------------------------------------------------------

CSS_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
PASTED = re.compile(r"^(?:span)?\.pasted-text$")  # the class alone, as myst-nb writes its rule
NOT_BOLD = {None, "inherit", "normal", "400", "initial", "unset"}


@functools.lru_cache(maxsize=None)
def _css(path: Path) -> str:
    return path.read_text(errors="replace")


def stylesheets(file: str, root) -> list[Path]:
    """The stylesheets a built page links, in the order the browser applies them."""
    folder = (HTML / file).parent
    return [folder / link.attrs["href"].split("?")[0] for link in root.find_all("link")
            if "stylesheet" in link.attrs.get("rel", "") and "://" not in link.attrs.get("href", "")]


def pasted_text_weight(css_texts: list[str]) -> str | None:
    """The font-weight the last rule for ``span.pasted-text`` (a ``{glue:text}`` value) sets, the
    stylesheets read in order; None when none sets one. Only rules for that class alone are read
    (``span.pasted-text`` or ``.pasted-text``, as myst-nb and the book write them): with no
    context selector they weigh the same, so the last one wins."""
    weight = None
    for css in css_texts:
        for selectors, body in CSS_RULE.findall(re.sub(r"/\*.*?\*/", "", css, flags=re.S)):
            if any(PASTED.search(s.strip()) for s in selectors.split(",")):
                found = re.findall(r"font-weight\s*:\s*([^;]+)", body)
                if found:
                    weight = found[-1].replace("!important", "").strip()
    return weight


def test_glued_values_are_not_set_in_bold():
    """myst-nb's stylesheet makes every ``{glue:text}`` value bold, so a glued verdict sentence
    stood out of its paragraph as if stressed; the book's stylesheet sets it back to the prose's
    weight, on every page that pastes glued text."""
    pasting = [file for file in CHAPTERS if any(True for _ in page(file).find_all("span", "pasted-text"))]
    assert len(pasting) >= 5, pasting  # the chapters glue their numbers into the prose
    for file in pasting:
        sheets = stylesheets(file, page(file))
        missing = [str(s) for s in sheets if not s.exists()]
        assert not missing, f"{file}: linked stylesheets missing from the build: {missing}"
        weight = pasted_text_weight([_css(s) for s in sheets])
        assert weight in NOT_BOLD, (f"{file}: glued text (span.pasted-text) is set in font-weight "
                                    f"{weight!r}; book/assets/course.css must set it back to inherit")


# -- the checks can fail: each one on a small page that breaks it --------------------------------

def test_pasted_text_weight_reads_the_cascade_in_order():
    mystnb = "/* Inline text from `paste` operation */\nspan.pasted-text {\n  font-weight: bold;\n}\n"
    course = ("/* boxes {admonition} */ .run-label { font-weight: bold; }\n"
              "div.cell_output, span.pasted-text { font-weight: inherit; }")
    assert pasted_text_weight([mystnb]) == "bold"
    assert pasted_text_weight([mystnb, course]) == "inherit"
    assert pasted_text_weight([course, mystnb]) == "bold"        # loaded before myst-nb's: lost
    assert pasted_text_weight(["span.pasted-inline img { max-height: 2em; }"]) is None
    assert pasted_text_weight([(Path(__file__).parents[2] / "book/assets/course.css").read_text()]) \
        in NOT_BOLD - {None}



def _paragraphs(html: str) -> list[str]:
    root = parse_html(f"<article>{html}</article>")
    return list(prose_blocks(root, terms=True))


def test_numbers_check_flags_a_bare_number_and_passes_glued_cited_and_maths():
    blocks = _paragraphs(
        '<p>The model reaches <span class="pasted-text">0.731</span> accuracy with '
        '<span class="math">4.5</span> tokens. It has 3,136 position weights, 2.9× more, 12 % of 1000.</p>'
        '<p>The paper reports 88.55 % <span class="bibtex-citation">[x]</span>. '
        'See chapter 5.1 and q1–q5.</p>'
        '<div class="cell_output"><pre>0.12 lines</pre></div><p>Code <code>x[2.5]</code>, a 224 × 224 '
        'image at 1280 px with 4 heads, in 2026, with Python 3.12.</p>')
    found = [item.split()[0] for item in unglued_numbers(blocks)]
    assert found == ["'3,136'", "'2.9×'", "'12", "'1000'"], found
    # a sentence pasted by {glue:md}: its numbers are the run's
    assert [item.split()[0] for item in unglued_numbers(blocks, {"3,136", "1000"})] == ["'2.9×'", "'12"]
    record = {"cells": [{"outputs": [{"data": {
        "application/papermill.record/text/markdown": "The object covers 21.0 % of 1,000 images."}}]}]}
    assert glued_markdown_numbers(record) == {"21.0 %", "1,000"}


def test_term_check_flags_an_unlinked_first_use_only():
    terms = ["attention", "patch", "CNN"]
    linked = _paragraphs('<p><a href="glossary.html#term-attention">attention</a> over patches '
                         '<a href="glossary.html#term-patch">patch</a>; a CNN</p>')
    assert [m.split()[0] for m in unlinked_first_uses(linked, terms)] == ["'patch'", "'CNN'"]
    later = _paragraphs('<p>Attention first.</p><p><a href="glossary.html#term-attention">attention</a></p>')
    assert len(unlinked_first_uses(later, ["attention"])) == 1
    assert unlinked_first_uses(_paragraphs("<p>a cnn is not the acronym</p>"), ["CNN"]) == []
    assert unlinked_first_uses(_paragraphs("<p>the value of x</p>"), ["value"]) == []  # plain English
    # a link to another page shows that page's title: the first use is the next one in prose
    titled = ('<p><a class="reference internal" href="09_swin.html"><span class="doc">Swin: shifted '
              'windows</span></a></p><p>train <a class="reference internal" href="glossary.html#term-swin">'
              '<span class="xref std std-term">Swin</span></a></p>')
    assert unlinked_first_uses(_paragraphs(titled), ["Swin", "shifted windows"]) == []
    unlinked = titled.split("<p>train")[0] + "<p>train Swin</p>"
    assert [m.split()[0] for m in unlinked_first_uses(_paragraphs(unlinked), ["Swin"])] == ["'Swin'"]


def test_term_pattern_matches_plurals_and_hyphenation_but_not_longer_words():
    assert term_pattern("patch").search("two patches")
    assert term_pattern("position code").search("sinusoidal position codes")
    assert term_pattern("self-supervised learning").search("self-supervised learning")
    assert not term_pattern("head").search("heading")
    assert not term_pattern("ViT").search("vitcourse")


def test_stray_value_pattern_sees_glue_values_and_reprs():
    from tests.support.pages import STRAY_VALUE

    for shown in ["'786'", "'2,000'", "<matplotlib.colorbar.Colorbar at 0x7f3a>", "(-0.5, 27.5, 27.5, -0.5)"]:
        assert STRAY_VALUE.search(shown), shown
    assert not STRAY_VALUE.search("   label  accuracy\n0  ViT  0.731")   # a table is not stray
