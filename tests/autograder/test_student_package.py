"""The student package (`python -m autograder package`): what students get instead of this repository.

It must hold the released notebooks, the library they import and a working Validate, and nothing
of the instructor's: no solution or hidden-test text, no instructor notes, no grading module.
Its README, the notebooks' first cells and the book's *How to use this course* must tell students
a submission file name that `collect` really accepts.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from autograder import __main__ as cli
from autograder.commands.collect import collect, student_id
from autograder.config.course import REPO_ROOT, Course
from autograder.commands.package import STAMP, build_package, student_side_files, zip_path
from autograder.student import cli as student_cli
from autograder.student.settings import VALIDATE_CONFIG
from autograder.student.validate import Report
from tests.support.lab import free_port
from tests.support.leaks import MARKERS, instructor_sources, leaks as find_leaks, meaningful, secrets

EXERCISES = REPO_ROOT / "exercises"
ASSIGNMENTS = sorted(p.name for p in EXERCISES.iterdir() if (p / f"{p.name}.ipynb").is_file())
INSTRUCTOR_NOTES = [REPO_ROOT / "solutions" / "README.md", REPO_ROOT / "autograder" / "README.md"]
TOOL = REPO_ROOT / "autograder"
STUDENT_ROOM = TOOL / "student"
# Grading modules (hidden tests import autograder.checks), the course config, every command: instructor-only.
INSTRUCTOR_MODULES = {p.name for p in TOOL.rglob("*.py") if not p.is_relative_to(STUDENT_ROOM)
                      and p.parent != TOOL / "course"} - {p.name for p in STUDENT_ROOM.rglob("*.py")}
# The Lab's settings the package's Validate must share with grading.
VALIDATE_SETTINGS = (("Execute", "timeout"), ("GuardedExecute", "cpu_budget"), ("CourseValidator", "threads"))
# Library modules that hold answers of the assignments and that no notebook needs.
ANSWER_MODULES = {"attention.py", "norms.py", "positions.py", "swin.py", "deit.py", "attention_maps.py"}
# A submission name as the texts write it: `s1234567_assignment1.ipynb`.
EXAMPLE_NAME = re.compile(r"`(?P<name>(?P<id>[A-Za-z0-9][A-Za-z0-9-]*)_(?P<assignment>assignment\d+)\.ipynb)`")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The package as the instructor makes it: the command line, with --zip."""
    out = tmp_path_factory.mktemp("pkg") / "student-package"
    assert cli.main(["package", "--out", str(out), "--zip"]) == 0
    return out


def package_texts(folder: Path) -> dict[str, str]:
    """Every file of the package folder, and every member of its zip, as text."""
    texts = {str(p.relative_to(folder)): p.read_bytes().decode("utf-8", errors="replace")
             for p in sorted(folder.rglob("*")) if p.is_file()}
    with zipfile.ZipFile(zip_path(folder)) as archive:
        texts |= {f"zip:{name}": archive.read(name).decode("utf-8", errors="replace") for name in archive.namelist()}
    return texts


def instructor_note_lines() -> set[str]:
    """Distinctive lines of the instructor notes (a copy of either note shows up as these)."""
    return {line.strip() for note in INSTRUCTOR_NOTES for line in note.read_text().splitlines()
            if len(line.strip()) >= 40 and meaningful(line.strip())}


def leaks(texts: dict[str, str]) -> list[str]:
    """What of the instructor's a set of package texts carries (empty when nothing)."""
    found = [f"{name}: nbgrader marker" for name, text in texts.items() if MARKERS.search(text)]
    for source in instructor_sources():
        found += find_leaks(texts, secrets(source))
    notes = instructor_note_lines()
    for name, text in texts.items():
        found += [f"{name}: instructor note line {line!r}" for line in notes if line in text]
        if "solutions/" in text:
            found.append(f"{name}: names solutions/")
    return found


