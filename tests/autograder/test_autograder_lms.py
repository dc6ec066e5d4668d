"""LMS bulk downloads in, importable grade files out (issue 31).

The fixture zips are built here to each LMS's own naming (cited in autograder/commands/lms_canvas.py and
autograder/commands/lms_moodle.py): Canvas's `ContentZipper#get_filename`, Moodle's download prefix and
plugin folders. Every zip entry carries the time the zip was "built", after the due date, as the
LMSs do; no test may take a penalty from it.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from datetime import datetime, timedelta

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.commands.collect import collect, read_manifest
from autograder.config.course import Course
from autograder.commands.late import late_penalty
from autograder.commands.lms import write_lms

DUE = "2026-11-20 17:00:00 UTC"
DUE_UTC = datetime(2026, 11, 20, 17, 0, 0)
BUILT = (2026, 11, 21, 4, 0, 0)          # the zip is built 11 h after the due date
NOTEBOOK = nbformat.writes(new_notebook(cells=[new_code_cell("x = 2")]))


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory):
    """One gradebook with the assignment 'hw' (made once: nbgrader migrates each new database)."""
    from nbgrader.api import Gradebook

    from autograder.config.course import _put_interpreter_on_path

    _put_interpreter_on_path()  # nbgrader runs `alembic` from PATH, as the CLI arranges
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with Gradebook(f"sqlite:///{path}", "vitcourse") as gb:
        gb.update_or_create_assignment("hw")
    return path


@pytest.fixture
def course(tmp_path, gradebook) -> Course:
    """A released assignment 'hw' with a gradebook to hold its due date."""
    course = Course(root=tmp_path / "course", solutions=tmp_path / "solutions", exercises=tmp_path / "exercises")
    (course.exercises / "hw").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), course.exercises / "hw" / "hw.ipynb")
    course.root.mkdir()
    shutil.copy(gradebook, course.gradebook)
    return course


def _zip(path, entries: dict[str, str]):
    """A zip whose every entry carries the build time, like the LMSs' zips."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=BUILT), text)
    return path


# ---- Canvas ----------------------------------------------------------------------------

CANVAS = {
    # two students called Jane Doe: the same sortable name, different user ids
    "doejane_4711_90001_hw.ipynb": NOTEBOOK,
    "doejane_LATE_4712_90002_hw.ipynb": NOTEBOOK,
    # non-ASCII names that sanitize to different words: must stay two students
    "müllerjürgen_5001_90003_hw.ipynb": NOTEBOOK,
    "möllerjörg_LATE_5002_90004_hw.ipynb": NOTEBOOK,
    # a resubmission of the same file name: Canvas renames it hw-1.ipynb, a larger attachment id
    "smithann_6001_90005_hw.ipynb": nbformat.writes(new_notebook(cells=[new_code_cell("old = 1")])),
    "smithann_6001_90010_hw-1.ipynb": nbformat.writes(new_notebook(cells=[new_code_cell("new = 1")])),
    # an online text entry and a PDF next to a notebook
    "leebo_6002_text.html": "<p>my answer</p>",
    "leebo_6002_90011_hw.ipynb": NOTEBOOK,
    "leebo_6002_90012_notes.pdf": "%PDF",
}
CANVAS_ANON = {
    "anon_aB3dE_90020_hw.ipynb": NOTEBOOK,
    "anon_Ab3dE_90021_hw.ipynb": NOTEBOOK,        # differs only in case: a different student
    "LATE_anon_xY7zQ_90022_hw.ipynb": NOTEBOOK,
}


