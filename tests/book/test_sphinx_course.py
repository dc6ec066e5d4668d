"""The book's Sphinx extension (tools/sphinx_course.py): listings without argument checks, and what the
book says about the course's repository and its downloadable notebooks (``{course-repository}`` and the
run-it-yourself note)."""

import pytest
import sphinx_course  # tools/, on the tests' path (pyproject.toml)
import yaml
from docutils import nodes

from sphinx_course import hide_argument_checks
from tests.support import ROOT
from tests.support.pages import doctree_with_outputs

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


def test_an_empty_setting_tells_readers_where_to_ask_and_shows_no_setting():
    paragraph = sphinx_course.repository_paragraph("")
    text = paragraph.astext()
    assert not list(paragraph.findall(nodes.reference))
    assert "Ask whoever gave you the book for the repository" in text
    assert "student on a course gets the student package from the instructor instead" in text
    # the build setting is for whoever builds the book: not on the reader's page
    assert "course_repository_url" not in text and "_config.yml" not in text
    assert "setting" not in text and "names no repository" not in text


class _Log:
    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, message, *args, **kwargs):
        self.infos.append(message)

    def warning(self, message, *args, **kwargs):
        self.warnings.append(message)


@pytest.mark.parametrize("url", ["", "https://example.org/vit"])
def test_the_hint_to_set_the_repository_goes_to_the_build_log(monkeypatch, url):
    from types import SimpleNamespace

    log = _Log()
    monkeypatch.setattr(sphinx_course, "logger", log)
    sphinx_course.log_repository_hint(SimpleNamespace(config=SimpleNamespace(course_repository_url=url)))
    assert not log.warnings                    # the book builds with -W: a warning would fail it
    if url:
        assert log.infos == []
    else:
        assert len(log.infos) == 1
        assert "course_repository_url" in log.infos[0] and "_config.yml" in log.infos[0]


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
    assert "whoever gave them the book" in comment and "build log" in comment


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


def _box_text(with_full_profile: bool, url: str = "https://example.org/vit") -> tuple[str, list]:
    from types import SimpleNamespace

    from docutils import nodes

    from sphinx_course import fill_run_notes

    page = _chapter(with_full_profile)
    env = SimpleNamespace(nb_metadata={"book/06_full_vit_cifar": {"exec_data": {"runtime": 125.0}}})
    app = SimpleNamespace(env=env, config=SimpleNamespace(course_repository_url=url))
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


def test_the_box_without_a_repository_asks_and_names_no_setting():
    text, links = _box_text(with_full_profile=False, url="")
    assert "Or clone the course's repository" in text
    assert "Ask whoever gave you the book for the repository" in text
    assert "course_repository_url" not in text and "setting" not in text
    assert not any(link.startswith("http") for link in links)


# ---------------------------------------------------------------------------------------------
# The announcement bar is true on the page it is on
# ---------------------------------------------------------------------------------------------

def _announcements(pages: dict[str, list[str]]) -> dict[str, str | None]:
    """Record every page's outputs as a build does, then the announcement bar of each page."""
    from types import SimpleNamespace

    env = SimpleNamespace(docname="", doc2path=lambda docname: str(ROOT / f"{docname}.md"))
    app = SimpleNamespace(env=env)
    for docname, outputs in pages.items():
        env.docname = docname
        sphinx_course.record_standin(app, doctree_with_outputs(outputs))
    bars = {}
    for docname in pages:
        context = {"pathto": lambda name: f"{name}.html"}
        sphinx_course.standin_announcement(app, docname, "page.html", context, nodes.document(None, None))
        bars[docname] = context.get("theme_announcement")
    return bars


REAL_FASHION = "profile=quick · device=cpu · data=fashion-mnist"
STANDIN_CIFAR = "profile=quick · device=cpu · data=synthetic-cifar"


def test_a_page_that_ran_real_data_is_not_told_it_ran_a_stand_in():
    bars = _announcements({"book/05_first_vit": [REAL_FASHION],
                           "book/06_full_vit_cifar": [STANDIN_CIFAR],
                           "book/glossary": []})
    for page in ("book/05_first_vit", "book/glossary"):
        text = bars[page]
        assert text is not None and "offline stand-in data" in text    # the build's news, still
        assert "This page ran" not in text and "This build ran" not in text
        assert "Some pages of this build ran" in text and "each says so at its top" in text
        assert "CIFAR-10" in text
        assert "Fashion-MNIST" not in text                 # no page ran Fashion-MNIST's stand-in
    # a chapter that ran real data is told it is not one of them; the glossary runs nothing
    assert "this page is not one of them" in bars["book/05_first_vit"]
    assert "not one of them" not in bars["book/glossary"]
    assert bars["book/glossary"].split(". <a")[0].endswith("each says so at its top")
    own = bars["book/06_full_vit_cifar"]
    assert own.startswith("This page ran on the course's offline stand-in data, not the real CIFAR-10")
    assert "Some pages" not in own
    for text in bars.values():
        assert 'href="book/setup_check.html"' in text


def test_a_stand_in_page_names_only_its_own_real_data_set():
    bars = _announcements({"book/05_first_vit": ["data=synthetic-fashion"],
                           "book/06_full_vit_cifar": [STANDIN_CIFAR],
                           "book/intro": []})
    assert "not the real Fashion-MNIST:" in bars["book/05_first_vit"]
    assert "CIFAR-10" not in bars["book/05_first_vit"]
    assert "not the real CIFAR-10:" in bars["book/06_full_vit_cifar"]
    assert "instead of the real" in bars["book/intro"]
    assert "Fashion-MNIST" in bars["book/intro"] and "CIFAR-10" in bars["book/intro"]


def test_a_build_without_stand_ins_has_no_announcement():
    bars = _announcements({"book/05_first_vit": [REAL_FASHION], "book/intro": []})
    assert bars == {"book/05_first_vit": None, "book/intro": None}


def test_the_reference_list_is_labelled_and_sorted_as_the_citations_read():
    from pybtex.database import parse_string
    from pybtex.plugin import find_plugin

    sphinx_course._register_reference_style()
    bib = parse_string(r"""
        @misc{repo, title = {Code}, author = {{microsoft}}, year = {2021}}
        @misc{paper, title = {P}, author = {Liu, Ze and Lin, Yutong and Cao, Yue}, year = {2021}}
        @misc{two, title = {T}, author = {Abnar, Samira and Zuidema, Willem}, year = {2020}}
        @misc{one, title = {O}, author = {J{\'e}gou, Herv{\'e}}, year = {2019}}
        @misc{same, title = {Q}, author = {Liu, Ze and Lin, Yutong and Hu, Han}, year = {2021}}
    """, "bibtex")
    style = find_plugin("pybtex.style.formatting", "course")()
    labels = [(entry.key, entry.label) for entry in style.format_entries(bib.entries.values())]
    assert labels == [("two", "Abnar and Zuidema, 2020"), ("one", "Jégou, 2019"),
                      ("paper", "Liu et al., 2021"), ("same", "Liu et al., 2021b"),
                      ("repo", "microsoft, 2021")]
    assert "bibtex_default_style: course" in (ROOT / "_config.yml").read_text()
