"""What the book says about the course's repository and its downloadable notebooks
(tools/sphinx_course.py: ``{course-repository}`` and the run-it-yourself note)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from docutils import nodes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import sphinx_course  # noqa: E402


def test_a_configured_repository_is_a_link():
    url = "https://example.org/course/vit"
    paragraph = sphinx_course.repository_paragraph(url)
    links = list(paragraph.findall(nodes.reference))
    assert [link["refuri"] for link in links] == [url]
    assert "book/*.md" in paragraph.astext() and "is at " + url in paragraph.astext()


def test_an_empty_setting_says_so_instead_of_linking_nowhere():
    paragraph = sphinx_course.repository_paragraph("")
    text = paragraph.astext()
    assert not list(paragraph.findall(nodes.reference))
    assert "names no repository" in text and "course_repository_url" in text and "ask" in text


def test_the_notebook_note_says_the_download_has_no_outputs():
    assert "has no outputs" in sphinx_course.NOTEBOOK_NOTE
    assert "when you run it" in sphinx_course.NOTEBOOK_NOTE


@pytest.mark.parametrize("page", ["book/how_to_use.md", "book/intro.md"])
def test_a_reader_page_says_where_the_repository_is(page):
    text = (ROOT / page).read_text()
    if page.endswith("how_to_use.md"):
        assert "```{course-repository}\n```" in text
        assert "no outputs" in text
    else:
        assert "{doc}`how_to_use`" in text


def test_the_setting_exists_and_is_documented():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "course_repository_url" in config["sphinx"]["config"]
    comment = (ROOT / "_config.yml").read_text().split("course_repository_url:")[0].rsplit("\n\n", 1)[-1]
    assert "names no repository" in comment or "no repository" in comment


def test_the_run_note_promises_no_cost_a_chapter_does_not_state():
    """The box once said "chapters 6–9 say what the full profile costs on a GPU"; only one did."""
    source = (ROOT / "tools" / "sphinx_course.py").read_text()
    assert "chapters 6–9 say" not in source and "say what the full profile costs" not in source