def test_canvas_zip_ids_names_resubmission_and_late_marker(tmp_path, course):
    download = _zip(tmp_path / "course-hw submissions.zip", CANVAS)
    report = collect("hw", download, course, due_date=DUE)

    assert report.lms == "canvas"
    assert sorted(report.collected) == ["4711", "4712", "5001", "5002", "6001", "6002"]
    assert report.names["4711"] == report.names["4712"] == "doejane"
    assert report.names["5001"] == "müllerjürgen" and report.names["5002"] == "möllerjörg"
    # the later upload (larger attachment id) replaced the earlier one, and the report says so
    assert report.collected["6001"].name == "smithann_6001_90010_hw-1.ipynb"
    assert nbformat.read(course.submitted("6001", "hw") / "hw.ipynb", 4).cells[0].source == "new = 1"
    problems = {path.name: why for path, why in report.problems}
    assert problems["smithann_6001_90005_hw.ipynb"] == "duplicate for 6001; kept the newer smithann_6001_90010_hw-1.ipynb"
    assert "online text or URL entry of 6002" in problems["leebo_6002_text.html"]
    assert "'notes.pdf' of 6002: not a notebook or zip" in problems["leebo_6002_90012_notes.pdf"]
    # lateness: only Canvas's marker, never the zip's time (11 h after the due date)
    assert set(report.times) == {"4712", "5002"}
    for student in ("4712", "5002"):
        assert report.times[student] == (DUE_UTC + timedelta(seconds=1), "Canvas LATE marker")
        stamp = (course.submitted(student, "hw") / "timestamp.txt").read_text()
        assert stamp.startswith("2026-11-20 17:00:01")
    for student in ("4711", "5001", "6001", "6002"):
        assert not (course.submitted(student, "hw") / "timestamp.txt").exists()
    # the penalty nbgrader's plugin gives from those times: one started day for LATE, none otherwise
    penalties = {s: late_penalty(6.0, (report.times[s][0] - DUE_UTC).total_seconds() if s in report.times else 0,
                                 10, 7) for s in report.collected}
    assert penalties == {"4711": 0.0, "4712": pytest.approx(0.6), "5001": 0.0, "5002": pytest.approx(0.6),
                         "6001": 0.0, "6002": 0.0}
    text = "\n".join(report.lines())
    assert "from a Canvas bulk download" in text and "late 4712 (doejane): marked LATE by Canvas" in text
    manifest = read_manifest(course, "hw")
    assert manifest["5001"]["lms"] == "canvas" and manifest["5001"]["name"] == "müllerjürgen"


def test_canvas_names_without_utf8_flag_stay_distinct(tmp_path, course):
    """rubyzip writes UTF-8 names without the zip's UTF-8 flag; Python reads them as cp437."""
    path = tmp_path / "dl.zip"
    names = ("müllerjürgen_5001_90003_hw.ipynb", "möllerjörg_5002_90004_hw.ipynb")
    with zipfile.ZipFile(path, "w") as archive:   # ASCII stand-ins of the same byte length, then the bytes
        for name in names:
            archive.writestr(zipfile.ZipInfo("x" * len(name.encode()), date_time=BUILT), NOTEBOOK)
    data = path.read_bytes()
    for name in names:
        data = data.replace(b"x" * len(name.encode()), name.encode(), 2)
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert not any(info.flag_bits & 0x800 for info in archive.infolist())
    report = collect("hw", path, course)
    assert sorted(report.collected) == ["5001", "5002"]
    assert report.names == {"5001": "müllerjürgen", "5002": "möllerjörg"}


def test_canvas_anonymous_ids_are_kept_distinct(tmp_path, course):
    report = collect("hw", _zip(tmp_path / "anon.zip", CANVAS_ANON), course, due_date=DUE)
    assert sorted(report.collected) == ["anon_Ab3dE", "anon_aB3dE", "anon_xY7zQ"]
    assert set(report.times) == {"anon_xY7zQ"}
    assert not report.problems


def test_canvas_late_without_due_date_is_reported_not_penalised(tmp_path, course):
    report = collect("hw", _zip(tmp_path / "dl.zip", CANVAS), course)
    assert report.due is None and report.times == {}
    assert any("2 submission(s) marked LATE by Canvas" in note and "no due date" in note for note in report.notes)


def test_canvas_unpacked_folder_is_read_the_same(tmp_path, course):
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(_zip(tmp_path / "dl.zip", CANVAS)) as archive:
        archive.extractall(folder)
    report = collect("hw", folder, course, due_date=DUE)
    assert report.lms == "canvas" and len(report.collected) == 6 and set(report.times) == {"4712", "5002"}


# ---- Moodle ----------------------------------------------------------------------------

