"""Promises the book's sources make, checked without a build (issue 30, class 6):

* the course's own words (strip, seat, slot) are in the glossary with the standard word for each;
* no chapter lays out its own figures (the book's style does: vitcourse.plotting);
* each assignment's header table states exactly the questions and points its graded cells hold,
  and the intro names each assignment's questions as the solutions number them.
"""

from __future__ import annotations

import re

import pytest

from tests.support.pages import ROOT, glossary_definitions

@pytest.mark.parametrize("word, standard", [("strip", "token"), ("seat", "position"), ("slot", "feature")])
def test_the_books_own_words_map_to_standard_ones(word, standard):
    definitions = glossary_definitions()
    assert word in definitions, f"book/glossary.md does not define the course's own word {word!r}"
    text = definitions[word]
    assert "Standard word" in text and standard in text, f"{word!r} does not name its standard word: {text}"


def test_no_chapter_lays_out_its_own_figures():
    """The style's constrained layout lays every figure out: a chapter calling tight_layout works
    against it (vitcourse.plotting ignores the call), so the call is noise a reader copies."""
    calls = [f"{page.name}:{number}" for page in sorted((ROOT / "book").glob("*.md"))
             for number, line in enumerate(page.read_text().splitlines(), 1) if "tight_layout(" in line]
    assert not calls, "remove tight_layout (the book's style lays figures out): " + ", ".join(calls)


def _graded_points(assignment: str) -> dict[str, dict[str, int]]:
    """{question: {"visible"/"hidden"/"written": points}} from the nbgrader cells of the solution."""
    import jupytext

    notebook = jupytext.read(ROOT / "solutions" / assignment / f"{assignment}.md")
    points: dict[str, dict[str, int]] = {}
    for cell in notebook.cells:
        grader = cell.metadata.get("nbgrader", {})
        if not grader.get("grade"):
            continue
        question, kind = re.fullmatch(r"(q\d+)[a-z]?_(visible|hidden|written)", grader["grade_id"]).groups()
        points.setdefault(question, {}).setdefault(kind, 0)
        points[question][kind] += int(grader["points"])
    return points


def _stated_points(assignment: str) -> dict[str, dict[str, int]]:
    """The same, as the solution's header table states it (| qN | … | visible | hidden | points |)."""
    text = (ROOT / "solutions" / assignment / f"{assignment}.md").read_text()
    stated: dict[str, dict[str, int]] = {}
    for row in re.findall(r"^\| (q\d+(?: written)?) \|[^\n]*$", text, re.M):
        cells = [c.strip() for c in re.search(rf"^\| {row} \|(.*)\|$", text, re.M)[1].split("|")]
        question = row.split()[0]
        if row.endswith("written"):
            stated.setdefault(question, {})["written"] = int(cells[-1])
        else:
            visible, hidden, total = (int(c) for c in cells[-3:])
            assert visible + hidden == total, f"{assignment} {row}: {visible} + {hidden} != {total}"
            stated.setdefault(question, {}).update(visible=visible, hidden=hidden)
    return stated


@pytest.mark.parametrize("assignment", ["assignment1", "assignment2", "assignment3"])
def test_each_assignment_states_the_questions_and_points_it_grades(assignment):
    assert _stated_points(assignment) == _graded_points(assignment)


def test_the_intro_names_each_assignments_questions():
    """intro.md's "questions qA–qB" for each assignment are the questions its solution grades."""
    intro = (ROOT / "book" / "intro.md").read_text()
    for number in (1, 2, 3):
        graded = sorted(_graded_points(f"assignment{number}"), key=lambda q: int(q[1:]))
        stated = re.search(rf"[Aa]ssignment {number} \((?:questions )?(q\d+)–(q\d+)", intro)
        assert stated, f"intro.md does not say which questions assignment {number} holds"
        assert (stated[1], stated[2]) == (graded[0], graded[-1]), (number, stated.groups(), graded)
