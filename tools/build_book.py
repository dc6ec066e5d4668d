"""Build the HTML book: `make book` runs this with the course's virtual environment.

Why a wrapper and not a bare `jupyter-book build`:
* Jupyter Book 1 exits 0 when a notebook fails; we build with -W (warnings are errors) and
  myst-nb's raise-on-error, so a failing cell fails the build.
* The jupyter-cache only keys on a chapter's own cells, and Sphinx only re-reads a page whose
  source changed. A change to the vitcourse library, to the profile or to which real data sets
  are on the machine changes what a chapter computes, so both the execution cache and Sphinx's
  saved environment are cleared then.
* Jupyter Book 1 executes one chapter after another while Sphinx reads them. The chapters not in
  the cache run first, side by side, one per core (``--jobs N``), into the same jupyter-cache
  records the build then reuses (tools/chapter_runs.py): Sphinx only reads the cached runs.
* The raw failure is a long Sphinx traceback; we end with one short summary naming the chapter,
  the line of the failing cell in its .md source, and the error.
* Every build ends with the per-chapter table (seconds, run or cached), also written to
  _build/book_build.json for bench/book_build.py.

Usage: tools/build_book.py [--jobs N] [--book FOLDER] [jupyter-book build options...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chapter_runs  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXTENSION = ROOT / "tools" / "sphinx_course.py"


def library_cache_key() -> str:
    """Hash of everything outside a chapter that changes what it computes."""
    sys.path.insert(0, str(ROOT))
    from vitcourse.profile import get_profile

    from vitcourse.data import SOURCES, locate

    digest = hashlib.sha256(get_profile().name.encode())
    # Which real data sets are on this machine: installing one changes what the chapters run on.
    for source in SOURCES.values():
        digest.update(f"{source.key}={locate(source)}".encode())
    for path in sorted((ROOT / "vitcourse").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def refresh_cache(book: Path) -> None:
    """Clear the execution cache and Sphinx's saved pages of ``book`` when what they hold is stale."""
    build = book / "_build"
    cache = Path(chapter_runs.book_config(book).nb_config.execution_cache_path)
    doctrees = build / ".doctrees"
    cache_key_file, extension_key_file = build / ".jupyter_cache.key", build / ".sphinx_course.key"
    key = library_cache_key()
    stale = not cache_key_file.exists() or cache_key_file.read_text() != key
    if stale and (cache.exists() or doctrees.exists()):
        print("[build_book] library or profile changed since the last build: re-executing every chapter")
        for folder in (cache, doctrees):
            shutil.rmtree(folder, ignore_errors=True)
    # The book's Sphinx extension shapes every page (listings, run-it-yourself notes) but does
    # not change what a chapter computes: a change re-renders the pages, from the cached runs.
    extension_key = hashlib.sha256(EXTENSION.read_bytes()).hexdigest()
    if extension_key_file.exists() and extension_key_file.read_text() != extension_key:
        print("[build_book] tools/sphinx_course.py changed: re-rendering every page")
        shutil.rmtree(doctrees, ignore_errors=True)
    build.mkdir(exist_ok=True)
    cache_key_file.write_text(key)
    extension_key_file.write_text(extension_key)


def summary(chapter: str, cell_line: int, error_line: int, error: str) -> str:
    """One line naming the chapter, the line of the failing cell in its source, and the error."""
    where = f"the cell at line {cell_line}" if cell_line else "a cell"
    if cell_line and error_line:
        where += f" (error at line {error_line})"
    return f"  {chapter}: {where}: {error or 'see the log above'}"


def failing_cells(log: str, root: Path = ROOT) -> list[str]:
    """One line per failed chapter: file, line of the cell in the .md source, and the error.

    Paths are shown relative to ``root`` (the book). Works on both of myst-nb's reports: in
    cache mode a "<file>: WARNING: Executing notebook failed" line comes before the cell;
    otherwise an "ExecutionError: <file>" line after it.
    """
    log = ANSI.sub("", log)
    block = re.compile(
        r"An error occurred while executing the following cell:\n-+\n(?P<source>.*?)\n-+\n"
        r"(?P<rest>.*?)(?:\[mystnb\.exec\]|\nThe above exception|\Z)", re.S)
    summaries, seen = [], set()
    for match in block.finditer(log):
        before = re.findall(r"(\S+\.md): WARNING: Executing notebook failed", log[:match.start()])
        after = re.search(r"ExecutionError: (\S+\.md)", log[match.end():])
        path = Path(before[-1] if before else after[1] if after else "?")
        source, rest = match["source"], match["rest"]
        if (path, source) in seen:  # Sphinx repeats the traceback at the end of the log
            continue
        seen.add((path, source))
        error = next((line for line in reversed(rest.splitlines())
                      if re.match(r"^\w+(Error|Exception|Interrupt)\b", line)), "")
        in_cell = re.search(r"^Cell In\[\d+\], line (\d+)", rest, re.M)
        start = 0
        if path.exists() and source.strip():
            text = path.read_text()
            at = text.find(source.strip())
            start = text.count("\n", 0, at) + 1 if at >= 0 else 0
        rel = path.relative_to(root) if path.is_absolute() and root in path.parents else path
        summaries.append(summary(str(rel), start, start + int(in_cell[1]) - 1 if in_cell else 0, error))
    return summaries


