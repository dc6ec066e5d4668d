"""`package`: the folder (and zip) that students get; this repository is the instructor's.

What goes in:
  exercises/          the released assignments (run `python -m autograder release --all` first)
  vitcourse/          the library modules the notebooks import, and the modules those import
  autograder/         the student side of the tool only: `python -m autograder validate` and
                      `python -m autograder lab` (validate.py, lab.py and lab_config/student/ as
                      they are; a student __main__.py, course.py and export.py; validate_config.py,
                      the settings Validate reads, written from autograder/config/nbgrader_config.py)
  README.md, Makefile, install.py from student/: set-up (install.py checks the Python, rebuilds
                      a broken .venv, picks PyTorch's build), `make lab`, Validate, how to submit
  pyproject.toml      generated: installs the library with the repository's pins for the
                      packages students need (the library's own, JupyterLab and nbgrader)
What never goes in: solutions/, tests/, hidden tests, instructor notes, the grading modules.
Every file written is checked for nbgrader's solution and hidden-test markers.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import tomllib
import zipfile
from pathlib import Path

from autograder.config.course import REPO_ROOT, Course
from .release import FORBIDDEN_MARKERS

DEFAULT_OUT = REPO_ROOT / "_build" / "student-package"
STUDENT_FILES = REPO_ROOT / "student"  # STUDENT_TEXTS of the package
STUDENT_TEXTS = ("README.md", "Makefile", "install.py")
STAMP = ".vitcourse-student-package"   # marks a folder this command may overwrite
LIBRARY = "vitcourse"
# Besides what the notebooks import: the package itself and `python -m vitcourse.data fetch`.
LIBRARY_ROOTS = ("vitcourse", "vitcourse.data.__main__")
TOOL = "autograder"
# The student side of the tool: Validate and the student Lab, with what they import, and
# STUDENT_MAIN as its command line (the instructor's __main__ names every instructor command).
TOOL_ROOTS = ("autograder", "autograder.__main__", "autograder.validate", "autograder.lab")
# The Lab's configuration folder (lab.py's CONFIG_ROOT / "student"); never lab_config/instructor.
LAB_CONFIG = Path(TOOL) / "lab_config" / "student"
# What validate.py reads of the course configuration (autograder/config/nbgrader_config.py): the
# package's VALIDATE_CONFIG holds these settings, with the course's values, and nothing else.
VALIDATE_SETTINGS = (("Execute", "timeout"), ("GuardedExecute", "cpu_budget"), ("CourseValidator", "threads"))
VALIDATE_CONFIG = "validate_config.py"
STUDENT_MAIN = '''"""The student side of the course tool.

  python -m autograder validate NOTEBOOK   run the notebook from a fresh kernel, top to bottom,
                                           with the course's limits; report changed locked cells
                                           and the visible tests that fail (hidden tests run
                                           only when the notebook is graded)
  python -m autograder lab                 JupyterLab on exercises/ with the Validate button
                                           (other options go to jupyter lab)
"""

import argparse
import json
import sys
from pathlib import Path


def cmd_validate(args) -> int:
    from autograder.validate import validate_notebook

    report = validate_notebook(Path(args.notebook))
    print(json.dumps(report.as_json()) if args.json else "\\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_lab(args) -> int:
    from autograder.config.course import Course
    from autograder.lab import run_lab

    return run_lab("student", Course().exercises, args.jupyter_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="run a notebook with the course's limits and report failing "
                                        "visible tests (hidden tests run only when graded)")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true", help="print the report as JSON (the Lab's Validate button reads it)")
    p.set_defaults(run=cmd_validate)
    p = sub.add_parser("lab", help="JupyterLab on exercises/ with the Validate button; other options go to jupyter lab")
    p.set_defaults(run=cmd_lab)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.jupyter_args = extra  # lab: passed on to jupyter lab
    try:
        return args.run(args)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
'''
# lab.py and validate.py import these two modules of the instructor's tool; the package gets
# student versions: the course layout of the package, and export.py's question_of only.
STUDENT_COURSE = f'''"""Where the student package keeps things: exercises/, and the course's settings of Validate.

The course tool's own module of this name knows the instructor's folders; the package's
Validate and Lab need only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CONFIG_FILE = PACKAGE_DIR / "{VALIDATE_CONFIG}"


@dataclass(frozen=True)
class Course:
    """The package's folders: the assignments are in exercises/."""

    exercises: Path = REPO_ROOT / "exercises"

    def config(self):
        """The settings Validate reads ({VALIDATE_CONFIG}, written from the course's configuration)."""
        return PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
