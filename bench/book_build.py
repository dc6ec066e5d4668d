"""A cold `make book` (venv already set up), timed per chapter: idle, and beside one CPU hog per core.

Each row copies the book (the repository without _build, .venv, .git, node_modules) into a
temporary folder and builds it there with tools/build_book.py, so the execution cache is empty and
your own _build is untouched. The "hog" row keeps one `while True: pass` process per core busy for
the whole build. Prints the seconds of every chapter in each row, the build's phases, and the
targets of issue 29 (met or missed):

    cold build <= 10 min idle, its chapter execution <= 8 min idle, cold build <= 20 min beside the hogs;
    chapters 7 and 8 each <= 4 CPU-minutes (their kernels' CPU seconds, in the idle row).

    python bench/book_build.py [--book FOLDER] [--jobs N] [--rows idle,hog] [--json OUT]

Timings mean something only on a machine nobody else is using.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tools")]

import chapter_runs  # noqa: E402
from load_rows import parse_rows, under_each_load  # noqa: E402

SKIP = shutil.ignore_patterns("_build", ".venv", ".git", "node_modules", ".pytest_cache", "__pycache__")
# (row, phase, limit in seconds): the targets of issue 29 this script checks.
TARGETS = [("idle", "total", 600), ("idle", "chapters", 480), ("hog", "total", 1200)]
# (row, chapter, limit in CPU seconds of its kernel): the two slow chapters' budget in the quick profile.
CHAPTER_CPU_TARGETS = [("idle", "book/07_attention_maps_dino.md", 240), ("idle", "book/08_deit.md", 240)]


def cold_build(book: Path, jobs: int | None) -> tuple[list[chapter_runs.Run], dict[str, float], int]:
    """Build a fresh copy of ``book`` with tools/build_book.py: its runs, phase seconds and exit code."""
    with tempfile.TemporaryDirectory(prefix="book_build_") as tmp:
        copy = Path(tmp) / "book"
        shutil.copytree(book, copy, ignore=SKIP, symlinks=True)
        paths = [str(copy), os.environ.get("PYTHONPATH")]  # the copy's vitcourse, in the kernels too
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        argv = [sys.executable, str(REPO_ROOT / "tools" / "build_book.py"), "--book", str(copy)]
        argv += ["--jobs", str(jobs)] if jobs else []
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        return chapter_runs.read_report(copy / "_build")


def comparison(rows: dict[str, tuple[list, dict, int]]) -> str:
    """Per-chapter seconds, one column per row, then the phases of each build."""
    names = list(rows)
    chapters = [run.chapter for run in next(iter(rows.values()))[0]]
    width = max(len(name) for name in chapters + ["chapters (wall)"])
    lines = [f"{'chapter':<{width}}" + "".join(f"  {name:>9}" for name in names)]
    for i, chapter in enumerate(chapters):
        cells = []
        for runs, _, _ in rows.values():
            run = runs[i] if i < len(runs) else None
            known = run is not None and run.seconds is not None
            cells.append(f"  {run.seconds:9.1f}" if known else f"  {'-':>9}")
        lines.append(f"{chapter:<{width}}" + "".join(cells))
    if any(run.cpu_seconds is not None for runs, _, _ in rows.values() for run in runs):
        lines.append(f"{'kernel CPU seconds':<{width}}" + "".join(f"  {'':>9}" for _ in names))
        for i, chapter in enumerate(chapters):
            cells = []
            for runs, _, _ in rows.values():
                cpu = runs[i].cpu_seconds if i < len(runs) else None
                cells.append(f"  {cpu:9.1f}" if cpu is not None else f"  {'-':>9}")
            lines.append(f"{chapter:<{width}}" + "".join(cells))
    phases = [("setup", "set-up"), ("chapters", "chapters (wall)"), ("sphinx", "Sphinx (pages)"),
              ("total", "cold build")]
    for phase, label in phases:
        values = "".join(f"  {seconds[phase]:9.1f}" for _, seconds, _ in rows.values())
        lines.append(f"{label:<{width}}{values}")
    return "\n".join(lines)


def verdicts(rows: dict[str, tuple[list, dict, int]]) -> list[str]:
    """One line per target of a measured row: the measured seconds, the limit, met or missed."""
    lines = []
    for row, phase, limit in TARGETS:
        if row in rows:
            seconds = rows[row][1][phase]
            ok = seconds <= limit and rows[row][2] == 0
            verdict = "met" if ok else "MISSED"
            lines.append(f"{row:>4} {phase:<8} {seconds:7.1f} s  (target <= {limit} s)  {verdict}")
    for row, chapter, limit in CHAPTER_CPU_TARGETS:
        run = next((r for r in rows[row][0] if r.chapter == chapter), None) if row in rows else None
        if run is not None and run.cpu_seconds is not None:
            verdict = "met" if run.cpu_seconds <= limit and run.status == "ran" else "MISSED"
            lines.append(f"{row:>4} {chapter} {run.cpu_seconds:7.1f} CPU-s  (target <= {limit})  {verdict}")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=REPO_ROOT,
                        help="the book's folder (default: this repository)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="chapters side by side (default: build_book's, one per core)")
    parser.add_argument("--rows", default="idle,hog", help="comma-separated rows to measure: idle, hog")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    args.rows = parse_rows(parser, args.rows)
    if not (args.book / "_toc.yml").is_file():
        parser.error(f"--book {args.book}: no _toc.yml there; give the folder holding the book's _toc.yml")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rows = {}
    for row in under_each_load(args.rows, "book_build", "cold build"):
        rows[row] = cold_build(args.book.resolve(), args.jobs)
    print(comparison(rows))
    print("\n".join(verdicts(rows)))
    if args.json:
        measured = {row: {"chapters": {run.chapter: run.seconds for run in runs}, "seconds": seconds,
                          "exit_code": code} for row, (runs, seconds, code) in rows.items()}
        args.json.write_text(json.dumps(measured, indent=1))
    return 0 if all(code == 0 for _, _, code in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