def other_problems(log: str) -> list[str]:
    """Warnings (errors under -W) and exceptions, when no notebook cell failed."""
    lines = [line.strip() for line in ANSI.sub("", log).splitlines()]
    found = [f"  {line}" for line in lines
             if "WARNING:" in line or "ERROR:" in line or re.match(r"^\w+(Error|Exception):", line)]
    return found[-10:] or ["  (no failing cell or warning found: see the log above)"]


# The chapters say which data they use (``data.note``, and a label on every result); the
# loader's SyntheticDataWarning would repeat that as a warning box naming the kernel's temporary
# file, so the kernels of the build ignore it. Other warnings still show (and fail the checks).
QUIET_WARNINGS = ("ignore:Fashion-MNIST is not available", "ignore:CIFAR-10 is not available")


def kernel_environment(book: Path) -> dict[str, str]:
    """The build's environment, inherited by the chapters' kernels.

    Matplotlib keeps its font list in the build folder (unless MPLCONFIGDIR is set): a list in the
    user's shared cache, written by another matplotlib install (a system one, or a deleted
    checkout's), can lack the fonts this one ships, and every mathtext label then prints
    "findfont: Font family ... not found" into the chapter.
    """
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""), *QUIET_WARNINGS]))
    env.setdefault("MPLCONFIGDIR", str(book / "_build" / ".matplotlib"))
    return env


def default_jobs() -> int:
    """One chapter per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options (--jobs, --book); everything else goes to `jupyter-book build`."""
    parser = argparse.ArgumentParser(description="Build the HTML book (see the module docstring).")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="chapters executed side by side (default: one per core)")
    parser.add_argument("--book", type=Path, default=ROOT,
                        help="the book's folder (default: this repository)")
    args, rest = parser.parse_known_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1 (got {args.jobs})")
    if not (args.book / "_toc.yml").is_file():
        parser.error(f"--book {args.book}: no _toc.yml there; give the folder holding the book's _toc.yml")
    args.book = args.book.resolve()
    return args, rest


def sphinx_build(book: Path, options: list[str]) -> tuple[int, str]:
    """Run `jupyter-book build` on ``book`` (echoing its log); its exit code and log."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(book), "-W", "--keep-going", *options]
    print("[build_book]", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=book, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=kernel_environment(book))
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    return proc.wait(), "".join(lines)


def executed_by_sphinx(before: dict[int, str], after: dict[int, str]) -> list[str]:
    """Chapters the Sphinx build executed and cached itself (none when the pre-pass filled the cache).

    before / after: the cache's records ({id: chapter path}) around the Sphinx build.
    """
    return sorted(uri for pk, uri in after.items() if pk not in before)


def fail(lines: list[str], book: Path) -> None:
    """The short failure summary, at the end of the log."""
    print("\n[build_book] BUILD FAILED.", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    reports = book / "_build" / "html" / "reports"
    if reports.exists():
        print(f"  full tracebacks: {reports}/", file=sys.stderr)


def main(argv: list[str]) -> int:
    args, options = parse_args(argv)
    book, build, start = args.book, args.book / "_build", time.perf_counter()
    refresh_cache(book)
    timings = {"setup": time.perf_counter() - start}
    runs = chapter_runs.run_chapters(book, build, args.jobs, kernel_environment(book))
    timings["chapters"] = time.perf_counter() - start - timings["setup"]
    failed = [run for run in runs if run.status == "failed"]
    code, log = 1, ""
    if not failed:
        before = chapter_runs.cache_records(book)
        code, log = sphinx_build(book, options)
        for uri in executed_by_sphinx(before, chapter_runs.cache_records(book)):
            print(f"[build_book] WARNING: the Sphinx build executed {uri} itself: the pre-pass and "
                  "myst-nb disagree on its cache key (tools/chapter_runs.py read_chapter)")
    timings["total"] = time.perf_counter() - start
    timings["sphinx"] = timings["total"] - timings["chapters"] - timings["setup"]
    print("\n[build_book] chapters (seconds of each run; 'cached': not run now):")
    print(chapter_runs.table(runs, timings["chapters"]))
    print(f"[build_book] {chapter_runs.phases(timings)}")
    chapter_runs.write_report(build, runs, timings, code)
    if failed:
        fail([summary(r.chapter, r.cell_line, r.error_line, r.error) for r in failed], book)
    elif code != 0:
        fail(failing_cells(log, book) or other_problems(log), book)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
