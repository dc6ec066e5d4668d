"""A small Sphinx extension for the course book (loaded through _config.yml's local_extensions).

Jupyter Book 1 adds sphinx-thebe even when launch buttons are off: its inline config script is
injected twice on every page (a "THEBE_JS_URL has already been declared" console error) and it
names a CDN URL. The book runs no live code, so the thebe scripts are dropped, and any other
script that ends up on a page twice is kept once.

The theme also starts with an empty colour mode on a first visit and logs "Got invalid theme
mode" as a console error; a one-line script gives it "auto" (the theme's own fallback) first.

Run it yourself: every chapter (a jupytext MyST notebook) is written as a plain .ipynb, without
outputs, next to its source under _build/html/_sources/, and the theme's download menu offers it.
The ``{run-this-chapter}`` directive puts the same link in the page, says that the notebook has no
outputs (running it makes them; the page shows the build's), and gives the course repository
(``course_repository_url`` in _config.yml), the set-up steps, the profile switch, and how long the
chapter took when this book was built. ``{course-repository}`` says where the repository is on any
page (how_to_use). Left empty, the setting makes both ask the reader to get the repository from
whoever gave them the book, rather than link nowhere; the hint to set it is for whoever builds
the book, so it goes to the build log, not onto the page.

Stand-in banners: a chapter whose executed outputs name the offline stand-in data
(``synthetic-fashion`` / ``synthetic-cifar`` / ``synthetic-cifar-clutter``, as every run label
and data note does) gets a
warning box under its title saying that its numbers and figures come from the stand-in, not the
real data set. While any page of the build used it, the theme's announcement bar says so on every
page, and says it truthfully for the page it is on: a page that ran on a stand-in is told that it
did; any other chapter is told that some pages of the build did, that each says so at its top, and
that this page is not one of them; a page that runs no code (the introduction, the glossary) is
told only the first two. The decision is made from what each page's own run printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import ast
import re
import textwrap

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.directives.code import LiteralInclude
from sphinx.util import logging

logger = logging.getLogger(__name__)

DEFAULT_MODE_JS = 'document.documentElement.dataset.mode = document.documentElement.dataset.mode || "auto";'


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script)), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _is_thebe(script) -> bool:
    attributes = getattr(script, "attributes", {}) or {}
    return "thebe" in str(getattr(script, "filename", script) or "") or "THEBE_JS_URL" in str(attributes.get("body", ""))


def clean_page_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if _is_thebe(script) or key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


def is_chapter_notebook(app, docname: str) -> bool:
    """True for pages written as jupytext MyST notebooks (front matter with a kernelspec)."""
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".md" or not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def notebook_url(docname: str) -> str:
    """Where a chapter's .ipynb lives in the built site, relative to the site's root."""
    return f"_sources/{docname}.ipynb"


def write_chapter_notebook(app, pagename, templatename, context, doctree):
    """Write the page's .ipynb (from its jupytext source, no outputs) and offer it for download."""
    if doctree is None or not is_chapter_notebook(app, pagename):
        return
    import jupytext

    notebook = jupytext.read(app.env.doc2path(pagename), fmt="md:myst")
    target = Path(app.outdir) / notebook_url(pagename)
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, target, fmt="ipynb")
    context["ipynb_source"] = f"{pagename}.ipynb"   # the theme's download menu lists it


REAL_NAME = {"synthetic-fashion": "Fashion-MNIST", "synthetic-cifar": "CIFAR-10",
             "synthetic-cifar-clutter": "CIFAR-10"}
# every stand-in's name, the longest first, so "synthetic-cifar-clutter" is not read as "synthetic-cifar"
STANDIN_NAME = re.compile(r"\b(?:" + "|".join(sorted(REAL_NAME, key=len, reverse=True)) + r")\b")
SETUP_PAGE = "book/setup_check"


def _standin_store(env) -> dict:
    if not hasattr(env, "course_standin"):
        env.course_standin = {}
    return env.course_standin


def record_standin(app, doctree):
    """Remember which stand-ins the page's executed outputs name (none: real data or no data)."""
    found = set()
    for node in doctree.findall(nodes.container):
        if "cell_output" in node.get("classes", ()):
            found.update(STANDIN_NAME.findall(node.astext()))
    store = _standin_store(app.env)
    store.pop(app.env.docname, None)
    if found:
        store[app.env.docname] = sorted(found)