MOODLE = {
    # folders per plugin (the default since Moodle 3.1; 4.1+ drops the last '_')
    "Jane Doe_1000101_assignsubmission_file_/hw.ipynb": NOTEBOOK,
    "Jane Doe_1000101_assignsubmission_onlinetext_/onlinetext.html": "<p>see notebook</p>",
    "Jane Doe_1000102_assignsubmission_file/hw.ipynb": NOTEBOOK,          # a second Jane Doe
    "Jürgen Müller_1000103_assignsubmission_file_/hw.ipynb": NOTEBOOK,
    "Jörg Möller_1000104_assignsubmission_file_/data/hw.ipynb": NOTEBOOK,  # in a sub-folder
    "Jörg Möller_1000104_assignsubmission_file_/data/pixels.csv": "1,2\n",
    # two notebooks, one of them the assignment's: that one is graded
    "Ann Smith_1000105_assignsubmission_file_/hw.ipynb": NOTEBOOK,
    "Ann Smith_1000105_assignsubmission_file_/scratch.ipynb": NOTEBOOK,
}
WORKSHEET_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                    "Grade can be changed", "Last modified (submission)", "Online text", "Last modified (grade)",
                    "Feedback comments"]


def _worksheet(path, submitted: dict[str, str], maximum: str = "6.00"):
    """A grading worksheet as Moodle writes it (times: userdate(), here Europe/Zurich)."""
    names = {"1000101": "Jane Doe", "1000102": "Jane Doe", "1000103": "Jürgen Müller", "1000104": "Jörg Möller",
             "1000105": "Ann Smith", "1000106": "Nobody Here"}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(WORKSHEET_HEADER)
        for number, name in names.items():
            email = f"{name.split()[0].lower()}{number[-1]}@example.org"
            writer.writerow([f"Participant {number}", name, email, "Submitted for grading", "", maximum, "Yes",
                             submitted.get(number, "-"), "", "-", "old comment" if number == "1000105" else ""])
    return path


# Due 18:00 Zurich = 17:00 UTC: 1000102 is 26 h late (two started days), 1000104 one minute late.
SUBMITTED = {"1000101": "Friday, 20 November 2026, 5:59 PM", "1000102": "Saturday, 21 November 2026, 8:00 PM",
             "1000103": "Thursday, 19 November 2026, 9:15 AM", "1000104": "Friday, 20 November 2026, 6:01 PM",
             "1000105": "Friday, 20 November 2026, 11:00 AM"}


def test_moodle_zip_ids_online_text_and_worksheet_times(tmp_path, course):
    download = _zip(tmp_path / "COURSE-hw-42.zip", MOODLE)
    sheet = _worksheet(tmp_path / "Grades-COURSE-hw-42.csv", SUBMITTED)
    report = collect("hw", download, course, due_date=DUE, worksheet=sheet, zone="Europe/Zurich")

    assert report.lms == "moodle"
    assert sorted(report.collected) == ["1000101", "1000102", "1000103", "1000104", "1000105"]
    assert report.names["1000101"] == report.names["1000102"] == "Jane Doe"
    assert report.names["1000103"] == "Jürgen Müller"
    # the online text folder is reported and ignored; the notebook is still collected
    problems = {path.name: why for path, why in report.problems}
    assert "onlinetext submission of 1000101 (Jane Doe): not the notebook" in \
        problems["Jane Doe_1000101_assignsubmission_onlinetext_"]
    assert (course.submitted("1000104", "hw") / "data" / "pixels.csv").read_text() == "1,2\n"
    assert (course.submitted("1000105", "hw") / "hw.ipynb").exists()
    late = report.late()
    assert set(late) == {"1000102", "1000104"}
    assert late["1000102"] == pytest.approx(26.0) and late["1000104"] == pytest.approx(1 / 60)
    assert report.times["1000103"] == (datetime(2026, 11, 19, 8, 15), "Moodle worksheet")
    penalties = {s: late_penalty(6.0, late.get(s, 0) * 3600, 10, 7) for s in report.collected}
    assert penalties == {"1000101": 0.0, "1000102": pytest.approx(1.2), "1000103": 0.0,
                         "1000104": pytest.approx(0.6), "1000105": 0.0}
    manifest = read_manifest(course, "hw")
    assert manifest["1000103"]["Email address"] == "jürgen3@example.org"


