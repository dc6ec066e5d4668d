"""Build the HTML book: `make book` runs this with the course's virtual environment.

Why a wrapper and not a bare `jupyter-book build`:
* Jupyter Book 1 exits 0 when a notebook fails; we build with -W (warnings are errors) and
  myst-nb's raise-on-error, so a failing cell fails the build.
* The jupyter-cache only keys on a chapter's own cells, and Sphinx only re-reads a page whose
  source changed. A change to the vitcourse library or to the profile changes what a chapter
  computes, so both the execution cache and Sphinx's saved environment are cleared then.
* The raw failure is a long Sphinx traceback; we end with one short summary naming the chapter,
  the line of the failing cell in its .md source, and the error.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
CACHE = BUILD / ".jupyter_cache"
DOCTREES = BUILD / ".doctrees"
CACHE_KEY_FILE = BUILD / ".jupyter_cache.key"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def library_cache_key() -> str:
    """Hash of everything outside a chapter that changes what it computes."""
    sys.path.insert(0, str(ROOT))
    from vitcourse.profile import get_profile

    digest = hashlib.sha256(get_profile().name.encode())
    for path in sorted((ROOT / "vitcourse").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


EXTENSION = ROOT / "tools" / "sphinx_course.py"
EXTENSION_KEY_FILE = BUILD / ".sphinx_course.key"


def refresh_cache() -> None:
    key = library_cache_key()
    stale = not CACHE_KEY_FILE.exists() or CACHE_KEY_FILE.read_text() != key
    if stale and (CACHE.exists() or DOCTREES.exists()):
        print("[build_book] library or profile changed since the last build: re-executing every chapter")
        for folder in (CACHE, DOCTREES):
            shutil.rmtree(folder, ignore_errors=True)
    # The book's Sphinx extension shapes every page (listings, run-it-yourself notes) but does
    # not change what a chapter computes: a change re-renders the pages, from the cached runs.
    extension_key = hashlib.sha256(EXTENSION.read_bytes()).hexdigest()
    if EXTENSION_KEY_FILE.exists() and EXTENSION_KEY_FILE.read_text() != extension_key:
        print("[build_book] tools/sphinx_course.py changed: re-rendering every page")
        shutil.rmtree(DOCTREES, ignore_errors=True)
    BUILD.mkdir(exist_ok=True)
    CACHE_KEY_FILE.write_text(key)
    EXTENSION_KEY_FILE.write_text(extension_key)


def failing_cells(log: str) -> list[str]:
    """One line per failed chapter: file, line of the cell in the .md source, and the error.

    Works on both of myst-nb's reports: in cache mode a "<file>: WARNING: Executing notebook
    failed" line comes before the cell; otherwise an "ExecutionError: <file>" line after it.
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
        where = "a cell"
        if path.exists() and source.strip():
            text = path.read_text()
            at = text.find(source.strip())
            if at >= 0:
                start = text.count("\n", 0, at) + 1
                where = f"the cell at line {start}"
                if in_cell:
                    where += f" (error at line {start + int(in_cell[1]) - 1})"
        rel = path.relative_to(ROOT) if path.is_absolute() and ROOT in path.parents else path
        summaries.append(f"  {rel}: {where}: {error or 'see the log above'}")
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


def kernel_environment() -> dict[str, str]:
    """The build's environment, inherited by the chapters' kernels."""
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""), *QUIET_WARNINGS]))
    return env


def main(argv: list[str]) -> int:
    refresh_cache()
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(ROOT), "-W", "--keep-going", *argv]
    print("[build_book]", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=kernel_environment())
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = proc.wait()
    if code != 0:
        log = "".join(lines)
        print("\n[build_book] BUILD FAILED.", file=sys.stderr)
        for summary in failing_cells(log) or other_problems(log):
            print(summary, file=sys.stderr)
        reports = BUILD / "html" / "reports"
        if reports.exists():
            print(f"  full tracebacks: {reports.relative_to(ROOT)}/", file=sys.stderr)
    return code


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main(sys.argv[1:]))
