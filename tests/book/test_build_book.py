"""tools/build_book.py: chapters execute side by side into myst-nb's cache before Sphinx reads them,
an unchanged chapter does not run, and a failing cell fails the build naming the chapter, the line and
the error. The builds use a throwaway book of three small pages in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import book_build  # bench/, on the tests' path (pyproject.toml)
import build_book  # tools/, on the tests' path
import chapter_runs
import ci_time  # bench/

from tests.support import ROOT

TOOLS = ROOT / "tools"

FRONT_MATTER = textwrap.dedent("""\
    ---
    jupytext:
      text_representation:
        format_name: myst
    kernelspec:
      name: python3
      display_name: Python 3
    ---
    """)

CHAPTER = FRONT_MATTER + textwrap.dedent("""\

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


# A page whose one cell logs each run (start and end times) to $RUNLOG, and, when $BARRIER is set,
# waits until both pages have started: run one after another, the first would wait in vain.
TIMED_CHAPTER = FRONT_MATTER + textwrap.dedent("""\

    # Chapter {name}

    {prose}

    ```{{code-cell}} ipython3
    import os, pathlib, time
    log = pathlib.Path(os.environ["RUNLOG"])
    with log.open("a") as f:
        f.write(f"{name} start {{time.time()}}\\n")
    if os.environ.get("BARRIER"):
        started = pathlib.Path(os.environ["BARRIER"])
        started.mkdir(exist_ok=True)
        (started / "{name}").touch()
        deadline = time.time() + 120
        while len(list(started.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.1)
    with log.open("a") as f:
        f.write(f"{name} end {{time.time()}}\\n")
    print("answer-{name}", {answer})
    ```
    """)


def write_chapter(book: Path, name: str, answer: int = 42, prose: str = "Some prose.") -> None:
    (book / f"{name}.md").write_text(TIMED_CHAPTER.format(name=name, answer=answer, prose=prose))


