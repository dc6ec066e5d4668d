"""`similarity`: pairs of submissions whose answers share passages nobody else wrote.

MOSS-style winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003) over the *answer cells*
only: cells marked `solution` in the released notebook, and cells the student added.

* Code is tokenised with Python's `tokenize`; comments, blank lines and indentation are
  dropped, every identifier that is not a keyword, builtin or attribute name becomes `V`
  and every string `S`. Renamed variables, reformatting and added comments therefore leave
  the token stream unchanged. Markdown answers become lower-case words.
* Each run of K tokens (a k-gram) is hashed (crc32); in every WINDOW consecutive hashes the
  smallest is kept as a fingerprint. Two cells that share a passage of K + WINDOW - 1
  tokens share at least one fingerprint, wherever the passage sits, so reordered
  functions and cells are still found.
* Every k-gram of the instructor's notebook (template, visible and hidden tests, reference
  solutions) is removed first: what every student received, or the reference answer
  itself, is no evidence of copying. So is any fingerprint that more than
  max(3, COMMON_SHARE x students) submissions contain (MOSS's `-m`): common idioms.
* similarity(A, B) = shared fingerprints / fingerprints of the smaller of A and B. A pair
  is flagged when similarity >= THRESHOLD *and* it shares at least MIN_SHARED
  fingerprints: a one-line answer two students wrote alike is never enough by itself.

Pages show the matching lines side by side. A line containing any line of a reference
solution or hidden test is replaced by a placeholder, so no page quotes them.
"""

from __future__ import annotations

import builtins
import csv
import html
import io
import json
import keyword
import math
import multiprocessing
import os
import re
import tokenize
import zlib
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from autograder.config.course import Course, check_id

K = 6             # tokens per k-gram: shorter runs are noise
WINDOW = 4        # winnowing window: any common run of K + WINDOW - 1 = 9 tokens is found
THRESHOLD = 0.5   # shared share of the smaller submission's fingerprints
MIN_SHARED = 15   # ... and at least this many shared fingerprints (about 40 tokens)
COMMON_SHARE = 0.1
REDACTED = "[line of the reference solution or hidden tests: not shown]"

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER, tokenize.ENCODING}
_KEEP_NAMES = set(keyword.kwlist) | set(dir(builtins))
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?|[^\sA-Za-z0-9_]")
_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def _normal_name(text: str, previous: str) -> str:
    return text if text in _KEEP_NAMES or previous == "." else "V"


def code_tokens(source: str) -> list[tuple[str, int]]:
    """(normalised token, 0-based line) of Python code; a regex split when it does not tokenise."""
    out: list[tuple[str, int]] = []
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in _SKIP:
                continue
            if token.type == tokenize.NAME:
                text = _normal_name(token.string, previous)
            elif token.type == tokenize.STRING or token.type == getattr(tokenize, "FSTRING_START", -1):
                text = "S"
            elif token.type in (getattr(tokenize, "FSTRING_MIDDLE", -1), getattr(tokenize, "FSTRING_END", -1)):
                continue
            else:
                text = token.string
            out.append((text, token.start[0] - 1))
            previous = token.string
        return out
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out, previous = [], ""
        for number, line in enumerate(source.splitlines()):
            line = line.split("#", 1)[0]
            for match in _WORD.finditer(line):
                word = match.group(0)
                text = _normal_name(word, previous) if word[0].isalpha() or word[0] == "_" else word
                out.append((text, number))
                previous = word
        return out


def prose_tokens(source: str) -> list[tuple[str, int]]:
    return [(word.lower(), number) for number, line in enumerate(source.splitlines())
            for word in re.findall(r"[A-Za-z0-9]+", line)]


def tokens_of(cell_type: str, source: str) -> list[tuple[str, int]]:
    return code_tokens(source) if cell_type == "code" else prose_tokens(source)


def kgram_hashes(cell_type: str, tokens: list[tuple[str, int]]) -> list[int]:
    """crc32 of every run of K tokens (code and prose hash apart)."""
    words = [text for text, _ in tokens]
    tag = "c" if cell_type == "code" else "p"
    return [zlib.crc32("\x1f".join([tag, *words[i:i + K]]).encode()) for i in range(len(words) - K + 1)]


