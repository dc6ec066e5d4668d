"""The book's Sphinx extension (tools/sphinx_course.py): listings without argument checks, and what the
book says about the course's repository and its downloadable notebooks (``{course-repository}`` and the
run-it-yourself note)."""

import pytest
import sphinx_course  # tools/, on the tests' path (pyproject.toml)
import yaml
from docutils import nodes

from sphinx_course import hide_argument_checks
from tests.support import ROOT

LISTING = '''\
def scale(x, factor):
    """Multiply x by factor."""
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    if x.ndim != 2:
        raise ValueError("x must be 2-D")
    if factor == 1:
        return x
    return x * factor
'''


def test_checks_become_one_comment_and_the_idea_stays():
    shown = hide_argument_checks(LISTING)
    assert "raise" not in shown
    assert shown.count("...  # argument checks") == 1          # two adjacent checks, one note
    assert "    if factor == 1:\n        return x\n    return x * factor" in shown
    compile(shown, "listing", "exec")                          # still Python


def test_a_listing_without_checks_is_untouched():
    code = "class A:\n    def f(self):\n        return 1\n"
    assert hide_argument_checks(code) == code
    assert hide_argument_checks("not python (") == "not python ("



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


# ---------------------------------------------------------------------------------------------
# The run-it-yourself box promises a full-profile section only where the page has one
# ---------------------------------------------------------------------------------------------

def _chapter(with_full_profile: bool):
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    from sphinx_course import run_note

    document = new_document("chapter", get_default_settings(Parser))
    first = nodes.section(ids=["a-chapter"])
    first += nodes.title("", "A chapter")
    first += run_note(docname="book/06_full_vit_cifar")
    document += first
    if with_full_profile:
        section = nodes.section(ids=["the-full-profile-on-a-gpu", "ch6-full-profile"])
        section += nodes.title("", "The full profile on a GPU")
        document += section
    return document


def _box_text(with_full_profile: bool) -> tuple[str, list]:
    from types import SimpleNamespace

    from docutils import nodes

    from sphinx_course import fill_run_notes

    page = _chapter(with_full_profile)
    env = SimpleNamespace(nb_metadata={"book/06_full_vit_cifar": {"exec_data": {"runtime": 125.0}}})
    app = SimpleNamespace(env=env, config=SimpleNamespace(course_repository_url="https://example.org/vit"))
    fill_run_notes(app, page, "book/06_full_vit_cifar")
    box = next(n for n in page.findall(nodes.admonition) if "run-this-chapter" in n["classes"])
    return box.astext(), [r["refuri"] for r in box.findall(nodes.reference)]


def test_the_box_links_the_pages_full_profile_section():
    text, links = _box_text(with_full_profile=True)
    assert "building this book ran this chapter in about 2 min" in text
    assert ("What the full profile runs here, and what it costs where that was measured, is in the "
            "section The full profile on a GPU.") in text
    assert "#the-full-profile-on-a-gpu" in links
    assert "last section" not in text


def test_a_page_without_a_full_profile_section_is_promised_none():
    text, links = _box_text(with_full_profile=False)
    assert "full profile runs here" not in text and "last section" not in text
    assert not any(link.startswith("#") for link in links)