def test_moodle_without_worksheet_applies_no_penalty_and_says_so(tmp_path, course):
    report = collect("hw", _zip(tmp_path / "dl.zip", MOODLE), course, due_date=DUE)
    assert len(report.collected) == 5 and report.times == {} and report.late() == {}
    assert any("no submission times" in note and "--worksheet" in note for note in report.notes)
    for student in report.collected:
        assert not (course.submitted(student, "hw") / "timestamp.txt").exists()


def test_moodle_ambiguous_notebooks_are_reported_not_guessed(tmp_path, course):
    entries = {"Al Bo_1000107_assignsubmission_file_a.ipynb": NOTEBOOK,
               "Al Bo_1000107_assignsubmission_file_b.ipynb": NOTEBOOK,
               "Cy Do_1000108_assignsubmission_file_hw.ipynb": NOTEBOOK}
    report = collect("hw", _zip(tmp_path / "flat.zip", entries), course)
    assert sorted(report.collected) == ["1000108"]
    problems = {path.name: why for path, why in report.problems}
    assert "1000107 has 2 uploads" in problems["Al Bo_1000107_assignsubmission_file_a.ipynb"]


def test_submission_times_csv_wins_and_bad_rows_are_named(tmp_path, course):
    times = tmp_path / "times.csv"
    times.write_text("student,submitted_at\n4711,2026-11-22 18:00:00\n5001,2026-11-20T17:30:00+01:00\n")
    report = collect("hw", _zip(tmp_path / "dl.zip", CANVAS), course, due_date=DUE, submission_times=times)
    assert report.late() == {"4711": pytest.approx(49.0)}          # 5001 was at 16:30 UTC: on time
    assert any("no submission time for 4 student(s)" in note for note in report.notes)
    times.write_text("student,submitted_at\n4711,next tuesday\n")
    with pytest.raises(ValueError, match=r"times.csv, line 2: cannot read the time 'next tuesday'"):
        collect("hw", _zip(tmp_path / "dl.zip", CANVAS), course, submission_times=times)


def test_plain_folder_with_identical_file_times_gets_no_penalty(tmp_path, course):
    inbox = tmp_path / "inbox"
    with zipfile.ZipFile(_zip(tmp_path / "plain.zip", {"ann.ipynb": NOTEBOOK, "bob.ipynb": NOTEBOOK})) as archive:
        archive.extractall(inbox)         # extracted files: all the same (current) time
    report = collect("hw", inbox, course, due_date="2000-01-01 00:00:00 UTC")
    assert sorted(report.collected) == ["ann", "bob"] and report.late() == {}
    assert any("every file has the same time" in note for note in report.notes)
    # passed as the zip itself: a zip's times are never used
    report = collect("hw", tmp_path / "plain.zip", course, due_date="2000-01-01 00:00:00 UTC")
    assert sorted(report.collected) == ["ann", "bob"] and report.late() == {}


def test_bulk_zip_inside_the_inbox_says_what_to_do(tmp_path, course):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _zip(inbox / "s001.zip", {k: v for k, v in CANVAS.items() if k.endswith(".ipynb")})
    report = collect("hw", inbox, course)
    (why,) = [why for _, why in report.problems]
    assert "found 7 notebooks" in why and "pass it as the INBOX itself" in why
    (tmp_path / "notes.txt").write_text("not a zip")
    with pytest.raises(FileNotFoundError, match="is a file but not a zip"):
        collect("hw", tmp_path / "notes.txt", course)


# ---- exports, read back with each importer's rules ----------------------------------------

