"""Helpers for tests that read the built book: which pages _toc.yml lists, where their HTML is."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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
