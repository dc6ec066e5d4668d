"""`export`: scores per student and question (CSV), a summary, and a histogram (PNG).

A question is the letters+number a grade id starts with (q1_tests, q4a_hidden -> q1, q4).
Failure reasons come from the autograded notebooks: the error name of each grade
cell that scored below its maximum (AssertionError, CellTimeoutError, KernelDied,
NotExecuted, ...), or "cell deleted" when the student removed it.

Scores are nbgrader's (a manual score replaces the automatic one); `total` is the points
minus nbgrader's late-submission penalty. Review flags are those `grade` logged plus
`similar: <other id>` from the last `similarity` run. `--format canvas|moodle|csv` also
writes the file that LMS imports (autograder/commands/lms.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402

from autograder.config.course import Course, check_id  # noqa: E402
from autograder.student.validate import question_of  # noqa: E402
from autograder.sandbox.execute import CPU_BUDGET, KERNEL_DIED, NOT_RUN, WALL_CLOCK  # noqa: E402
from autograder.commands.collect import read_manifest  # noqa: E402
from autograder.commands.grade import read_grading_log  # noqa: E402
from autograder.commands.lms import write_lms  # noqa: E402
from autograder.commands.similarity import similarity_flags  # noqa: E402


def failure_reasons(autograded: Path) -> dict[str, str]:
    """grade_id -> error name, for grade cells of an autograded notebook that raised."""
    reasons = {}
    nb = nbformat.read(autograded, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            if errors:
                last = errors[-1]
                # The grader's own errors say why the cell could not run: keep that.
                own = last.ename in (NOT_RUN, KERNEL_DIED, WALL_CLOCK, CPU_BUDGET)
                reasons[meta["grade_id"]] = f"{last.ename}: {last.evalue}" if own else last.ename
    return reasons


def score_table(assignment: str, course: Course) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per student and grade cell, maximum points per question)."""
    from nbgrader.api import Gradebook

    rows, maxima, cells = [], {}, []
    log = read_grading_log(course, assignment)
    with Gradebook(course.db_url, "vitcourse") as gb:
        assignment_row = gb.find_assignment(assignment)
        for notebook in assignment_row.notebooks:
            for cell in notebook.grade_cells:
                q = question_of(cell.name)
                maxima[q] = maxima.get(q, 0.0) + float(cell.max_score)
                cells.append((cell.name, float(cell.max_score)))
        for submission in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student_id):
            student = submission.student_id
            status = log.get(student, {}).get("status", "graded")
            for nb_submission in submission.notebooks:
                path = course.autograded(student, assignment) / f"{nb_submission.name}.ipynb"
                reasons = failure_reasons(path) if path.exists() else {}
                for grade in nb_submission.grades:
                    if grade.auto_score is None and grade.manual_score is None and status == "graded":
                        # A graded markdown cell is a written answer: 0 points until graded by hand.
                        reason = ("needs manual grading" if grade.cell.cell_type == "markdown"
                                  else "cell deleted or not gradable")
                    elif grade.score < grade.max_score:
                        reason = reasons.get(grade.name) or log.get(student, {}).get("reason") or "no error"
                    else:
                        reason = ""
                    rows.append({"student": student, "grade_id": grade.name, "question": question_of(grade.name),
                                 "score": float(grade.score), "max_score": float(grade.max_score),
                                 "reason": reason})
    # Submissions nbgrader could not grade at all are not in the gradebook: 0 points each.
    in_gradebook = {row["student"] for row in rows}
    for student, entry in sorted(log.items()):
        if student not in in_gradebook:
            rows += [{"student": student, "grade_id": name, "question": question_of(name), "score": 0.0,
                      "max_score": points, "reason": entry.get("reason") or entry.get("status", "")}
                     for name, points in cells]
    columns = ["student", "grade_id", "question", "score", "max_score", "reason"]
    return pd.DataFrame(rows, columns=columns), pd.Series(maxima, name="max_score").sort_index()