def test_the_package_holds_the_student_files_and_nothing_of_the_instructors(package):
    top = {p.name for p in package.iterdir()}
    assert top == {"README.md", "Makefile", "install.py", "pyproject.toml", "exercises", "vitcourse", "autograder", STAMP}
    shipped = {str(p.relative_to(package / "exercises")): p.read_bytes() for p in (package / "exercises").rglob("*")
               if p.is_file()}
    released = {str(p.relative_to(EXERCISES)): p.read_bytes() for p in EXERCISES.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(EXERCISES).parts)}
    assert shipped == released, "the package's exercises/ differs from the released exercises/"
    tool = {p.name for p in (package / "autograder").rglob("*") if p.is_file()}
    assert {"__init__.py", "__main__.py", "validate.py", "lab.py", "cli.py", "settings.py", VALIDATE_CONFIG.name} <= tool
    assert {"checks.py", "grading.py", "execute.py", "course.py", "nbgrader_config.py"} <= INSTRUCTOR_MODULES
    assert not tool & INSTRUCTOR_MODULES, f"instructor modules in the package: {tool & INSTRUCTOR_MODULES}"
    # The student room, copied file for file (no generated module), and its __main__ as the tool's.
    room = {p.relative_to(REPO_ROOT) for p in STUDENT_ROOM.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    copied = student_side_files()
    assert room <= set(copied) and copied[Path("autograder/student/__main__.py")] == Path("autograder/__main__.py")
    assert {str(p.relative_to(package)): p.read_bytes() for p in (package / "autograder").rglob("*") if p.is_file()} \
        == {str(target): (REPO_ROOT / source).read_bytes() for source, target in copied.items()}
    # The settings Validate reads are the ones grading reads (the course config loads the same file).
    course_config = Course().config()
    shipped = PyFileConfigLoader(VALIDATE_CONFIG.name, path=str(package / VALIDATE_CONFIG.relative_to(REPO_ROOT).parent))
    shipped = shipped.load_config()
    for section, name in VALIDATE_SETTINGS:
        assert shipped[section][name] == course_config[section][name], (section, name)
    assert not [p for p in package.rglob("*") if p.name in ("tests", "solutions", "templates", "__pycache__")]
    library = {p.name for p in (package / "vitcourse").glob("*.py")}
    assert {"__init__.py", "assignment2.py", "patches.py", "vit.py", "training.py"} <= library
    assert not library & ANSWER_MODULES, f"answer modules no notebook imports: {library & ANSWER_MODULES}"
    pins = (REPO_ROOT / "pyproject.toml").read_text()
    for spec in re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', (package / "pyproject.toml").read_text()):
        assert f'"{spec}"' in pins, f"{spec} is not the course's pin"
    assert {name.split("/", 1)[1] for name in zipfile.ZipFile(zip_path(package)).namelist()} \
        == {str(p.relative_to(package)) for p in package.rglob("*") if p.is_file() and p.name != STAMP}


def test_no_solution_hidden_test_or_instructor_note_in_the_package(package):
    found = leaks(package_texts(package))
    assert not found, "the student package carries the instructor's text:\n" + "\n".join(found[:20])


def test_the_scan_finds_what_it_looks_for(package):
    """A hidden-test line, a run of solution lines, a note line or a solutions/ path planted in a copy is found."""
    texts = package_texts(package)
    hidden = next(s for s in secrets(REPO_ROOT / "solutions/assignment2/assignment2.md") if "\n" not in s)
    solution = next(s for s in secrets(REPO_ROOT / "solutions/assignment1/assignment1.md") if "\n" in s)
    for planted in (hidden, solution, sorted(instructor_note_lines())[0], "see solutions/assignment1"):
        assert leaks(texts | {"vitcourse/planted.py": f"x = 1\n{planted}\n"}), planted


def test_a_marker_in_a_notebook_stops_the_package(tmp_path):
    exercises = tmp_path / "exercises" / "assignment1"
    exercises.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    nbformat.write(nb, exercises / "assignment1.ipynb")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="BEGIN SOLUTION"):
        build_package(out, Course(root=tmp_path / "course", exercises=tmp_path / "exercises"))
    assert not out.exists()


def test_a_student_side_that_imports_the_instructors_tool_stops_the_package(tmp_path):
    """The student room is copied as it is, so it may import nothing of the tool it does not carry."""
    (tmp_path / "autograder" / "student").mkdir(parents=True)
    (tmp_path / "autograder" / "__init__.py").write_text("")
    (tmp_path / "autograder" / "grade.py").write_text("import os\n")
    (tmp_path / "autograder" / "student" / "__init__.py").write_text("")
    (tmp_path / "autograder" / "student" / "__main__.py").write_text("from autograder.student import cli\n")
    (tmp_path / "autograder" / "student" / "cli.py").write_text("def run():\n    from autograder import grade\n")
    with pytest.raises(ValueError, match=r"the student side imports autograder\.grade, which the student package"):
        student_side_files(tmp_path)
    (tmp_path / "autograder" / "student" / "cli.py").write_text("from autograder.student import __main__\n")
    assert set(student_side_files(tmp_path).values()) == {
        Path("autograder/__init__.py"), Path("autograder/__main__.py"), Path("autograder/student/__init__.py"),
        Path("autograder/student/cli.py")}


