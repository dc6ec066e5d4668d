"""Execute the book's chapters side by side, before Sphinx reads them, into myst-nb's jupyter-cache.

Jupyter Book 1 executes one chapter after another while Sphinx reads them. Here every chapter that
is not in the cache yet runs first, one per core (``jobs``), through myst-nb's own cache client
(``NotebookClientCache``): each chapter is read exactly as myst-nb reads it (same reader, same
kernel aliases, same per-notebook overrides), so the cache records written here are the ones the
Sphinx build then looks up, and no chapter runs twice. An unchanged chapter is found in the cache
and does not run at all. A failing chapter is reported with the line of its failing cell.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path, PurePosixPath

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMES_FILE = "chapter_times.json"  # under the build folder: the last run of every chapter
# Committed beside this script: each chapter's seconds in a recent quick-profile build, so a fresh
# clone (no build folder yet) also starts its longest chapters first. Only orders the chapters.
USUAL_TIMES = Path(__file__).with_name("chapter_seconds.json")
REPORT_FILE = "book_build.json"  # under the build folder: the last build's chapters and phase times


@dataclass
class Run:
    """What happened to one chapter in the pre-pass.

    status: "ran" (executed now), "cached" (found in the cache), "failed", "excluded" (by the
    execution exclude patterns), "not a notebook" (plain Markdown, nothing to execute), or
    "left to Sphinx (<mode> mode)" when the book's execution mode is not "cache".
    seconds: execution time of this run ("ran", "failed") or of the cached run ("cached").
    cpu_seconds: CPU seconds the chapter's kernel used in this run (user + system, read when the
    kernel has exited); None when it did not run now.
    cell_line / error_line: 1-based lines in the chapter's source of the failing cell and of the
    line that raised (0 when unknown); error: the last line of the error ("Error: message");
    traceback: the failing cell and its traceback, as myst-nb reports them.
    """

    chapter: str
    status: str
    seconds: float | None = None
    cell_line: int = 0
    error_line: int = 0
    error: str = ""
    traceback: str = ""
    cpu_seconds: float | None = None


def _children_cpu() -> float:
    """CPU seconds of this process's exited children (its chapters' kernels), user + system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class BookConfig:
    """myst's and myst-nb's configuration as the Sphinx build of ``root`` sees them."""

    root: Path
    md_config: object  # myst_parser MdParserConfig
    nb_config: object  # myst_nb NbParserConfig (execution_cache_path absolute)
    toc: Path


@functools.lru_cache(maxsize=8)
def book_config(root: Path) -> BookConfig:
    """Read ``root/_config.yml`` through Jupyter Book into the configs myst-nb builds from it.

    The cache path is resolved against ``root`` (build_book runs jupyter-book from there); when
    unset it is ``_build/.jupyter_cache``, myst-nb's default next to the html output.
    """
    from jupyter_book.config import get_final_config
    from myst_nb.core.config import NbParserConfig
    from myst_parser.config.main import MdParserConfig

    root = root.resolve()
    user_yaml = root / "_config.yml"
    sphinx, _ = get_final_config(user_yaml=user_yaml if user_yaml.exists() else None,
                                 cli_config={"latex_individualpages": False}, sourcedir=root)
    md_values = {name: sphinx[f"myst_{name}"] for name, _, field in MdParserConfig().as_triple()
                 if f"myst_{name}" in sphinx and "sphinx" not in field.metadata.get("omit", [])}
    nb_values = {name: sphinx[f"nb_{name}"] for name, _, field in NbParserConfig().as_triple()
                 if f"nb_{name}" in sphinx and not field.metadata.get("sphinx_exclude")}
    cache = Path(nb_values.get("execution_cache_path") or "_build/.jupyter_cache")
    nb_values["execution_cache_path"] = str(cache if cache.is_absolute() else root / cache)
    toc = Path(sphinx.get("external_toc_path") or "_toc.yml")
    return BookConfig(root, MdParserConfig(**md_values), NbParserConfig(**nb_values),
                      toc if toc.is_absolute() else root / toc)