def purge_standin(app, env, docname):
    _standin_store(env).pop(docname, None)


def merge_standin(app, env, docnames, other):
    _standin_store(env).update({d: v for d, v in _standin_store(other).items() if d in docnames})


def _standin_words(names) -> tuple[str, str]:
    stand_ins = " and ".join(names)
    real = " and ".join(dict.fromkeys(REAL_NAME[name] for name in names))
    return stand_ins, real


def add_standin_banner(app, doctree, docname):
    names = _standin_store(app.env).get(docname)
    if not names:
        return
    sections = list(doctree.findall(nodes.section))
    if not sections:
        return
    stand_ins, real = _standin_words(names)
    box = nodes.admonition(classes=["warning", "standin-banner"])
    box += nodes.title("", "Built on the offline stand-in data")
    setup = nodes.reference("", "", refuri=app.builder.get_relative_uri(docname, SETUP_PAGE))
    setup += nodes.Text("Setup check")
    box += _paragraph(
        "The machine that built this book did not have the real ", real, " files, so this "
        "page's code ran on the course's synthetic stand-in (", _literal(stand_ins),
        "): deterministic, labelled images drawn by the course's own generator. Every number, "
        "table and figure computed on this page comes from those images and shows the idea at "
        "work; none of them is a ", real, " result. Results from papers are quoted with their "
        "citations. To build with the real data, fetch it first (see ", setup, ").")
    title = sections[0].next_node(nodes.title)
    title.parent.insert(title.parent.index(title) + 1, box)


def announcement_text(store: dict, pagename: str, link: str, runs_code: bool = True) -> str | None:
    """The announcement bar's HTML for ``pagename``, given which pages ran on which stand-ins
    (``store``: docname → stand-in names); None when no page of the build used one.

    True on every page: a page that ran on a stand-in says that *this page* did; any other page
    says that some pages of the build did (each says so under its title), and a page that ran
    code (``runs_code``) adds that it is not one of them, so a chapter that ran on the real data
    never reads that it ran on synthetic images. A page that runs nothing is not told that.
    """
    used = sorted({name for names in store.values() for name in names})
    if not used:
        return None
    how = f'<a href="{link}">How to use the real data</a>.'
    own = store.get(pagename)
    if own:
        _, real = _standin_words(own)
        return (f"This page ran on the course's offline stand-in data, not the real {real}: its "
                f"numbers and figures are from synthetic images. {how}")
    _, real = _standin_words(used)
    this_page = ", and this page is not one of them" if runs_code else ""
    return (f"Some pages of this build ran on the course's offline stand-in data instead of the "
            f"real {real}; each says so at its top{this_page}. {how}")


def standin_announcement(app, pagename, templatename, context, doctree):
    store = _standin_store(app.env)
    if not store:
        return
    runs_code = pagename in store or (doctree is not None and is_chapter_notebook(app, pagename))
    text = announcement_text(store, pagename, context["pathto"](SETUP_PAGE), runs_code)
    if text is not None:
        context["theme_announcement"] = text


NO_REPOSITORY = ("Ask whoever gave you the book for the repository it was built from. A student "
                 "on a course gets the student package from the instructor instead: it runs the "
                 "assignments, not the chapters.")
REPOSITORY_HINT = ("course_repository_url is empty (sphinx: config: in _config.yml): the pages ask "
                   "readers to get the course's repository from whoever gave them the book. Set it "
                   "to the repository's URL to link it from every chapter.")


def log_repository_hint(app) -> None:
    """Tell whoever builds the book (in the build log, not on the page) when no repository is set.

    An info line rather than a warning: the book builds with -W, and an empty setting is a
    legitimate build (the pages then say where to ask).
    """
    if not app.config.course_repository_url:
        logger.info(REPOSITORY_HINT)


def repository_reference(url: str) -> nodes.Node:
    """The course repository as a link, or, with no URL configured, where to ask for it."""
    if url:
        return nodes.reference(url, url, refuri=url)
    return nodes.Text(NO_REPOSITORY)


def repository_paragraph(url: str) -> nodes.paragraph:
    """Where the course's repository is: the chapters' sources, the library, the assignments."""
    if url:
        return _paragraph("The course's repository — the chapters as ", _literal("book/*.md"),
                          ", the ", _literal("vitcourse"), " library, the set-up and the "
                          "student package — is at ", repository_reference(url), ".")
    return _paragraph("The course's repository holds the chapters as ", _literal("book/*.md"),
                      ", the ", _literal("vitcourse"), " library and the set-up. ",
                      repository_reference(url))


