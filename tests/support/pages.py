"""Helpers for tests that read the built book: which pages _toc.yml lists, where their HTML is."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


def toc_files() -> list[str]:
    """Every file _toc.yml lists (root first), without extension, e.g. 'book/intro'."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def built_page(file: str) -> Path:
    page = HTML / f"{file}.html"
    if not page.exists():
        raise FileNotFoundError(f"{page.relative_to(ROOT)} is missing: build the book first with `make book`.")
    return page


# -- a small HTML tree, enough to read the built pages (stdlib only) ---------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None"):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str | None = None, cls: str | None = None):
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    yield child
                yield from child.find_all(tag, cls)

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


def parse_html(text: str) -> Node:
    from html.parser import HTMLParser

    root = Node("document", {}, None)

    class Builder(HTMLParser):
        current = root

        def handle_starttag(self, tag, attrs):
            node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
            self.current.children.append(node)
            if tag not in VOID:
                self.current = node

        def handle_startendtag(self, tag, attrs):
            self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

        def handle_endtag(self, tag):
            node = self.current
            while node is not None and node.tag != tag:
                node = node.parent
            if node is not None and node.parent is not None:
                self.current = node.parent

        def handle_data(self, data):
            self.current.children.append(data)

    Builder(convert_charrefs=True).feed(text)
    return root


def is_notebook_page(file: str) -> bool:
    """True for pages written as jupytext MyST notebooks (the executed chapters)."""
    text = (ROOT / f"{file}.md").read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def glossary_definitions() -> dict[str, str]:
    """{term: its definition, on one line} from book/glossary.md's {glossary} block."""
    text = (ROOT / "book" / "glossary.md").read_text()
    block = text.split("```{glossary}", 1)[1].split("```", 1)[0]
    definitions, term = {}, None
    for line in block.splitlines():
        if line.strip() and not line.startswith(" "):
            term = line.strip()
            definitions[term] = ""
        elif term:
            definitions[term] += " " + line.strip()
    return definitions


# A value a cell shows by accident: the return value of a glue call (a quoted number), of
# `ax.axis("off")` (axis limits), of `fig.colorbar(...)` or a Text (a matplotlib repr).
STRAY_VALUE = re.compile(r"^(?:<matplotlib\.[\w.]+ (?:object )?at 0x|\[?<matplotlib\.|Text\(-?\d|'[^'\n]*'$|\(-?\d+\.\d+, -?\d+\.\d+, )")


def doctree_with_outputs(outputs: list[str]):
    """A doctree like myst-nb's for a chapter: a titled section with one ``cell_output``
    container per output text (what tools/sphinx_course.py reads to see which data a page ran)."""
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    document = new_document("chapter", get_default_settings(Parser))
    section = nodes.section(ids=["chapter"])
    section += nodes.title("", "A chapter")
    for text in outputs:
        output = nodes.container(classes=["cell_output"])
        output += nodes.literal_block(text, text)
        section += output
    document += section
    return document