'''
STUDENT_EXPORT_DOC = '"""The question a grade id belongs to (copied from the course tool\'s export module)."""'
STUDENT_EXPORT_NAMES = ("question_of",)
STUDENT_EXPORT_IMPORTS = ("import re",)
# Packages a student installs besides the library's own dependencies (pins from pyproject.toml).
STUDENT_EXTRAS = ("jupyterlab", "nbgrader")


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import statement in `tree` may load (lazy imports included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return names


def module_closure(roots: set[str], root: Path, top: str,
                   replaced: dict[str, str] | None = None) -> dict[str, Path]:
    """The modules of package `top` (found under `root`) that importing `roots` can load.

    `replaced` maps module names to the source the package carries instead of the file
    (their imports are followed in that source, not in the file's).
    """
    replaced = replaced or {}
    found: dict[str, Path] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        if parts[0] != top:
            continue
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) not in found]
        path = _module_file(root, name)
        if name in replaced and path is None:
            path = root.joinpath(*parts).with_suffix(".py")
        if path is None or name in found:
            continue
        found[name] = path
        source = replaced[name] if name in replaced else path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        todo += sorted(_imported_modules(tree, name, path.name == "__init__.py") - set(found))
    return found


def student_export(export: Path = REPO_ROOT / TOOL / "export.py") -> str:
    """The package's export.py: STUDENT_EXPORT_NAMES, their source copied from the course's export.py."""
    text = export.read_text(encoding="utf-8")
    defined = {node.name: ast.get_source_segment(text, node) for node in ast.parse(text).body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    missing = [name for name in STUDENT_EXPORT_NAMES if name not in defined]
    if missing:
        raise ValueError(f"{export} defines no {', '.join(missing)}: validate.py imports it from there")
    return "\n".join([STUDENT_EXPORT_DOC, "", *STUDENT_EXPORT_IMPORTS, "", "",
                      "\n\n\n".join(defined[name] for name in STUDENT_EXPORT_NAMES), ""])


def validate_config(course: Course | None = None) -> str:
    """The package's VALIDATE_CONFIG: the VALIDATE_SETTINGS of the course's configuration, same values."""
    config = (course or Course()).config()
    lines = ["# Generated by `python -m autograder package` from the course's configuration: the settings",
             "# that Validate (`python -m autograder validate`, the Lab's Validate button) reads.",
             "c = get_config()  # noqa: F821", ""]
    for section, name in VALIDATE_SETTINGS:
        if section not in config or name not in config[section]:
            raise ValueError(f"the course's configuration sets no c.{section}.{name}: Validate reads it")
        value = config[section][name]
        if not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"c.{section}.{name} = {value!r}: the package's {VALIDATE_CONFIG} takes plain values")
        lines.append(f"c.{section}.{name} = {value!r}")
    return "\n".join(lines) + "\n"


def _cell_code(source: str) -> str:
    """A code cell's Python, without IPython's magics and shell escapes."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def notebook_imports(notebook: Path) -> set[str]:
    """The modules the code cells of `notebook` import."""
    names = set()
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(_cell_code(source))
        except SyntaxError as error:
            raise ValueError(f"{notebook}: a code cell does not parse ({error.msg}, line {error.lineno}); "
                             "fix the source in solutions/ and release again") from None
        names |= _imported_modules(tree, "__main__", False)
    return names


def student_pyproject(repo_pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """pyproject.toml of the package: the library's dependencies plus STUDENT_EXTRAS, same pins."""
    project = tomllib.loads(repo_pyproject.read_text(encoding="utf-8"))["project"]
    extras = [spec for specs in project.get("optional-dependencies", {}).values() for spec in specs]
    chosen = {}
    for name in STUDENT_EXTRAS:
        specs = [s for s in extras if re.split(r"[=<>!~\[; ]", s, maxsplit=1)[0].lower() == name]
        if not specs:
            raise ValueError(f"{repo_pyproject} pins no {name!r} in [project.optional-dependencies]: "
                             "the student package needs it")
        chosen[name] = specs[0]
    dependencies = list(project["dependencies"]) + list(chosen.values())
    lines = ["# Generated by `python -m autograder package` from the course's pyproject.toml (same pins).",
             "[build-system]", 'requires = ["setuptools>=68"]', 'build-backend = "setuptools.build_meta"', "",
             "[project]", 'name = "vitcourse-student"', f'version = {json.dumps(project["version"])}',
             'description = "Vision Transformers, step by step: the assignments and the course library, for students."',
             f'requires-python = {json.dumps(project["requires-python"])}',
             "dependencies = [", *[f"    {json.dumps(spec)}," for spec in dependencies], "]", "",
             "[tool.setuptools.packages.find]", f'include = ["{LIBRARY}*", "{TOOL}*"]', "",
             "[tool.setuptools.package-data]",  # the student Lab's configuration folder
             f'{TOOL} = ["{LAB_CONFIG.relative_to(TOOL).as_posix()}/*", "{LAB_CONFIG.relative_to(TOOL).as_posix()}/*/*"]', ""]
    return "\n".join(lines)


def zip_path(out: Path) -> Path:
    """The zip written next to the package folder `out`: OUT.zip."""
    return out.parent / f"{out.name}.zip"


def _prepare_out(out: Path) -> None:
    """Empty `out`, refusing a non-empty folder that an earlier package run did not write."""
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} is a file; give --out a folder for the student package")
        if any(out.iterdir()) and not (out / STAMP).is_file():
            raise FileExistsError(f"{out} is not empty and was not written by `package`: "
                                  "give --out a new or empty folder (it is replaced on every run)")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def build_package(out: Path = DEFAULT_OUT, course: Course | None = None, *, make_zip: bool = False) -> list[Path]:
    """Write the student package into `out` (replaced); returns the files written (and the zip)."""
    course = course or Course()
    released = sorted(p for p in course.exercises.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part == "__pycache__" for part in p.relative_to(course.exercises).parts))
    notebooks = [p for p in released if p.suffix == ".ipynb"]
    if not notebooks:
        raise FileNotFoundError(f"no released notebook under {course.exercises}: "
                                "run `python -m autograder release --all` first")
    for name in STUDENT_TEXTS:
        if not (STUDENT_FILES / name).is_file():
            raise FileNotFoundError(f"{STUDENT_FILES / name} is missing: the package's {name} comes from there")
    out = out.resolve()
    sources = [REPO_ROOT / name for name in ("exercises", "solutions", "student", LIBRARY, TOOL)]
    if REPO_ROOT.is_relative_to(out) or any(out.is_relative_to(p) for p in sources + [course.exercises]):
        raise ValueError(f"--out {out} would overwrite the course's own files; give a folder of its own "
                         "(default: _build/student-package)")
    _prepare_out(out)
    written = [_copy(p, out / "exercises" / p.relative_to(course.exercises)) for p in released]
    imports = set().union(*(notebook_imports(p) for p in notebooks))
    library = module_closure(imports | set(LIBRARY_ROOTS), REPO_ROOT, LIBRARY)
    student_modules = {f"{TOOL}.__main__": STUDENT_MAIN, f"{TOOL}.course": STUDENT_COURSE,
                       f"{TOOL}.export": student_export()}
    tool = module_closure(set(TOOL_ROOTS), REPO_ROOT, TOOL, student_modules)
    for path in sorted(set(library.values()) | {p for name, p in tool.items() if name not in student_modules}):
        written.append(_copy(path, out / path.relative_to(REPO_ROOT)))
    generated = {tool[name].relative_to(REPO_ROOT): text for name, text in student_modules.items() if name in tool}
    generated[Path(TOOL) / VALIDATE_CONFIG] = validate_config(course)
    for relative, text in sorted(generated.items()):
        (out / relative).write_text(text, encoding="utf-8")
        written.append(out / relative)
    written += [_copy(p, out / p.relative_to(REPO_ROOT)) for p in sorted((REPO_ROOT / LAB_CONFIG).rglob("*"))
                if p.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                           for part in p.relative_to(REPO_ROOT / LAB_CONFIG).parts)]
    written += [_copy(STUDENT_FILES / name, out / name) for name in STUDENT_TEXTS]
    (out / "pyproject.toml").write_text(student_pyproject(), encoding="utf-8")
    written.append(out / "pyproject.toml")
    for path in written:
        leaks = [m for m in FORBIDDEN_MARKERS if m in path.read_bytes().decode("utf-8", errors="replace")]
        if leaks:
            shutil.rmtree(out)
            raise RuntimeError(f"{path.relative_to(out)} would carry {leaks} to students; package not written")
    (out / STAMP).write_text("written by `python -m autograder package`; replaced on every run\n")
    if make_zip:
        archive = zip_path(out)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(written):
                zipped.write(path, Path(out.name) / path.relative_to(out))
        written.append(archive)
    return written