def toc_sources(config: BookConfig) -> list[Path]:
    """The source file of every page in the table of contents, in its order."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    suffixes = [".md", ".ipynb", *config.nb_config.custom_formats]
    sources = []
    for docname in parse_toc_yaml(config.toc):
        found = [config.root / f"{docname}{suffix}" for suffix in suffixes
                 if (config.root / f"{docname}{suffix}").is_file()]
        sources.extend(found[:1])
    return sources


def read_chapter(config: BookConfig, path: Path):
    """The chapter as myst-nb's Sphinx parser reads it: (notebook, nb_config, read_fmt), or None.

    Mirrors ``myst_nb.sphinx_.Parser.parse`` up to ``create_client``: the same reader, the kernel
    name aliases and the notebook-level ``mystnb`` overrides (these change the cache key).
    """
    from myst_nb.core.nb_to_tokens import nb_node_to_dict
    from myst_nb.core.read import create_nb_reader

    text = path.read_text(encoding="utf8")
    nb_config = config.nb_config
    reader = create_nb_reader(str(path), config.md_config, nb_config, text)
    if reader is None:
        return None
    notebook = reader.read(text)
    kernel = notebook.metadata.get("kernelspec", {}).get("name", None)
    for pattern, alias in (nb_config.kernel_rgx_aliases or {}).items() if kernel else ():
        if re.fullmatch(pattern, kernel):
            notebook.metadata["kernelspec"]["name"] = alias
            break
    if nb_config.metadata_key in notebook.metadata:
        overrides = nb_node_to_dict(notebook.metadata[nb_config.metadata_key])
        overrides.pop("output_folder", None)
        nb_config = nb_config.copy(**overrides)
    return notebook, nb_config, reader.read_fmt


def excluded(nb_config, path: Path) -> bool:
    """True when myst-nb's execution exclude patterns skip this chapter."""
    posix = PurePosixPath(path.as_posix())
    return any(posix.match(pattern) for pattern in nb_config.execution_excludepatterns or ())


def cached_seconds(cache, notebook) -> float | None:
    """The execution seconds of the chapter's cache record, or None when it is not cached."""
    try:
        record = cache.match_cache_notebook(notebook)
    except KeyError:
        return None
    return float(record.data.get("execution_seconds") or 0.0)


class _Log:
    """The logger myst-nb's execution client writes to (info, warning, debug with a subtype)."""

    def __init__(self):
        self.lines: list[str] = []

    def _keep(self, msg, *args, **kwargs):
        self.lines.append(str(msg))

    info = warning = debug = error = _keep


def failed_cell(notebook) -> tuple[int, int, str]:
    """(cell index, 1-based line inside the cell, "Error: message") of the cell that raised."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else ():
            if output.get("output_type") == "error":
                trace = ANSI.sub("", "\n".join(output.get("traceback", [])))
                at = re.findall(r"^Cell In\[\d+\], line (\d+)", trace, re.M)
                return index, int(at[-1]) if at else 0, f"{output.ename}: {output.evalue}".rstrip(": ")
    return -1, 0, ""


def execute_chapter(root: str, source: str) -> Run:
    """Worker: run one chapter through myst-nb's cache client, which records it in the cache."""
    from myst_nb.core.execute import ExecutionError, NotebookClientCache

    config = book_config(Path(root))
    path = Path(source)
    notebook, nb_config, read_fmt = read_chapter(config, path)
    name = path.relative_to(config.root).as_posix()
    start, cpu_before = time.perf_counter(), _children_cpu()
    try:
        with NotebookClientCache(notebook, path, nb_config, _Log(), read_fmt=read_fmt) as client:
            result = client.exec_metadata
    except ExecutionError as exc:
        cause = exc.__cause__
        result = {"succeeded": False, "runtime": time.perf_counter() - start,
                  "error": type(cause).__name__, "traceback": str(cause)}
    cpu = _children_cpu() - cpu_before  # the kernel has exited and been reaped by now
    if result["succeeded"]:
        return Run(name, "ran", result["runtime"], cpu_seconds=cpu)
    return replace(failure(name, notebook, result), cpu_seconds=cpu)