NOTEBOOK_NOTE = ("The downloaded notebook has no outputs: the figures, tables and numbers appear "
                 "when you run it. This page shows the outputs of the run that built the book.")


class CourseRepository(Directive):
    """``{course-repository}``: one paragraph saying where the course's repository is."""

    has_content = False

    def run(self):
        return [repository_paragraph(self.state.document.settings.env.config.course_repository_url)]


class run_note(nodes.General, nodes.Element):
    """Placeholder for the run-it-yourself note; filled once the chapter has executed."""


class RunThisChapter(Directive):
    """``{run-this-chapter}``: how to run the page's notebook yourself."""

    has_content = False

    def run(self):
        return [run_note(docname=self.state.document.settings.env.docname)]


def _paragraph(*parts) -> nodes.paragraph:
    para = nodes.paragraph()
    for part in parts:
        para += part if isinstance(part, nodes.Node) else nodes.Text(part)
    return para


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _runtime(app, docname: str) -> float | None:
    data = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("exec_data") or {}
    return data.get("runtime")


def build_machine() -> str:
    """The profile and hardware this build ran the chapters with, in words."""
    import torch

    from vitcourse.profile import get_profile

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{get_profile().name} profile, {os.cpu_count() or 1} CPU cores, {gpu}"


def fill_run_notes(app, doctree, docname):
    for placeholder in doctree.findall(run_note):
        depth = docname.count("/")
        link = nodes.reference("", "", refuri="../" * depth + notebook_url(docname))
        link += _literal(Path(docname).name + ".ipynb")
        box = nodes.admonition(classes=["run-this-chapter", "dropdown"])
        box += nodes.title("", "Run this chapter yourself")
        repo = app.config.course_repository_url
        box += _paragraph("Download this page as a notebook, ", link,
                          " (also in the download menu at the top). ", NOTEBOOK_NOTE)
        if repo:
            box += _paragraph("Or clone the course's repository, ", repository_reference(repo),
                              ": the chapters are the ", _literal("book/*.md"), " files there.")
        else:
            box += _paragraph("Or clone the course's repository, where the chapters are the ",
                              _literal("book/*.md"), " files. ", repository_reference(repo))
        box += _paragraph("Set-up, once: in the repository run ", _literal("make setup"),
                          " (a virtual environment with the pinned packages in ",
                          _literal(".venv"), "), then ", _literal(".venv/bin/jupyter lab"),
                          " and open the notebook with that environment's Python. "
                          "The notebook imports the course's ", _literal("vitcourse"),
                          " package, so run it from the repository.")
        box += _paragraph(_literal("VITCOURSE_PROFILE=quick"), " (the default without a CUDA "
                          "GPU) sizes the course's training runs small, a few epochs on subsets, "
                          "so a laptop runs any chapter in minutes; ",
                          _literal("VITCOURSE_PROFILE=full"), " (the default on a "
                          "CUDA GPU) trains the paper-sized recipes, which needs a GPU. Set it "
                          "before starting Jupyter, e.g. ",
                          _literal("VITCOURSE_PROFILE=quick .venv/bin/jupyter lab"), ".")
        seconds = _runtime(app, docname)
        if seconds is not None:
            took = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"
            box += _paragraph(f"Cost: building this book ran this chapter in about {took} "
                              f"({build_machine()}).")
        section = full_profile_section(doctree)
        if section is not None:
            where = nodes.reference("", "", refuri=f"#{section['ids'][0]}")
            where += nodes.Text(section.next_node(nodes.title).astext())
            box += _paragraph("What the full profile runs here, and what it costs where that was "
                              "measured, is in the section ", where, ".")
        placeholder.replace_self(box)


def full_profile_section(doctree) -> nodes.section | None:
    """The page's section labelled ``(…full-profile)=``: what the full profile runs and costs.

    Only a page that has one promises it, so the run-it-yourself box never points at a section
    that is not there.
    """
    for section in doctree.findall(nodes.section):
        if any(name.endswith("full-profile") for name in section["ids"]):
            return section
    return None