def late_table(assignment: str, course: Course) -> pd.DataFrame:
    """Per student: submission time and due date (UTC), hours late, nbgrader's late penalty."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(course.db_url, "vitcourse") as gb:
        for submission in gb.assignment_submissions(assignment):
            rows.append({"student": submission.student_id,
                         "submitted_at": submission.timestamp.isoformat(sep=" ") if submission.timestamp else "",
                         "hours_late": round(submission.total_seconds_late / 3600, 2),
                         "late_penalty": float(submission.late_submission_penalty or 0.0)})
    return pd.DataFrame(rows, columns=["student", "submitted_at", "hours_late", "late_penalty"]).set_index("student")


def export(assignment: str, course: Course | None = None, *, fmt: str | None = None,
           id_column: str | None = None, column: str | None = None, gradebook: Path | None = None,
           worksheet: Path | None = None) -> dict[str, Path]:
    """Write scores.csv, summary.csv, failure_reasons.csv and histogram.png under reports/,
    and with `fmt` ("canvas", "moodle" or "csv") the grade file that LMS imports (lms.py:
    `column`, `gradebook` for Canvas, `worksheet` for Moodle)."""
    course = course or Course()
    check_id(assignment, "assignment")
    cells, maxima = score_table(assignment, course)
    if cells.empty:
        raise ValueError(f"no graded submissions of {assignment} in the gradebook: run `grade` first")
    out = course.reports(assignment)
    out.mkdir(parents=True, exist_ok=True)
    log = read_grading_log(course, assignment)

    scores = cells.pivot_table(index="student", columns="question", values="score", aggfunc="sum")
    late = late_table(assignment, course).reindex(scores.index)
    scores["points"] = scores.sum(axis=1)
    scores["late_penalty"] = late["late_penalty"].fillna(0.0)
    scores["total"] = scores["points"] - scores["late_penalty"]
    scores["submitted_at"] = late["submitted_at"].fillna("")
    scores["hours_late"] = late["hours_late"].fillna(0.0)
    scores["status"] = [log.get(s, {}).get("status", "graded") for s in scores.index]
    similar = similarity_flags(course, assignment)
    scores["review_flags"] = [";".join(log.get(s, {}).get("review_flags", []) + similar.get(s, []))
                              for s in scores.index]
    scores.to_csv(out / "scores.csv")

    per_question = scores[list(maxima.index)]
    summary = pd.DataFrame({
        "max_score": maxima,
        "mean": per_question.mean(),
        "median": per_question.median(),
        "full_marks": (per_question >= maxima).sum(),
        "students": per_question.count(),
    })
    summary.loc["total"] = [maxima.sum(), scores["total"].mean(), scores["total"].median(),
                            int((scores["total"] >= maxima.sum()).sum()), len(scores)]
    # Late work: mean/median penalty over all students; `students` = how many were penalised.
    penalties = scores["late_penalty"]
    summary.loc["late_penalty"] = [float("nan"), penalties.mean(), penalties.median(), float("nan"),
                                   int((penalties > 0).sum())]
    summary.index.name = "question"
    summary.to_csv(out / "summary.csv")

    failed = cells[cells["reason"] != ""]
    reasons = (Counter(zip(failed["question"], failed["reason"])))
    pd.DataFrame([{"question": q, "reason": r, "count": n} for (q, r), n in sorted(reasons.items())],
                 columns=["question", "reason", "count"]).to_csv(out / "failure_reasons.csv", index=False)

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(scores["total"], bins=max(5, min(20, int(maxima.sum()) + 1)), range=(0, maxima.sum()),
              color="#4c72b0", edgecolor="white")
    axes.set_xlabel(f"total score (out of {maxima.sum():g})")
    axes.set_ylabel("students")
    axes.set_title(f"{assignment}: {len(scores)} submissions, median {scores['total'].median():g}")
    figure.tight_layout()
    figure.savefig(out / "histogram.png", dpi=120)
    plt.close(figure)
    written = {"scores": out / "scores.csv", "summary": out / "summary.csv",
               "failure_reasons": out / "failure_reasons.csv", "histogram": out / "histogram.png"}
    if fmt is not None:
        grades = pd.DataFrame({"grade": scores["total"], "late_penalty": scores["late_penalty"]})
        written[fmt] = write_lms(fmt, grades, assignment, float(maxima.sum()), out, id_column=id_column,
                                 column=column, gradebook=gradebook, worksheet=worksheet,
                                 manifest=read_manifest(course, assignment))
    return written