def test_package_refuses_to_replace_a_folder_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert cli.main(["package", "--out", str(mine)]) == 2
    assert "not written by `package`" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"
    assert cli.main(["package", "--out", str(REPO_ROOT / "exercises" / "copy")]) == 2
    assert "would overwrite the course's own files" in capsys.readouterr().err
    assert not (REPO_ROOT / "exercises" / "copy").exists()


def test_the_notebooks_imports_resolve_inside_the_package(package):
    """Each import statement of the notebooks runs against the package's own library."""
    statements = set()
    for notebook in sorted((package / "exercises").rglob("*.ipynb")):
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type == "code":
                statements |= {ast.unparse(node) for node in ast.parse(cell.source).body
                               if isinstance(node, (ast.Import, ast.ImportFrom))}
    assert any("vitcourse" in s for s in statements)
    script = "\n".join(sorted(statements) + ["import vitcourse, vitcourse.data.__main__",
                                             "print(vitcourse.__file__)"])
    done = subprocess.run([sys.executable, "-c", script], cwd=package, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(package), done.stdout


def package_env() -> dict[str, str]:
    """The environment of a student's shell: nothing of this repository on the import path."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


RAN_IN = re.compile(r"^\(ran in \d+ s with (at most \d+ s per cell), \d+ math thread\(s\)\)$", re.M)


@pytest.fixture(scope="module")
def student_validate(package) -> str:
    """What `python -m autograder validate` of the package prints for the untouched assignment 1."""
    notebook = package / "exercises" / "assignment1" / "assignment1.ipynb"
    done = subprocess.run([sys.executable, "-m", "autograder", "validate", str(notebook)], cwd=package,
                          env=package_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    return done.stdout


def test_validate_runs_in_the_package(package, student_validate):
    assert re.match(r"\d+ of \d+ test cells fail: q1", student_validate) and "NotImplementedError" in student_validate
    assert "at most 120 s per cell" in student_validate  # the course's Execute.timeout, not nbgrader's 30 s
    other = subprocess.run([sys.executable, "-m", "autograder", "grade", "assignment1"], cwd=package,
                           env=package_env(), capture_output=True, text=True, timeout=60)
    assert other.returncode == 2 and "invalid choice: 'grade'" in other.stderr
    assert "{validate,lab}" in other.stderr  # the student commands, and no other


def test_the_package_validate_prints_the_course_validate_report(package, student_validate):
    """On the untouched assignment 1 the package and the course print the same report
    (the time taken and the threads chosen for the machine's load aside)."""
    notebook = EXERCISES / "assignment1" / "assignment1.ipynb"
    done = subprocess.run([sys.executable, "-m", "autograder", "validate", str(notebook)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert RAN_IN.search(student_validate) and RAN_IN.search(done.stdout), (student_validate, done.stdout)
    assert RAN_IN.sub(r"\1", student_validate) == RAN_IN.sub(r"\1", done.stdout)


def test_the_student_validate_says_what_the_instructor_validate_says(monkeypatch, tmp_path, capsys):
    """The package's entry point and `python -m autograder validate` print a report alike (text and --json)."""
    import autograder.student.validate as validate

    notebook = tmp_path / "a.ipynb"
    notebook.write_text("{}")
    report = Report(results={"failed": [{"source": "# q1 visible tests", "raw_error": "AssertionError: no"}]},
                    tests=["q1_tests", "q2_tests"], failing=["q1_tests"], seconds=2.0, cell_timeout=120,
                    wall_clock=600, threads=1)
    monkeypatch.setattr(validate, "validate_notebook", lambda path: report)
    for flags in ([], ["--json"]):
        outputs = []
        for main in (student_cli.main, cli.main):
            assert main(["validate", *flags, str(notebook)]) == 1
            outputs.append(capsys.readouterr().out)
        assert outputs[0] == outputs[1] and "q1 visible tests" in outputs[0]
    assert json.loads(outputs[0])["lab_value"] == report.lab_value()
    monkeypatch.undo()
    assert student_cli.main(["validate", str(tmp_path / "missing.ipynb")]) == 2
    assert f"missing.ipynb does not exist: the notebooks in {tmp_path} are a.ipynb" in capsys.readouterr().err


@contextlib.contextmanager
def package_lab(package: Path, log: Path, env: dict[str, str]):
    """The package's student Lab, started as its `python -m autograder lab` starts it, from `package`
    with the environment `env`; yields (the argv, env and lab.py it used, api(path, method, body))."""
    port = free_port()
    script = (f"import json, autograder.student.lab as lab\nfrom autograder.student.settings import EXERCISES\n"
              f"argv, env = lab.lab_command('student', EXERCISES, port={port}, browser=False, "
              f"extra=['--IdentityProvider.token=t', '--ServerApp.ip=127.0.0.1'])\n"
              f"print(json.dumps({{'lab': lab.__file__, 'argv': argv, 'env': env}}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=package, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    started = json.loads(done.stdout)
    server = subprocess.Popen(started["argv"], env=started["env"], cwd=package / "exercises",
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": "token t", "Content-Type": "application/json"}

    def api(path, method="GET", body=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{base}/{path}", method=method, headers=headers, data=data)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            return json.loads(text) if text.strip() else None
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                api("api/status", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        yield started, api
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_student_lab_runs_from_the_package(package, tmp_path):
    """`python -m autograder lab` of the package: its own lab.py and lab_config/student/ (not the
    instructor's), and its Validate button answered by the package's `validate --json`."""
    env = package_env() | {"VITCOURSE_LAB_STATE": str(tmp_path / "state")}
    helped = subprocess.run([sys.executable, "-m", "autograder", "lab", "--help"], cwd=package, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "usage: python -m autograder lab" in helped.stdout, helped.stderr
    log = tmp_path / "lab.log"
    with package_lab(package, log, env) as (started, api):
        assert Path(started["lab"]).is_relative_to(package)
        assert started["env"]["JUPYTER_CONFIG_DIR"] == str(package / "autograder" / "student" / "lab_config")
        assert started["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(package)
        assert f"--ServerApp.root_dir={package / 'exercises'}" in started["argv"]
        assert not (package / "autograder" / "config").exists()   # the instructor's Lab config stays home
        answer = api("assignments/validate?path=assignment1/assignment1.ipynb", method="POST", timeout=300)
    text = log.read_text()
    assert "autograder.student.lab: Validate runs" in text, text[-3000:]
    assert answer["success"], answer
    head, *failed = answer["value"]["failed"]
    assert re.match(r"\d+ of \d+ test cells fail: q1", head["source"]) and failed, answer


def test_two_copies_of_the_package_keep_their_own_lab_state(package, tmp_path):
    """Each copy's Lab keeps its settings, workspaces, runtime files and checkpoints in the copy's own
    .lab-state/ (ignored by git): a checkpoint or a workspace saved in one is not seen from the other."""
    env = {key: value for key, value in package_env().items() if key != "VITCOURSE_LAB_STATE"}
    copies = [tmp_path / name / "student-package" for name in ("first", "second")]
    for copy in copies:
        shutil.copytree(package, copy)
    notebook = "api/contents/assignment1/assignment1.ipynb/checkpoints"
    with package_lab(copies[0], tmp_path / "first.log", env) as (started, api):
        state = copies[0] / ".lab-state" / "student"
        assert {started["env"][name] for name in ("JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                                                  "JUPYTERLAB_WORKSPACES_DIR", "VITCOURSE_LAB_CHECKPOINTS")} \
            == {str(state / name) for name in ("runtime", "user-settings", "workspaces", "checkpoints")}
        checkpoint = api(notebook, method="POST")
        api("lab/api/workspaces/mine", method="PUT", body={"data": {}, "metadata": {"id": "mine"}})
        assert [c["id"] for c in api(notebook)] == [checkpoint["id"]]
    assert list((state / "checkpoints").rglob("assignment1-*.ipynb")), "the checkpoint is not in the copy"
    assert list((state / "workspaces").glob("mine*")), "the workspace is not in the copy"
    assert (copies[0] / ".lab-state" / ".gitignore").read_text().splitlines()[-1] == "*"
    with package_lab(copies[1], tmp_path / "second.log", env) as (started, api):
        assert started["env"]["VITCOURSE_LAB_CHECKPOINTS"] == str(copies[1] / ".lab-state" / "student" / "checkpoints")
        assert api(notebook) == []
        assert "mine" not in api("lab/api/workspaces")["workspaces"]["ids"]
    for copy in copies:  # nothing next to the notebooks
        assert not list((copy / "exercises").rglob(".ipynb_checkpoints"))


def submission_examples(text: str) -> list[re.Match]:
    return list(EXAMPLE_NAME.finditer(text))


def test_every_student_text_names_a_file_collect_accepts(tmp_path):
    texts = {"student/README.md": (REPO_ROOT / "student" / "README.md").read_text(),
             "book/how_to_use.md": (REPO_ROOT / "book" / "how_to_use.md").read_text()}
    for assignment in ASSIGNMENTS:
        intro = nbformat.read(EXERCISES / assignment / f"{assignment}.ipynb", as_version=4).cells[0].source
        texts[f"{assignment} intro"] = intro
        assert f"`<your-id>_{assignment}.ipynb`" in intro
        assert [m["assignment"] for m in submission_examples(intro)] == [assignment], intro
    for name, text in texts.items():
        examples = submission_examples(text)
        assert examples, f"{name} shows no example submission name"
        for example in examples:
            assert example["assignment"] in ASSIGNMENTS, f"{name}: {example['name']} is no assignment"
            assert student_id(example["name"], "default") == example["id"], f"{name}: {example['name']}"
        assert "notebook toolbar" in text, f"{name}: where Validate is"
        assert "hidden tests" in text and "only when" in text, f"{name}: that Validate runs no hidden test"
    # The README's example, uploaded as is, is collected for that student.
    example = submission_examples(texts["student/README.md"])[0]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / example["name"]).write_bytes(
        (EXERCISES / example["assignment"] / f"{example['assignment']}.ipynb").read_bytes())
    report = collect(example["assignment"], inbox, Course(root=tmp_path / "course"))
    assert list(report.collected) == [example["id"]] and not report.problems


def test_student_texts_name_the_menus_and_commands_that_exist():
    """JupyterLab 4's menu item, Validate's place, and `make lab` (the package's and the course's alike)."""
    student_texts = [(REPO_ROOT / "student" / "README.md").read_text(), (REPO_ROOT / "book" / "how_to_use.md").read_text()]
    student_texts += [p.read_text() for p in EXERCISES.rglob("*.ipynb")]
    for text in student_texts:
        assert "Restart & Run All" not in text and "Assignments toolbar" not in text
    assert all("Restart Kernel and Run All Cells" in text for text in student_texts)
    assert all("make lab" in text for text in student_texts[:2])

    def recipe(makefile: Path, target: str) -> list[str]:
        """The command lines of `target`: the tab-indented lines after its rule."""
        lines = makefile.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:")) + 1
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("\t")), len(lines))
        return [line.strip() for line in lines[start:end]]

    assert recipe(REPO_ROOT / "student" / "Makefile", "lab") == recipe(REPO_ROOT / "Makefile", "lab"), \
        "student/Makefile's `make lab` must start JupyterLab as the course's Makefile does"


def test_the_package_installs_the_library_and_validate_with_the_course_pins(package, tmp_path):
    """`pip install -e .` in the package builds from its pyproject.toml: the wheel shows what it installs."""
    copy = tmp_path / "package"
    shutil.copytree(package, copy)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           ".", "-w", str(tmp_path / "wheel")], cwd=copy, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl"))) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {"vitcourse/vit.py", "vitcourse/data/__main__.py", "autograder/student/validate.py", "autograder/__main__.py",
            "autograder/student/lab.py", "autograder/student/validate_config.py",
            "autograder/student/lab_config/jupyter_server_config.py",
            "autograder/student/lab_config/custom/custom.css"} <= names
    requires = set(re.findall(r"^Requires-Dist: (\S+)$", metadata, re.M))
    pins = set(re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', (REPO_ROOT / "pyproject.toml").read_text()))
    assert requires <= pins and {r.split("==")[0] for r in requires} >= {"torch", "numpy", "jupyterlab", "nbgrader"}
