"""The book's Sphinx extension: listings without argument checks."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from sphinx_course import hide_argument_checks  # noqa: E402

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