def hide_argument_checks(code: str) -> str:
    """The listing without its argument checks: every ``if …: raise …`` becomes one comment.

    A chapter shows library code for its idea; the checks that turn bad input into a clear
    error stay in the library (and its tests) but would fill the listing.
    """
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return code
    lines = code.split("\n")
    checks = [node for node in ast.walk(tree)
              if isinstance(node, ast.If) and not node.orelse
              and all(isinstance(statement, ast.Raise) for statement in node.body)]
    drop, notes = set(), {}
    for node in checks:
        drop.update(range(node.lineno - 1, node.end_lineno))
    for start in sorted(drop):
        if start - 1 not in drop:                        # the first line of a run of checks
            indent = re.match(r"\s*", lines[start])[0]
            notes[start] = f"{indent}...  # argument checks (see the library's source)"
    if not drop:
        return code
    return "\n".join(notes.get(i, line) for i, line in enumerate(lines) if i not in drop or i in notes)


class ListingInclude(LiteralInclude):
    """``literalinclude`` for Python listings, with :func:`hide_argument_checks` applied."""

    def run(self):
        result = super().run()
        for block in result:
            for literal in block.findall(nodes.literal_block) if isinstance(block, nodes.Element) else []:
                if literal.get("language", "python") not in ("python", "python3", "default"):
                    continue
                shown = hide_argument_checks(literal.astext())
                if shown != literal.astext():
                    literal.rawsource = shown
                    literal.children = [nodes.Text(shown)]
        return result


# -- the reference list: labels as the citations read ("Dosovitskiy et al., 2021") -----------------

def _plain_name(latex: str) -> str:
    """A BibTeX name as text: braces dropped, accents decoded ("J{\\'e}gou" → "Jégou")."""
    import codecs

    import latexcodec  # noqa: F401  (pybtex's own dependency; registers the codec)

    return codecs.decode(latex, "ulatex").replace("{", "").replace("}", "")


def author_year_label(entry) -> str:
    """The label a reference gets in the list, the same words as its author-year citation."""
    people = entry.persons.get("author", [])
    names = [_plain_name(" ".join(person.prelast_names + person.last_names)) for person in people]
    if len(names) > 2:
        who = f"{names[0]} et al."
    elif names:
        who = " and ".join(names)
    else:
        who = _plain_name(entry.fields.get("title", ""))
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


def _register_reference_style() -> None:
    """Register the ``course`` pybtex style (``bibtex_default_style`` in _config.yml): unsrt's
    formatting, author-year labels, and sorting by author as the label reads (case and braces
    ignored, so an organisation written ``{{microsoft}}`` sorts under m)."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle

    class Labels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            seen: dict[str, int] = {}
            for entry in sorted_entries:
                label = author_year_label(entry)
                seen[label] = seen.get(label, 0) + 1
                yield label if seen[label] == 1 else f"{label}{'abcdefghij'[seen[label] - 1]}"

    class Sorting(SortingStyle):
        def person_key(self, person):
            return _plain_name(super().person_key(person)).lower()

    class CourseStyle(Style):
        default_label_style = "course-author-year"
        default_sorting_style = "course-author-year-title"

    register_plugin("pybtex.style.labels", "course-author-year", Labels, force=True)
    register_plugin("pybtex.style.sorting", "course-author-year-title", Sorting, force=True)
    register_plugin("pybtex.style.formatting", "course", CourseStyle, force=True)


def setup(app):
    _register_reference_style()
    app.add_directive("literalinclude", ListingInclude, override=True)
    app.add_js_file(None, body=DEFAULT_MODE_JS, priority=100)
    app.connect("html-page-context", clean_page_scripts, priority=900)
    app.add_config_value("course_repository_url", "", "html")
    app.connect("builder-inited", log_repository_hint)
    app.add_node(run_note)
    app.add_directive("run-this-chapter", RunThisChapter)
    app.add_directive("course-repository", CourseRepository)
    app.connect("doctree-resolved", fill_run_notes)
    app.connect("doctree-read", record_standin)
    app.connect("env-purge-doc", purge_standin)
    app.connect("env-merge-info", merge_standin)
    app.connect("doctree-resolved", add_standin_banner)
    app.connect("html-page-context", standin_announcement)
    # before the theme builds its header buttons (priority 501), so its download menu lists the .ipynb
    app.connect("html-page-context", write_chapter_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