def _canvas_import(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """Canvas's gradebook_importer.rb rules: header checks, student columns up to 'Section',
    assignment headers matched by 'Title (id)'; returns ({header: assignment id}, {user id: grade})."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert len(header) > 3 and "Student" in header[0] and "ID" in header[1] and "Section" in header
    columns = {}
    for index, title in enumerate(header[header.index("Section") + 1:], start=header.index("Section") + 1):
        if re.search("Current|Final|Override", title):
            continue
        match = re.match(r"\A(.*)\s\((\d+)\)\Z", title)
        assert match, f"{title!r} would create a new assignment"
        columns[title] = index
    (column,) = columns.values()
    grades = {}
    for row in rows[1:]:
        if "Points Possible" in row[0] or all(re.match(r"^\s*(Muted|Manual Posting.*)?\s*$", c) for c in row):
            continue
        assert row[1].isdigit(), f"row {row} has no Canvas user id"
        grades[row[1]] = row[column]
    return {t: int(re.match(r".*\((\d+)\)", t)[1]) for t in columns}, grades


GRADES = pd.DataFrame({"grade": [6.0, 5.4, 4.8, 0.0], "late_penalty": [0.0, 0.6, 1.2, 0.0]},
                      index=["4711", "4712", "5001", "5002"])
MANIFEST = {s: {"student": s, "lms": "canvas", "name": n} for s, n in
            zip(GRADES.index, ["doejane", "doejane", "müllerjürgen", "möllerjörg"])}


def test_canvas_import_layout_uses_user_ids_and_the_named_column(tmp_path):
    path = write_lms("canvas", GRADES, "hw", 6.0, tmp_path, column="Homework 1 (8812)", manifest=MANIFEST)
    text = path.read_text(encoding="utf-8")
    assignments, grades = _canvas_import(text)
    assert assignments == {"Homework 1 (8812)": 8812}
    assert grades == {"4711": "6", "4712": "5.4", "5001": "4.8", "5002": "0"}
    assert list(csv.reader(io.StringIO(text)))[1][:1] == ["Points Possible"]
    assert "müllerjürgen" in text
    with pytest.raises(ValueError, match="name the Canvas assignment column: --lms-column"):
        write_lms("canvas", GRADES, "hw", 6.0, tmp_path, manifest=MANIFEST)
    with pytest.raises(ValueError, match="'hw' has no '\\(id\\)'"):
        write_lms("canvas", GRADES, "hw", 6.0, tmp_path, column="hw", manifest=MANIFEST)
    with pytest.raises(ValueError, match="belong in 'ID'"):
        write_lms("canvas", GRADES, "hw", 6.0, tmp_path, column="Homework 1 (8812)", id_column="SIS Login ID",
                  manifest=MANIFEST)


def test_canvas_gradebook_export_is_filled_in_place(tmp_path):
    export = tmp_path / "2026-11-22T1200_Grades-COURSE.csv"
    export.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,Homework 1 (8812),Quiz (8813),Current Score,Final Score\n"
        "    Points Possible,,,,,6.00,10.00,(read only),(read only)\n"
        ",,,,,Manual Posting,,,\n"
        '"Doe, Jane",4711,S1,jdoe,Sec A,,7.00,70,70\n'
        '"Doe, Jane",4712,S2,jdoe2,Sec A,,8.00,80,80\n'
        '"Müller, Jürgen",5001,S3,jm,Sec A,,9.00,90,90\n'
        '"Möller, Jörg",5002,S4,jmo,Sec A,,,0,0\n'
        '"Student, Test",9999,,,,,,,\n', encoding="utf-8")
    path = write_lms("canvas", GRADES, "hw", 6.0, tmp_path, column="Homework 1 (8812)", gradebook=export,
                     manifest=MANIFEST)
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == next(csv.reader(io.StringIO(export.read_text(encoding="utf-8"))))
    by_id = {row[1]: row for row in rows[3:]}
    assert [by_id[s][5] for s in ("4711", "4712", "5001", "5002")] == ["6", "5.4", "4.8", "0"]
    assert by_id["4711"][6] == "7.00" and by_id["9999"][5] == ""          # other columns untouched
    # the assignment found by its title alone, when the instructor names no column
    write_lms("canvas", GRADES, "Homework 1", 6.0, tmp_path, gradebook=export, manifest=MANIFEST)
    missing = GRADES.rename(index={"5002": "7777"})
    with pytest.raises(ValueError, match=r"1 collected student\(s\) are not in the Canvas gradebook .*7777"):
        write_lms("canvas", missing, "hw", 6.0, tmp_path, column="Homework 1 (8812)", gradebook=export)


def test_canvas_refuses_anonymous_ids_with_the_way_out(tmp_path):
    anon = pd.DataFrame({"grade": [6.0], "late_penalty": [0.0]}, index=["anon_aB3dE"])
    with pytest.raises(ValueError, match="does not grade an anonymous assignment before its grades are posted"):
        write_lms("canvas", anon, "hw", 6.0, tmp_path, column="Homework 1 (8812)",
                  manifest={"anon_aB3dE": {"lms": "canvas"}})


def _moodle_upload(text: str, max_grade: float) -> dict[str, tuple[str, str]]:
    """assignfeedback_offline's importer: finds 'Identifier', 'Grade', 'Last modified (grade)' by
    name, strips 'Participant ', skips grades above the maximum; participant -> (grade, feedback)."""
    reader = csv.DictReader(io.StringIO(text))
    assert {"Identifier", "Grade", "Last modified (grade)"} <= set(reader.fieldnames)
    out = {}
    for row in reader:
        participant = row["Identifier"][len("Participant "):]
        if row["Grade"] and 0 <= float(row["Grade"]) <= max_grade:
            out[participant] = (row["Grade"], row["Feedback comments"])
    return out


def test_moodle_worksheet_is_filled_for_upload(tmp_path):
    sheet = _worksheet(tmp_path / "sheet.csv", SUBMITTED)
    grades = pd.DataFrame({"grade": [6.0, 4.8, 6.0, 5.4, 3.0], "late_penalty": [0.0, 1.2, 0.0, 0.6, 0.0]},
                          index=["1000101", "1000102", "1000103", "1000104", "1000105"])
    path = write_lms("moodle", grades, "hw", 6.0, tmp_path, worksheet=sheet)
    assert path.name == "moodle_worksheet.csv"
    text = path.read_text(encoding="utf-8")
    assert _moodle_upload(text, 6.0) == {"1000101": ("6", ""), "1000102": ("4.8", "late submission penalty: -1.2"),
                                         "1000103": ("6", ""), "1000104": ("5.4", "late submission penalty: -0.6"),
                                         "1000105": ("3", "old comment")}
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["Last modified (grade)"] for r in rows] == ["-"] * 6          # as downloaded
    assert rows[-1]["Identifier"] == "Participant 1000106" and rows[-1]["Grade"] == ""
    with pytest.raises(ValueError, match="maximum grade is 100.00, the notebook's points are 6"):
        write_lms("moodle", grades, "hw", 6.0, tmp_path, worksheet=_worksheet(tmp_path / "s2.csv", {}, "100.00"))
    bad = tmp_path / "bad.csv"
    bad.write_text("Student,Grade,Last modified (grade)\nx,1,-\n")
    with pytest.raises(ValueError, match="not a Moodle grading worksheet: no column 'Identifier'"):
        write_lms("moodle", grades, "hw", 6.0, tmp_path, worksheet=bad)


def test_moodle_grade_import_is_keyed_on_a_user_field_never_the_participant_id(tmp_path):
    grades = pd.DataFrame({"grade": [6.0, 4.8], "late_penalty": [0.0, 1.2]}, index=["1000101", "1000102"])
    manifest = {"1000101": {"lms": "moodle", "Email address": "jane1@example.org", "ID number": ""},
                "1000102": {"lms": "moodle", "Email address": "jane2@example.org", "ID number": "S2"}}
    path = write_lms("moodle", grades, "hw", 6.0, tmp_path, manifest=manifest)
    table = pd.read_csv(path, keep_default_na=False)
    assert list(table.columns) == ["Email address", "hw", "Feedback"]
    assert table["Email address"].tolist() == ["jane1@example.org", "jane2@example.org"]
    assert table["hw"].tolist() == [6.0, 4.8]
    with pytest.raises(ValueError, match=r"no 'ID number' for participant\(s\) 1000101"):
        write_lms("moodle", grades, "hw", 6.0, tmp_path, id_column="ID number", manifest=manifest)
    with pytest.raises(ValueError, match="Moodle participant ids .*--worksheet"):
        write_lms("moodle", grades, "hw", 6.0, tmp_path, manifest={s: {"lms": "moodle"} for s in grades.index})
