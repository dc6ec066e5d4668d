"""A failing chapter cell fails the build, and the summary names the chapter, the line and the error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import build_book  # noqa: E402

CHAPTER = textwrap.dedent("""\
    ---
    jupytext:
      text_representation:
        format_name: myst
    kernelspec:
      name: python3
      display_name: Python 3
    ---

    # A chapter

    ```{code-cell} ipython3
    x = 1
    ```

    Some prose.

    ```{code-cell} ipython3
    y = x + 1
    assert y == 3, "two is not three"
    ```
    """)


@pytest.fixture(scope="module", params=["cache", "force"])
def broken_build(request, tmp_path_factory):
    """Build a one-chapter book whose second cell fails: with the course's cache mode, and forced."""
    book = tmp_path_factory.mktemp("book")
    (book / "chapter.md").write_text(CHAPTER)
    (book / "_toc.yml").write_text("format: jb-book\nroot: chapter\n")
    (book / "_config.yml").write_text(textwrap.dedent("""\
        title: broken
        execute:
          execute_notebooks: {mode}
        sphinx:
          config:
            nb_execution_raise_on_error: true
        """).format(mode=request.param))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run([str(jupyter_book), "build", str(book), "-W", "--keep-going"],
                         capture_output=True, text=True, timeout=300)
    return book, run


def test_a_failing_cell_fails_the_build(broken_build):
    _, run = broken_build
    assert run.returncode != 0


def test_summary_names_chapter_line_and_error(broken_build):
    book, run = broken_build
    summaries = build_book.failing_cells(run.stdout + run.stderr)
    assert len(summaries) == 1
    summary = summaries[0]
    assert "chapter.md" in summary
    # The failing cell starts at line 19 of the .md source; the assert is its line 2 (line 20).
    assert "the cell at line 19 (error at line 20)" in summary
    assert "AssertionError: two is not three" in summary


def test_other_problems_are_listed_when_no_cell_failed():
    log = "reading sources...\n/x/book/a.md:3: WARNING: undefined label: 'nowhere'\nbuild finished with problems.\n"
    assert build_book.other_problems(log) == ["  /x/book/a.md:3: WARNING: undefined label: 'nowhere'"]