def wrapper(book: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """tools/build_book.py on ``book``, as `make book` runs it."""
    return subprocess.run([sys.executable, str(TOOLS / "build_book.py"), "--book", str(book), *args],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def runs_in(log: Path) -> list[tuple[str, str, float]]:
    """(chapter, "start"/"end", time) for every line the chapters wrote to the run log."""
    if not log.exists():
        return []
    return [(name, what, float(at)) for name, what, at in map(str.split, log.read_text().splitlines())]


def report(book: Path) -> dict[str, dict]:
    """The last build's report, by chapter."""
    data = json.loads((book / "_build" / chapter_runs.REPORT_FILE).read_text())
    return {run["chapter"]: run for run in data["chapters"]}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Three builds of a tiny book: cold (with the barrier), again unchanged, then after edits
    (prose of a, code of b). Each entry: (the wrapper's run, its report, the run log's lines so far,
    the text of the built pages a and b).
    """
    book = tmp_path_factory.mktemp("tiny_book")
    write_chapter(book, "a")
    write_chapter(book, "b")
    (book / "c.md").write_text("# Plain page\n\nNo code here.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: a\nchapters:\n  - file: b\n  - file: c\n")
    (book / "_config.yml").write_text("title: tiny\nexecute:\n  execute_notebooks: cache\n"
                                      "sphinx:\n  config:\n    nb_execution_raise_on_error: true\n")
    log = book / "runlog"
    results = []
    for step in ("cold", "again", "edited"):
        if step == "edited":
            write_chapter(book, "a", prose="Other prose, same code.")
            write_chapter(book, "b", answer=43)
        env = {"RUNLOG": str(log), **({"BARRIER": str(book / "started")} if step == "cold" else {})}
        run = wrapper(book, "--jobs", "2", env=env)
        pages = {name: (book / "_build" / "html" / f"{name}.html").read_text() for name in "ab"
                 if (book / "_build" / "html" / f"{name}.html").exists()}
        results.append((run, report(book), runs_in(log), pages))
    return book, results


@pytest.mark.slow
def test_cold_build_runs_each_chapter_once_side_by_side(builds):
    _, [(run, chapters, log, pages), *_] = builds
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # Once each: the pre-pass ran them and the Sphinx build found them in the cache.
    # Each kernel's CPU seconds are read once it has exited: some, and no more than it could use.
    assert all(0 < chapters[c]["cpu_seconds"] < chapters[c]["seconds"] + 5 for c in ("a.md", "b.md"))
    assert sorted((name, what) for name, what, _ in log) == [
        ("a", "end"), ("a", "start"), ("b", "end"), ("b", "start")]
    times = {(name, what): at for name, what, at in log}
    assert max(times["a", "start"], times["b", "start"]) < min(times["a", "end"], times["b", "end"])
    assert {name: run["status"] for name, run in chapters.items()} == {
        "a.md": "ran", "b.md": "ran", "c.md": "not a notebook"}
    assert "WARNING: the Sphinx build executed" not in run.stdout
    # The pages show the outputs of the pre-pass's runs.
    assert "answer-a 42" in pages["a"] and "answer-b 42" in pages["b"]


@pytest.mark.slow
def test_the_per_chapter_table_ends_the_log(builds):
    _, [(run, *_), *_] = builds
    table = run.stdout[run.stdout.index("[build_book] chapters (seconds"):]
    assert re.search(r"^a\.md +\d+\.\d +\d+\.\d  ran$", table, re.M)  # wall and CPU seconds
    assert re.search(r"^c\.md +not a notebook$", table, re.M)
    assert re.search(r"^executed now +\d+\.\d +\d+\.\d  2 chapter\(s\)$", table, re.M)
    assert re.search(r"set-up [\d.]+ s, chapters [\d.]+ s, Sphinx [\d.]+ s, total [\d.]+ s", table)


@pytest.mark.slow
def test_a_rebuild_executes_nothing(builds):
    _, [(_, first, log_before, _), (run, chapters, log_after, _), _] = builds
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert log_after == log_before
    assert {name: r["status"] for name, r in chapters.items()} == {
        "a.md": "cached", "b.md": "cached", "c.md": "not a notebook"}
    assert chapters["a.md"]["seconds"] == pytest.approx(first["a.md"]["seconds"])
    assert "executing" not in run.stdout.split("[build_book] /")[0]


@pytest.mark.slow
def test_a_prose_edit_runs_nothing_and_a_code_edit_runs_only_its_chapter(builds):
    _, [*_, (_, _, log_before, _), (run, chapters, log_after, pages)] = builds
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [name for name, what, _ in log_after[len(log_before):]] == ["b", "b"]
    assert chapters["a.md"]["status"] == "cached" and chapters["b.md"]["status"] == "ran"
    assert "Other prose, same code." in pages["a"] and "answer-a 42" in pages["a"]
    assert "answer-b 43" in pages["b"]
    assert "WARNING: the Sphinx build executed" not in run.stdout


@pytest.mark.slow
def test_a_failing_chapter_fails_the_build_before_sphinx(tmp_path):
    write_chapter(tmp_path, "good")
    (tmp_path / "broken.md").write_text(CHAPTER)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: good\nchapters:\n  - file: broken\n")
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: cache\n"
                                          "sphinx:\n  config:\n    nb_execution_raise_on_error: true\n")
    run = wrapper(tmp_path, env={"RUNLOG": str(tmp_path / "runlog")})
    assert run.returncode == 1
    tail = run.stderr[run.stderr.index("BUILD FAILED"):]
    assert "  broken.md: the cell at line 19 (error at line 20): AssertionError: two is not three" in tail
    assert "jupyter-book build" not in run.stdout  # Sphinx never started: nothing runs twice
    assert 'assert y == 3, "two is not three"' in run.stdout  # the traceback is in the log
    # The good chapter ran and is cached: fixing the broken one will not re-run it.
    assert report(tmp_path)["good.md"]["status"] == "ran"
    done, todo = chapter_runs.plan(chapter_runs.book_config(tmp_path))
    assert [path.name for path in todo] == ["broken.md"] and [r.status for r in done] == ["cached"]


def test_jobs_must_be_at_least_one(tmp_path, capsys):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: a\n")
    with pytest.raises(SystemExit):
        build_book.parse_args(["--jobs", "0", "--book", str(tmp_path)])
    assert "--jobs must be at least 1 (got 0)" in capsys.readouterr().err


def test_book_must_hold_a_toc(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_book.parse_args(["--book", str(tmp_path)])
    assert f"--book {tmp_path}: no _toc.yml there" in capsys.readouterr().err


def test_unknown_options_go_to_jupyter_book(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: a\n")
    args, rest = build_book.parse_args(["--book", str(tmp_path), "--jobs", "3", "--all"])
    assert (args.jobs, args.book, rest) == (3, tmp_path.resolve(), ["--all"])


def test_longest_chapters_start_first(tmp_path):
    paths = [tmp_path / name for name in ("a.md", "b.md", "new.md", "c.md")]
    times = {"a.md": 5.0, "b.md": 600.0, "c.md": 40.0}
    assert [p.name for p in chapter_runs.longest_first(paths, tmp_path, times)] == [
        "new.md", "b.md", "c.md", "a.md"]


def test_a_fresh_clone_starts_the_usual_longest_chapters_first(tmp_path):
    usual = tmp_path / "usual.json"
    usual.write_text(json.dumps({"a.md": 500.0, "b.md": 10.0}))
    build = tmp_path / "_build"
    times = chapter_runs.load_times(build, usual)  # no build folder yet: the committed seconds order them
    paths = [tmp_path / name for name in ("b.md", "a.md")]
    assert [p.name for p in chapter_runs.longest_first(paths, tmp_path, times)] == ["a.md", "b.md"]
    chapter_runs.save_times(build, [chapter_runs.Run("b.md", "ran", 900.0)], times)
    assert chapter_runs.load_times(build, usual) == {"a.md": 500.0, "b.md": 900.0}  # this build's own win
    usual.write_text("not json")
    assert chapter_runs.load_times(build, usual) == {"a.md": 500.0, "b.md": 900.0}


def test_the_committed_usual_seconds_name_chapters_of_the_book():
    usual = chapter_runs.read_times(chapter_runs.USUAL_TIMES)
    chapters = {p.relative_to(ROOT).as_posix() for p in chapter_runs.toc_sources(chapter_runs.book_config(ROOT))}
    assert usual and set(usual) <= chapters, sorted(set(usual) - chapters)


WORKER_THEN_PARENT_DIES = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
import chapter_runs

def report_pid():
    return os.getpid()

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=chapter_runs._worker_setup,
                             initargs=(dict(os.environ), os.getpid())) as pool:
        print(pool.submit(report_pid).result(), flush=True)
        pool.submit(time.sleep, 600)
        os.kill(os.getpid(), 9)  # the build is killed while a chapter runs
"""


def test_a_killed_build_leaves_no_worker_behind(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(WORKER_THEN_PARENT_DIES)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TOOLS), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == -9, run.stderr
    worker = int(run.stdout.split()[0])
    for _ in range(100):  # the worker gets SIGTERM when its parent dies
        if not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text():
            break
        time.sleep(0.1)
    else:
        os.kill(worker, 9)
        raise AssertionError(f"worker {worker} outlived the killed build")


def test_kernels_share_the_cores_only_when_unset():
    cores = os.cpu_count() or 1
    assert chapter_runs.kernel_threads({}, 2)["OMP_NUM_THREADS"] == str(max(1, cores // 2))
    assert "OMP_NUM_THREADS" not in chapter_runs.kernel_threads({}, 1)
    assert chapter_runs.kernel_threads({"OMP_NUM_THREADS": "4"}, 2)["OMP_NUM_THREADS"] == "4"


def test_sphinx_executions_are_the_new_cache_records():
    assert build_book.executed_by_sphinx({1: "/b/a.md"}, {1: "/b/a.md", 3: "/b/c.md"}) == ["/b/c.md"]
    assert build_book.executed_by_sphinx({1: "/b/a.md"}, {1: "/b/a.md"}) == []


def test_books_not_in_cache_mode_are_left_to_sphinx(tmp_path):
    write_chapter(tmp_path, "a")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: a\n")
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: force\n")
    done, todo = chapter_runs.plan(chapter_runs.book_config(tmp_path))
    assert todo == [] and [(r.chapter, r.status) for r in done] == [("a.md", "left to Sphinx (force mode)")]


def test_the_bench_says_which_chapter_costs_too_much_cpu():
    runs = [chapter_runs.Run("book/07_attention_maps_dino.md", "ran", 260.0, cpu_seconds=230.0),
            chapter_runs.Run("book/08_deit.md", "ran", 250.0, cpu_seconds=245.5)]
    rows = {"idle": (runs, {"setup": 5, "chapters": 300.0, "sphinx": 60, "total": 365.0}, 0)}
    lines = book_build.verdicts(rows)
    assert [line.split()[-1] for line in lines] == ["met", "met", "met", "MISSED"]
    assert "08_deit.md   245.5 CPU-s" in lines[-1]
    table = book_build.comparison(rows)
    assert re.search(r"^book/07_attention_maps_dino\.md +230\.0$", table, re.M)  # the CPU block
    assert len({len(line) for line in table.splitlines()}) == 1


def test_the_bench_says_which_targets_are_missed():
    runs = [chapter_runs.Run("a.md", "ran", 300.0)]
    rows = {"idle": (runs, {"setup": 5, "chapters": 500.0, "sphinx": 60, "total": 565.0}, 0),
            "hog": (runs, {"setup": 9, "chapters": 900.0, "sphinx": 100, "total": 1009.0}, 1)}
    assert [line.split()[-1] for line in book_build.verdicts(rows)] == ["met", "MISSED", "MISSED"]
    table = book_build.comparison(rows)
    assert re.search(r"^a\.md +300\.0 +300\.0$", table, re.M)
    assert re.search(r"^cold build +565\.0 +1009\.0$", table, re.M)
    assert len({len(line) for line in table.splitlines()}) == 1  # columns line up


def test_the_ci_bench_reads_cis_own_last_line_and_says_which_targets_are_missed():
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert 'echo "CI: finished in $(( (SECONDS - start) / 60 )) min' in ci_script
    match = ci_time.FINISHED.search("tests...\nCI: finished in 25 min 7 s (exit code 0)\n")
    assert match and (int(match[1]), int(match[2]), int(match[3])) == (25, 7, 0)
    rows = {"idle": {"seconds": 1507.0, "exit_code": 0}, "hog": {"seconds": 2900.0, "exit_code": 2}}
    lines = ci_time.verdicts(rows)
    assert [line.split()[-1] for line in lines] == ["MISSED", "MISSED"]  # 25.1 min; a failed run
    assert lines[0].startswith("idle:  25.1 min, exit 0; target <= 25 min")
    assert ci_time.verdicts({"hog": {"seconds": 2900.0, "exit_code": 0}})[0].endswith("met")


def test_the_benches_hog_row_runs_one_busy_process_per_core_only_while_it_is_measured(capsys):
    import argparse

    import psutil
    from load_rows import parse_rows, under_each_load

    def hogs() -> int:
        return sum("while True: pass" in " ".join(child.cmdline())
                   for child in psutil.Process().children() if child.is_running())

    seen = {row: hogs() for row in under_each_load(["idle", "hog"], "bench", "a measurement")}
    assert seen == {"idle": 0, "hog": os.cpu_count()} and hogs() == 0
    assert "[bench] a measurement, hog beside" in capsys.readouterr().out
    parser = argparse.ArgumentParser(prog="bench")
    assert parse_rows(parser, " hog , idle") == ["hog", "idle"]
    with pytest.raises(SystemExit):
        parse_rows(parser, "idle,busy")
    assert "--rows idle,busy: the rows are idle and hog" in capsys.readouterr().err