def failure(name: str, notebook, result: dict) -> Run:
    """The Run of a failed chapter: its failing cell's line in the source, and the error."""
    index, in_cell, error = failed_cell(notebook)
    if not error:  # a timeout has no error output: the exception's first line says it
        message = (result.get("traceback") or "").strip().splitlines()
        error = f"{result.get('error')}: {message[0] if message else ''}".rstrip(": ")
    source_map = notebook.metadata.get("source_map") or []
    cell_line = source_map[index] + 1 if 0 <= index < len(source_map) else 0
    error_line = cell_line + in_cell - 1 if cell_line and in_cell else 0
    return Run(name, "failed", result.get("runtime"), cell_line, error_line, error,
               ANSI.sub("", result.get("traceback") or ""))


def _worker_setup(env: dict[str, str], build_pid: int | None = None) -> None:
    """Give the chapters' kernels, started from this worker, the build's environment; die with the build."""
    die_with_parent(build_pid)
    os.environ.clear()
    os.environ.update(env)


def die_with_parent(parent: int | None = None) -> bool:
    """Ask Linux to end this process (SIGTERM) when the process that started it dies.

    A build that is killed then leaves no worker behind, and a worker's kernel, which polls its
    parent (ipykernel's parent poller, JPY_PARENT_PID), ends with it. Returns False where the
    request is not available (not Linux); exits at once when ``parent`` is already gone.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:  # it died before the request was made
        os._exit(1)
    return True


def kernel_threads(env: dict[str, str], jobs: int) -> dict[str, str]:
    """The environment with the cores shared among ``jobs`` kernels (OMP_NUM_THREADS, if unset)."""
    env = dict(env)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def plan(config: BookConfig) -> tuple[list[Run], list[Path]]:
    """Runs of the chapters that need no execution, and the sources of those that do."""
    from jupyter_cache import get_cache

    cache = get_cache(config.nb_config.execution_cache_path)  # creates the database, once
    done, todo = [], []
    for path in toc_sources(config):
        name = path.relative_to(config.root).as_posix()
        read = read_chapter(config, path)
        if read is None:
            done.append(Run(name, "not a notebook"))
        elif excluded(read[1], path):
            done.append(Run(name, "excluded"))
        elif read[1].execution_mode != "cache":  # no cache to fill: Sphinx runs it (or not)
            done.append(Run(name, f"left to Sphinx ({read[1].execution_mode} mode)"))
        elif (seconds := cached_seconds(cache, read[0])) is not None:
            done.append(Run(name, "cached", seconds))
        else:
            todo.append(path)
    return done, todo


def longest_first(todo: list[Path], root: Path, times: dict[str, float]) -> list[Path]:
    """The chapters to run, the slowest of their last runs first (unknown ones count as slowest)."""
    return sorted(todo, key=lambda p: -times.get(p.relative_to(root).as_posix(), float("inf")))


def run_chapters(root: Path, build: Path, jobs: int, env: dict[str, str], say=print) -> list[Run]:
    """Execute every chapter not in the cache, ``jobs`` at a time; one Run per page, in toc order.

    Every chapter runs even when another fails (its result is cached for the next build).
    """
    config = book_config(root)
    done, todo = plan(config)
    times = load_times(build)
    todo = longest_first(todo, config.root, times)
    if todo:
        jobs = max(1, min(jobs, len(todo)))
        say(f"[build_book] executing {len(todo)} chapter(s), {jobs} at a time")
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_setup,
                                 initargs=(kernel_threads(env, jobs), os.getpid())) as pool:
            futures = [pool.submit(execute_chapter, str(config.root), str(path)) for path in todo]
            for future in as_completed(futures):
                run = future.result()
                done.append(run)
                say(f"[build_book] {run.chapter}: {run.status} in {run.seconds or 0:.1f} s")
                if run.traceback:
                    say(run.traceback)
    order = {path.relative_to(config.root).as_posix(): i for i, path in enumerate(toc_sources(config))}
    done.sort(key=lambda run: order.get(run.chapter, len(order)))
    save_times(build, done, times)
    return done


def read_times(path: Path) -> dict[str, float]:
    """{chapter: seconds} from a JSON file; empty when it is missing or unreadable."""
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def load_times(build: Path, usual: Path = USUAL_TIMES) -> dict[str, float]:
    """Each chapter's last execution seconds (kept across cache clears), for the run order.

    A chapter this build folder has never run takes its usual seconds (``usual``, committed).
    """
    return read_times(usual) | read_times(build / TIMES_FILE)


def save_times(build: Path, runs: list[Run], times: dict[str, float]) -> None:
    """Remember the seconds of the chapters that ran or are cached."""
    times = dict(times)
    times.update({run.chapter: run.seconds for run in runs if run.status in ("ran", "cached")})
    build.mkdir(parents=True, exist_ok=True)
    (build / TIMES_FILE).write_text(json.dumps(times, indent=1, sort_keys=True))


def table(runs: list[Run], wall: float | None = None) -> str:
    """The per-chapter table: seconds and what happened, with the executed total (and wall time)."""
    width = max([len(run.chapter) for run in runs] + [len("executed now")])
    lines = [f"{'chapter':<{width}}  {'seconds':>8}  {'CPU s':>8}  status",
             f"{'-' * width}  {'-' * 8}  {'-' * 8}  ------"]

    def cell(value):
        return f"{value:8.1f}" if value is not None else f"{'':8}"

    for run in runs:
        lines.append(f"{run.chapter:<{width}}  {cell(run.seconds)}  {cell(run.cpu_seconds)}  {run.status}")
    now = [run for run in runs if run.status in ("ran", "failed")]
    cpu = sum(run.cpu_seconds or 0.0 for run in now)
    lines.append(f"{'executed now':<{width}}  {sum(run.seconds or 0.0 for run in now):8.1f}  "
                 f"{cpu:8.1f}  {len(now)} chapter(s)")
    if wall is not None:
        lines.append(f"{'wall time':<{width}}  {wall:8.1f}  {'':8}  (chapters side by side)")
    return "\n".join(lines)


def cache_records(root: Path) -> dict[int, str]:
    """The execution cache's records of ``root``'s book: {record id: chapter path}."""
    from jupyter_cache import get_cache

    cache = get_cache(book_config(root).nb_config.execution_cache_path)
    return {record.pk: record.uri for record in cache.list_cache_records()}


def write_report(build: Path, runs: list[Run], seconds: dict[str, float], code: int) -> None:
    """The last build's chapters and phase seconds (set-up, chapters, sphinx, total) and exit code."""
    report = {"chapters": [asdict(run) for run in runs], "seconds": seconds, "exit_code": code}
    (build / REPORT_FILE).write_text(json.dumps(report, indent=1))


def read_report(build: Path) -> tuple[list[Run], dict[str, float], int]:
    """The runs, phase seconds and exit code of the last build of the book whose build folder is ``build``."""
    path = build / REPORT_FILE
    if not path.is_file():
        raise SystemExit(f"{path}: no build report; build the book first (make book)")
    report = json.loads(path.read_text())
    return [Run(**run) for run in report["chapters"]], report["seconds"], report["exit_code"]


def phases(seconds: dict[str, float]) -> str:
    """One line: the seconds of each phase of a build."""
    return (f"set-up {seconds['setup']:.1f} s, chapters {seconds['chapters']:.1f} s, "
            f"Sphinx {seconds['sphinx']:.1f} s, total {seconds['total']:.1f} s")


if __name__ == "__main__":  # the last build's table: tools/chapter_runs.py [BOOK_FOLDER]
    import sys

    book = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    runs, seconds, code = read_report(book / "_build")
    print(f"Last book build (exit code {code}): per-chapter seconds")
    print(table(runs, seconds["chapters"]))
    print(phases(seconds))