def winnow(hashes: list[int]) -> set[int]:
    """The rightmost minimum of every window of WINDOW hashes (all of them when fewer)."""
    if len(hashes) <= WINDOW:
        return {min(hashes)} if hashes else set()
    chosen = set()
    for start in range(len(hashes) - WINDOW + 1):
        window = hashes[start:start + WINDOW]
        low = min(window)
        chosen.add(low)
    return chosen


@dataclass
class Cell:
    key: str            # grade_id, or "added cell N"
    cell_type: str
    source: str
    tokens: list[tuple[str, int]]
    hashes: list[int]   # every k-gram


@dataclass
class Answers:
    student: str
    cells: list[Cell]
    fingerprints: set[int] = field(default_factory=set)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _meta(cell: dict) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def read_notebook_cells(path: Path) -> list[dict]:
    """The cells of a notebook file, or ValueError saying why it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a readable notebook ({type(error).__name__}: {str(error)[:120]})") from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) and "cell_type" in c for c in cells):
        raise ValueError("not a notebook: no list of cells")
    return cells


def answer_cells(cells: list[dict]) -> list[tuple[str, str, str]]:
    """(key, cell type, source) of the cells a student writes: solution cells and added cells."""
    out, added = [], 0
    for cell in cells:
        if cell.get("cell_type") not in ("code", "markdown"):
            continue
        meta = _meta(cell)
        if meta.get("solution"):
            out.append((str(meta.get("grade_id", "answer")), cell["cell_type"], _source(cell)))
        elif not meta:
            added += 1
            out.append((f"added cell {added}", cell["cell_type"], _source(cell)))
    return out


def read_answers(student: str, path: Path) -> Answers:
    cells = []
    for key, cell_type, source in answer_cells(read_notebook_cells(path)):
        tokens = tokens_of(cell_type, source)
        cells.append(Cell(key, cell_type, source, tokens, kgram_hashes(cell_type, tokens)))
    return Answers(student, cells)


def instructor_hashes(notebooks: list[Path]) -> set[int]:
    """Every k-gram of the given notebooks: the template students got and the source with
    reference solutions and hidden tests."""
    known: set[int] = set()
    for path in notebooks:
        for cell in read_notebook_cells(path):
            text = "\n".join(line for line in _source(cell).splitlines() if line.strip() not in _MARKERS)
            known.update(kgram_hashes(cell["cell_type"], tokens_of(cell["cell_type"], text)))
            if cell["cell_type"] == "markdown":   # students may also paste prose into code comments
                known.update(kgram_hashes("markdown", prose_tokens(text)))
    return known


def secret_lines(source_notebook: Path) -> list[str]:
    """Whitespace-free lines of the reference solutions and hidden tests (8+ characters)."""
    secrets = []
    for cell in read_notebook_cells(source_notebook):
        text, meta = _source(cell), _meta(cell)
        lines, inside = [], False
        for line in text.splitlines():
            stripped = line.strip()
            if stripped in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                inside = True
            elif stripped in ("### END SOLUTION", "### END HIDDEN TESTS"):
                inside = False
            elif inside:
                lines.append(line)
        if meta.get("solution") and cell["cell_type"] == "markdown" and "### BEGIN SOLUTION" not in text:
            lines += text.splitlines()   # a written answer's reference text is the whole cell
        secrets += ["".join(line.split()) for line in lines]
    return sorted({s for s in secrets if len(s) >= 8})


@dataclass
class Pair:
    a: str
    b: str
    shared: int
    fingerprints_a: int
    fingerprints_b: int

    @property
    def similarity(self) -> float:
        smaller = min(self.fingerprints_a, self.fingerprints_b)
        return self.shared / smaller if smaller else 0.0

    @property
    def flagged(self) -> bool:
        return self.similarity >= THRESHOLD and self.shared >= MIN_SHARED

    @property
    def page(self) -> str:
        return f"{self.a}__{self.b}.html"


def compare(answers: list[Answers], known: set[int]) -> tuple[list[Pair], set[int]]:
    """Pairs sharing fingerprints (flagged first, then by similarity), and the fingerprints
    treated as common."""
    counts: dict[int, int] = {}
    for entry in answers:
        entry.fingerprints = set()
        for cell in entry.cells:
            entry.fingerprints |= {h for h in winnow(cell.hashes) if h not in known}
        for h in entry.fingerprints:
            counts[h] = counts.get(h, 0) + 1
    limit = max(3, math.ceil(COMMON_SHARE * len(answers)))
    common = {h for h, n in counts.items() if n > limit}
    holders: dict[int, list[int]] = {}
    for index, entry in enumerate(answers):
        entry.fingerprints -= common
        for h in entry.fingerprints:
            holders.setdefault(h, []).append(index)
    shared: dict[tuple[int, int], int] = {}
    for owners in holders.values():
        for pair in combinations(owners, 2):
            shared[pair] = shared.get(pair, 0) + 1
    pairs = [Pair(answers[i].student, answers[j].student, n, len(answers[i].fingerprints),
                  len(answers[j].fingerprints)) for (i, j), n in shared.items()]
    pairs.sort(key=lambda p: (not p.flagged, -p.similarity, -p.shared, p.a, p.b))
    return pairs, common


# ---- report ------------------------------------------------------------------------

_STYLE = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;width:100%}
td{vertical-align:top;width:50%;border:1px solid #ccc;padding:.3em}pre{margin:0;white-space:pre-wrap}
.match{background:#ffe08a}.redacted{color:#888;font-style:italic}h2{font-size:1.1em;margin-top:1.5em}"""


