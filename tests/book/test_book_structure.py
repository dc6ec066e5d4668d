"""The book's sources hang together: every chapter is in the table of contents, the home page's
chapter map links every page, and every "wrong turn" box uses the one course style."""

import re

import yaml

from tests.support.pages import ROOT, toc_files

BOOK = ROOT / "book"
REFERENCE_PAGES = {"book/intro", "book/glossary", "book/bibliography"}


def test_every_book_page_is_in_the_toc_and_exists():
    listed = set(toc_files())
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix() for p in BOOK.glob("*.md")}
    assert listed - on_disk == set(), f"_toc.yml lists missing pages: {listed - on_disk}"
    assert on_disk - listed == set(), f"pages not in _toc.yml (never built): {on_disk - listed}"


def test_home_page_chapter_map_links_every_chapter():
    intro = (BOOK / "intro.md").read_text()
    linked = {f"book/{name}" for name in re.findall(r"\{doc\}`([^`<]+)`", intro)}
    missing = set(toc_files()) - REFERENCE_PAGES - linked
    assert not missing, f"book/intro.md's chapter map does not link: {sorted(missing)}"


def test_wrong_turn_boxes_share_one_style():
    boxes = 0
    for page in BOOK.glob("*.md"):
        text = page.read_text()
        for match in re.finditer(r"^(:{3,})\{admonition\} Wrong turn:.*\n(?P<options>(?::\w+:.*\n)*)", text, re.M):
            boxes += 1
            assert ":class: wrong-turn" in match["options"], f"{page.name}: wrong-turn box without :class: wrong-turn"
        stray = re.findall(r"^.*\{(?:warning|caution|danger)\}.*[Ww]rong turn.*$", text, re.M)
        assert not stray, f"{page.name}: a wrong turn in another admonition style: {stray}"
    assert boxes >= 4, f"expected the by-hand chapters' wrong-turn boxes, found {boxes}"


def test_chapters_are_jupytext_myst_notebooks():
    for page in BOOK.glob("*.md"):
        text = page.read_text()
        if "{code-cell}" not in text:
            continue
        front = yaml.safe_load(text.split("---", 2)[1])
        assert front["jupytext"]["text_representation"]["format_name"] == "myst", page.name
        assert front["kernelspec"]["name"] == "python3", page.name


def test_the_wrong_turn_style_exists_in_the_book_css():
    assert "div.admonition.wrong-turn" in (BOOK / "assets" / "course.css").read_text()


NUMBERED_CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))
EXERCISE = re.compile(
    r"^\*\*Exercise (?P<n>\d+)\.\*\* .+?\n\n"
    r":::\{admonition\} Hint\n:class: dropdown\n.+?\n:::\n\n"
    r":::\{admonition\} Answer\n:class: dropdown\n.+?\n:::\n", re.M | re.S)


def sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.M)


def test_every_chapter_ends_with_summary_and_exercises():
    assert len(NUMBERED_CHAPTERS) == 9
    for page in NUMBERED_CHAPTERS:
        names = sections(page.read_text())
        assert "Summary" in names and "Exercises" in names, f"{page.name}: sections {names}"
        assert names.index("Summary") < names.index("Exercises"), page.name
        assert names.index("Exercises") >= len(names) - 2, f"{page.name}: Exercises is not at the end"


def test_exercises_have_folded_hints_and_answers():
    for page in NUMBERED_CHAPTERS:
        text = page.read_text()
        part = text[text.index("\n## Exercises\n"):]
        part = part[: part.find("\n## ", 1) if "\n## " in part[1:] else len(part)]
        found = [int(m["n"]) for m in EXERCISE.finditer(part)]
        assert 3 <= len(found) <= 5 and found == list(range(1, len(found) + 1)), (page.name, found)
        assert part.count("**Exercise ") == len(found), f"{page.name}: an exercise without folded hint/answer"


def test_every_chapter_links_the_glossary_and_its_assignment():
    for page in NUMBERED_CHAPTERS:
        text = page.read_text()
        assert "{doc}`glossary`" in text, f"{page.name} does not link the glossary"
        linked = re.findall(r"\{download\}`[^`<]*<\.\./exercises/(assignment\d)/\1\.ipynb>`", text)
        assert linked, f"{page.name} does not link its assignment's notebook"
        for name in linked:
            assert (ROOT / "exercises" / name / f"{name}.ipynb").exists(), name


def test_every_chapter_has_a_run_it_yourself_note():
    for page in [*NUMBERED_CHAPTERS, *BOOK.glob("appendix_*.md")]:
        assert "```{run-this-chapter}\n```" in page.read_text(), page.name


EXPERIMENT_CHAPTERS = sorted(BOOK.glob("0[5-9]_*.md"))
FORMATTED_GLUE = re.compile(r"\bglue\(\s*\"[^\"]+\",\s*f\"[^\"]*\{[^{}]*:[^{}]*\}", re.S)


def _code_cells(text):
    return re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, re.S | re.M)


def test_chapters_5_to_9_format_shared_numbers_once():
    """Prose (glue) and tables take a number's text from vitcourse.report, never from their own
    f-string or pandas rounding, so a sentence and the table beside it cannot disagree."""
    assert len(EXPERIMENT_CHAPTERS) == 5
    offences = []
    for page in EXPERIMENT_CHAPTERS:
        text = page.read_text()
        offences += [f"{page.name}: glue with its own number format: {m.group(0)[:70]!r}"
                     for m in FORMATTED_GLUE.finditer(text)]
        for cell in _code_cells(text):
            lines = [line for line in cell.strip().splitlines() if line.strip()]
            if lines and re.search(r"\.round\(\d*\)\s*$|\.round\(\d*\)\.to_frame\(\)\s*$", lines[-1]):
                offences.append(f"{page.name}: a table shown through pandas rounding: {lines[-1].strip()!r}")
    assert not offences, "use vitcourse.report.glue_value / table:\n" + "\n".join(offences)
