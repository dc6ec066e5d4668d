"""`validate`: the student-side check, nbgrader's Validate with the course's limits.

One code path serves both `python -m autograder validate NOTEBOOK` and the Validate button
of the student Lab (autograder/student/lab.py runs this command in a subprocess). Both read the
course's settings of Validate, autograder/student/validate_config.py (grading loads the same file):
the per-cell time limit of grading (`Execute.timeout`) and the math-library threads of the kernel
(`CourseValidator.threads`).

Runs the notebook top to bottom (no sandbox: it is the student's own machine) and reports
changed cell types, edited read-only cells, or else the visible test cells that fail, with a
one-line summary and the first error above them (a cell stopped by the time limit makes every
later cell that uses its results fail with a NameError; the report names that cell instead).
"""

from __future__ import annotations

import contextlib
import copy
import html
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.validator import Validator
from traitlets import Integer

from autograder.student.settings import validate_config

HIDDEN_NOTE = "Hidden tests run only when the assignment is graded."
NOT_RUN_NOTE = "Nothing was run: Validate runs the notebook once every cell has its type back."
# The kernel's own log (its warning that it talks to Validate over local TCP) is not the student's concern.
QUIET_KERNEL = "--IPKernelApp.log_level=ERROR"
# JupyterLab's name of each cell type, and the key that sets it (command mode: Esc first).
CELL_TYPES = {"code": ("Code", "Y"), "markdown": ("Markdown", "M"), "raw": ("Raw", "R")}
EXAMPLE_NOTEBOOK = "exercises/assignment1/assignment1.ipynb"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TIMEOUT_ERRORS = ("CellTimeoutError", "TimeoutError")


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def question_of(grade_id: str) -> str:
    """'q4a_hidden' -> 'q4': the letters and number a grade id starts with (`export` counts by it too)."""
    match = re.match(r"[A-Za-z]+\d+", grade_id)
    return match.group(0) if match else grade_id.split("_", 1)[0]