def _matched_lines(cell: Cell, matching: set[int]) -> set[int]:
    lines = set()
    for start, h in enumerate(cell.hashes):
        if h in matching:
            lines.update(line for _, line in cell.tokens[start:start + K])
    return lines


def _render_cell(cell: Cell | None, matching: set[int], secrets: list[str]) -> str:
    if cell is None:
        return "<pre>(no such cell)</pre>"
    marked = _matched_lines(cell, matching)
    rows = []
    for number, line in enumerate(cell.source.splitlines()):
        squashed = "".join(line.split())
        if any(secret in squashed for secret in secrets):
            rows.append(f'<span class="redacted">{REDACTED}</span>')
        elif number in marked:
            rows.append(f'<span class="match">{html.escape(line) or " "}</span>')
        else:
            rows.append(html.escape(line))
    return "<pre>" + "\n".join(rows) + "</pre>"


def pair_page(pair: Pair, first: Answers, second: Answers, known: set[int], common: set[int],
              secrets: list[str], assignment: str) -> str:
    """HTML: the answer cells where the two share passages, side by side, matches highlighted."""
    hashes_a = {h for cell in first.cells for h in cell.hashes} - known - common
    hashes_b = {h for cell in second.cells for h in cell.hashes} - known - common
    matching = hashes_a & hashes_b
    by_key_b = {cell.key: cell for cell in second.cells}
    sections = []
    for cell in first.cells:
        if not (set(cell.hashes) & matching):
            continue
        partner = by_key_b.get(cell.key)
        if partner is None or not (set(partner.hashes) & matching):
            # The passage sits in another cell of B (reordered answers): show where.
            partner = next((c for c in second.cells if set(c.hashes) & set(cell.hashes) & matching), None)
        sections.append(f"<h2>{html.escape(cell.key)}"
                        f"{' / ' + html.escape(partner.key) if partner and partner.key != cell.key else ''}</h2>"
                        f"<table><tr><td>{_render_cell(cell, matching, secrets)}</td>"
                        f"<td>{_render_cell(partner, matching, secrets)}</td></tr></table>")
    title = f"{assignment}: {pair.a} and {pair.b}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>similarity {pair.similarity:.2f}: {pair.shared} shared fingerprints of "
            f"{pair.fingerprints_a} ({html.escape(pair.a)}) and {pair.fingerprints_b} ({html.escape(pair.b)}); "
            f"flagged from {THRESHOLD:.2f} with at least {MIN_SHARED} shared. Highlighted lines hold "
            f"passages the two share that neither the instructor's notebook nor many other students "
            f"have. Only answer cells are compared.</p>"
            f"<table><tr><td><b>{html.escape(pair.a)}</b></td><td><b>{html.escape(pair.b)}</b></td></tr></table>"
            + "".join(sections) + "</body></html>")