def busy_cores(interval: float = 0.3) -> float:
    """How many cores are busy now: measured from /proc/stat over `interval` seconds where it
    exists (Linux), else the 1-minute load average (which lags a new load by a minute)."""
    def sample():
        with open("/proc/stat") as stat:
            fields = [float(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    cores = os.cpu_count() or 1
    return cores * (1 - (idle1 - idle0) / max(total1 - total0, 1e-9))


def auto_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Math-library threads for a validation kernel: the cores nobody else is using, at least 1.

    torch's default (one thread per core) is fastest on an idle machine; on a busy one a
    thread waiting for a taken core stalls the others at every join, and the training
    cells of assignment 2 ran about 6x slower with 2 threads than with 1 on a loaded
    2-core machine.
    """
    cores = cores or os.cpu_count() or 1
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


def has_code(source: str) -> bool:
    """Whether a cell holds anything but comments and blank lines (the student copy of a
    hidden-test cell holds only its heading comment)."""
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


class CourseValidator(Validator):
    """nbgrader's Validator that keeps the executed notebook and sets the kernel's threads."""

    threads = Integer(0, help="Math-library threads (OMP/MKL/OpenBLAS, hence torch) of the kernel "
                              "that validates; 0 = the idle cores of this machine, at least 1 "
                              "(see auto_threads).").tag(config=True)
    executed = None

    def kernel_threads(self) -> int:
        return self.threads if self.threads > 0 else auto_threads()

    def _preprocess(self, nb):
        self.executed = super()._preprocess(nb)
        return self.executed


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the block (the kernel inherits them), then restore."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Report:
    """What a validation found, in the words both the CLI and the Lab dialog use."""

    results: dict                       # nbgrader's: 'type_changed', 'changed' or 'failed' when present
    tests: list[str] = field(default_factory=list)     # grade ids of the visible test cells
    failing: list[str] = field(default_factory=list)   # grade ids of those that fail
    cause: str = ""                    # the first error above the first failing test, if any
    retyped: list[dict] = field(default_factory=list)  # cells whose type changed: grade_id, was, now
    seconds: float = 0.0
    cell_timeout: int | None = None
    wall_clock: int | None = None
    threads: int = 1

    @property
    def ok(self) -> bool:
        return not self.results

    def summary(self) -> str:
        if self.results.get("type_changed"):
            if len(self.retyped) == 1:
                cell = self.retyped[0]
                was, now = _type_name(cell["was"]), _type_name(cell["now"])
                return (f"Cell '{cell['grade_id']}' was turned from {was} into {now}: "
                        f"set it back to {was}, save, and validate again.")
            return (f"{len(self.results['type_changed'])} cells changed type: set each back as listed below, "
                    "save, and validate again.")
        if self.results.get("changed"):
            return (f"{len(self.results['changed'])} locked cell(s) were edited: the grader puts back its own "
                    "copy, so edits there do not count. Put their text back as it was (below: the start of each), "
                    "save, and validate again to see your test results.")
        if self.failing:
            questions = list(dict.fromkeys(question_of(g) for g in self.failing))
            return f"{len(self.failing)} of {len(self.tests)} test cells fail: {', '.join(questions)}"
        if self.results.get("failed"):
            return f"{len(self.results['failed'])} test cell(s) fail."
        return f"Success! All {len(self.tests)} visible test cells pass."

    def notes(self) -> list[str]:
        """The lines under the summary: why it failed, the time taken, what was not checked."""
        if self.results.get("type_changed"):
            return [NOT_RUN_NOTE]
        lines = [self.cause] if self.cause else []
        if self.wall_clock and self.seconds > self.wall_clock:
            lines.append(f"The notebook took {self.seconds:.0f} s: the grader stops a notebook after "
                         f"{self.wall_clock} CPU-seconds and keeps only the points earned by then "
                         "(on a busy machine a notebook takes longer than the CPU time it uses).")
        lines.append(HIDDEN_NOTE)
        return lines

    def lines(self) -> list[str]:
        lines = [self.summary(), *self.notes()]
        if self.results.get("type_changed"):
            return lines + self.retype_lines()
        if self.results.get("changed"):
            lines += [f"  {cell['source'][:80]!r}" for cell in self.results["changed"]]
        elif self.results.get("failed"):
            for cell in self.results["failed"]:
                error = cell["raw_error"].strip().splitlines()
                lines.append(f"  {cell['source'].splitlines()[0][:80]!r} -> {_strip_ansi(error[-1]) if error else 'error'}")
        lines.append(f"(ran in {self.seconds:.0f} s with at most {self.cell_timeout} s per cell, "
                     f"{self.threads} math thread(s))")
        return lines

    def retype_lines(self) -> list[str]:
        """One line per cell whose type changed: which cell, and the keys that set it back."""
        lines = []
        for cell in self.retyped:
            name, key = CELL_TYPES.get(cell["was"], (cell["was"], ""))
            how = f"click it, press Esc, then {key} (or " if key else "("
            lines.append(f"  '{cell['grade_id']}' ({cell['source'][:40]!r}): {_type_name(cell['was'])} cell, "
                         f"now {_type_name(cell['now'])}. To set it back: {how}choose {name} in the toolbar's "
                         "cell-type menu).")
        return lines

    def lab_value(self) -> dict:
        """The result for the Lab's Validate dialog (nbgrader's format).

        The dialog prints each failed cell under "The following cell failed:"; the first
        entry carries the summary and notes instead (the student Lab's CSS hides its heading).
        A pass that took longer than the grader allows is shown that way too, as a warning;
        a changed cell type or an edited locked cell is shown in this entry alone, with its fix.
        """
        if self.results.get("type_changed") or self.results.get("changed"):
            changed = self.results.get("changed")
            body = self.lines()[:-1] if changed else [self.summary(), *self.retype_lines()]
            note = NOT_RUN_NOTE if self.results.get("type_changed") else HIDDEN_NOTE
            return {"failed": [{"source": "\n".join(line for line in body if line != HIDDEN_NOTE),
                                "error": html.escape(note), "raw_error": note}]}
        warnings = self.notes()[:-1]
        if self.ok and not warnings:
            return self.results
        head = {"source": "\n".join([self.summary(), *warnings]), "error": HIDDEN_NOTE, "raw_error": HIDDEN_NOTE}
        return {"failed": [head, *self.results.get("failed", [])]}

    def as_json(self) -> dict:
        return {"results": self.results, "lab_value": self.lab_value(), "summary": self.summary(),
                "notes": self.notes(), "tests": self.tests, "failing": self.failing,
                "seconds": self.seconds, "threads": self.threads}


def _type_name(cell_type: str) -> str:
    return CELL_TYPES.get(cell_type, (cell_type,))[0]


def retyped_cells(nb) -> list[dict]:
    """The cells of `nb` whose type is not the one the released notebook gave them (nbgrader's
    metadata records it), as {grade_id, was, now, source}."""
    return [{"grade_id": _nbgrader(cell).get("grade_id", "?"), "was": _nbgrader(cell)["cell_type"],
             "now": cell.cell_type, "source": cell.source.strip()}
            for cell in nb.cells if _nbgrader(cell).get("cell_type") not in (None, cell.cell_type)]


def check_notebook_path(path: Path) -> None:
    """Raise FileNotFoundError / ValueError saying what is wrong with the notebook path `path`."""
    if path.is_dir():
        names = sorted(p.name for p in path.glob("*.ipynb"))
        raise FileNotFoundError(f"{path} is a folder: give the notebook file in it"
                                + (f" ({', '.join(names)})" if names else f", e.g. {EXAMPLE_NOTEBOOK}"))
    if not path.exists():
        names = sorted(p.name for p in path.parent.glob("*.ipynb")) if path.parent.is_dir() else []
        where = (f"the notebooks in {path.parent} are {', '.join(names)}" if names
                 else f"give the path from the course folder, e.g. {EXAMPLE_NOTEBOOK}")
        raise FileNotFoundError(f"{path} does not exist: {where}")
    if path.suffix != ".ipynb":
        raise ValueError(f"{path} is not a notebook (.ipynb): give the .ipynb file you work in, "
                         f"e.g. {EXAMPLE_NOTEBOOK}")


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _error_of(cell) -> tuple[str, str] | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", "Error"), _strip_ansi(str(output.get("evalue", "")))
    return None


def first_cause(nb, failing: list[str], cell_timeout: int | None) -> str:
    """The first cell with an error above the first failing test cell, in words."""
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if meta.get("grade_id") in failing:
            return ""
        if cell.cell_type != "code":
            continue
        error = _error_of(cell)
        if error is None:
            continue
        name = meta.get("grade_id") or "a cell without an id"
        kind = "your answer cell" if meta.get("solution") else "cell"
        ename, evalue = error
        if ename in TIMEOUT_ERRORS or (ename == "KeyboardInterrupt" and cell_timeout):
            return (f"The first error is in {kind} '{name}': it ran longer than the {cell_timeout} s limit per "
                    "cell and was stopped, so the cells that use its results fail too. Make it faster "
                    "(or close programs that keep the CPU busy) and validate again.")
        return (f"The first error is in {kind} '{name}': {ename}: {evalue[:200]}; "
                "the cells that use its results fail too.")
    return ""


def _fails(grade: tuple) -> bool:
    score, max_score = grade
    return score is not None and score < max_score


def course_config():
    """The course's settings of Validate (student/validate_config.py, which grading reads too)."""
    return validate_config()


def validate_notebook(path: Path, config=None) -> Report:
    """Validate one student notebook with the course's limits; raises FileNotFoundError."""
    from nbgrader.utils import determine_grade, is_grade

    import nbformat

    path = Path(path)
    check_notebook_path(path)
    try:
        nbformat.read(path, as_version=4)
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read as a notebook ({str(error).splitlines()[0][:120]}): if you "
                         "edited it outside JupyterLab, take a fresh copy from the course package") from None
    config = copy.deepcopy(course_config() if config is None else config)
    config.Execute.extra_arguments = [*config.Execute.get("extra_arguments", []), QUIET_KERNEL]
    validator = CourseValidator(config=config)
    threads = validator.kernel_threads()
    start = time.monotonic()
    with _environment({name: str(threads) for name in THREAD_VARIABLES}):
        results = validator.validate(str(path.resolve()))
    report = Report(results=results, seconds=time.monotonic() - start, threads=threads,
                    cell_timeout=config.Execute.get("timeout", 30),
                    wall_clock=config.get("GuardedExecute", {}).get("cpu_budget"))
    if "type_changed" in results:
        report.retyped = retyped_cells(nbformat.read(path, as_version=4))
    nb = validator.executed
    if nb is not None:
        tests = [c for c in nb.cells if c.cell_type == "code" and is_grade(c) and has_code(c.source)]
        report.tests = [_nbgrader(c)["grade_id"] for c in tests]
        if "failed" in results:
            report.failing = [_nbgrader(c)["grade_id"] for c in tests if _fails(determine_grade(c, validator.log))]
            report.cause = first_cause(nb, report.failing, report.cell_timeout)
    return report