@dataclass
class SimilarityReport:
    pairs: list[Pair]
    skipped: list[tuple[str, str]]   # (student, why)
    folder: Path
    students: int

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.flagged]

    def lines(self, top: int = 20) -> list[str]:
        out = [f"compared {self.students} submission(s): {len(self.pairs)} pair(s) share passages, "
               f"{len(self.flagged)} flagged (similarity >= {THRESHOLD} and >= {MIN_SHARED} shared fingerprints)"]
        shown = self.pairs[:max(top, len(self.flagged))]
        if shown:
            out.append(f"{'student_a':<20} {'student_b':<20} {'similarity':>10} {'shared':>7}  flagged")
            out += [f"{p.a:<20} {p.b:<20} {p.similarity:>10.2f} {p.shared:>7}  {'yes' if p.flagged else ''}"
                    for p in shown]
        out += [f"skipped {student}: {why}" for student, why in self.skipped]
        out.append(f"table: {self.folder / 'pairs.csv'}")
        return out


def flags_path(course: Course, assignment: str) -> Path:
    return course.reports(assignment) / "similarity" / "flags.json"


def similarity_flags(course: Course, assignment: str) -> dict[str, list[str]]:
    """student -> ['similar: <other id>', ...] from the last `similarity` run (empty if none)."""
    path = flags_path(course, assignment)
    return json.loads(path.read_text()) if path.exists() else {}


def _instructor_notebooks(course: Course, assignment: str) -> tuple[Path, Path]:
    released = sorted((course.exercises / assignment).glob("*.ipynb"))
    source = sorted((course.root / "source" / assignment).glob("*.ipynb"))
    if len(released) != 1 or len(source) != 1:
        raise FileNotFoundError(f"need the released and source notebook of {assignment} "
                                f"(found {[p.name for p in released]} and {[p.name for p in source]}): "
                                f"run `python -m autograder release {assignment}` first")
    return released[0], source[0]


def _read_one(job: tuple[str, Path, str]) -> Answers | tuple[str, str]:
    """Answers of one submission, or (student, why it was skipped)."""
    student, path, name = job
    try:
        if not path.is_file():
            raise ValueError(f"no {name} in {path.parent}")
        return read_answers(student, path)
    except ValueError as error:
        return student, str(error)
    except Exception as error:  # anything else odd in a student's file: report it, go on
        return student, f"could not be compared ({type(error).__name__}: {str(error)[:120]})"


def similarity(assignment: str, course: Course | None = None, *, workers: int | None = None) -> SimilarityReport:
    """Compare the collected submissions of `assignment`; write reports/A/similarity/.

    Reading and tokenising (most of the time) runs in `workers` processes (default: CPU cores)."""
    course = course or Course()
    check_id(assignment, "assignment")
    released, source = _instructor_notebooks(course, assignment)
    known = instructor_hashes([released, source])
    secrets = secret_lines(source)
    jobs = [(student, course.submitted(student, assignment) / released.name, released.name)
            for student in course.students_submitted(assignment)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) // 20))
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_read_one, jobs, chunksize=8)
    else:
        results = [_read_one(job) for job in jobs]
    answers = [r for r in results if isinstance(r, Answers)]
    skipped = [r for r in results if not isinstance(r, Answers)]
    if not answers and not skipped:
        raise FileNotFoundError(f"no collected submissions of {assignment}: run `collect` first")
    pairs, common = compare(answers, known)

    folder = course.reports(assignment) / "similarity"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.html"):
        old.unlink()
    by_student = {entry.student: entry for entry in answers}
    flags: dict[str, list[str]] = {}
    with open(folder / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_a", "student_b", "similarity", "shared_fingerprints",
                         "fingerprints_a", "fingerprints_b", "flagged", "page"])
        for pair in pairs:
            page = ""
            if pair.flagged:
                page = pair.page
                (folder / page).write_text(pair_page(pair, by_student[pair.a], by_student[pair.b], known,
                                                     common, secrets, assignment))
                flags.setdefault(pair.a, []).append(f"similar: {pair.b}")
                flags.setdefault(pair.b, []).append(f"similar: {pair.a}")
            writer.writerow([pair.a, pair.b, f"{pair.similarity:.3f}", pair.shared, pair.fingerprints_a,
                             pair.fingerprints_b, int(pair.flagged), page])
    with open(folder / "skipped.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "reason"])
        writer.writerows(skipped)
    flags_path(course, assignment).write_text(json.dumps(flags, indent=1, sort_keys=True) + "\n")
    return SimilarityReport(pairs, skipped, folder, len(answers))
