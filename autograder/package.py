"""`package`: the folder (and zip) that students get; this repository is the instructor's.

What goes in:
  exercises/          the released assignments (run `python -m autograder release --all` first)
  vitcourse/          the library modules the notebooks import, and the modules those import
  autograder/         the student side of the tool only: `python -m autograder validate`
  README.md, Makefile from student/: set-up, `make lab`, Validate, how and where to submit
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

from .course import REPO_ROOT, Course
from .release import FORBIDDEN_MARKERS

DEFAULT_OUT = REPO_ROOT / "_build" / "student-package"
STUDENT_FILES = REPO_ROOT / "student"  # README.md and Makefile of the package
STAMP = ".vitcourse-student-package"   # marks a folder this command may overwrite
LIBRARY = "vitcourse"
# Besides what the notebooks import: the package itself and `python -m vitcourse.data fetch`.
LIBRARY_ROOTS = ("vitcourse", "vitcourse.data.__main__")
TOOL = "autograder"
# The student side of the tool: Validate and what it imports, with STUDENT_MAIN as its command
# line (the instructor's __main__ names every instructor command and folder).
TOOL_ROOTS = ("autograder", "autograder.validate")
STUDENT_MAIN = '''"""The student side of the course tool: python -m autograder validate NOTEBOOK.

Runs the notebook from a fresh kernel, top to bottom, and reports changed locked cells and the
visible tests that fail. The hidden tests run only when the notebook is graded.
"""

import argparse
import sys
from pathlib import Path

from autograder.validate import describe, validate_notebook


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="run a notebook and report failing visible tests").add_argument("notebook")
    args = parser.parse_args(argv)
    try:
        results = validate_notebook(Path(args.notebook))
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\\n".join(describe(results)))
    return 1 if results else 0


if __name__ == "__main__":
    sys.exit(main())
'''
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


def module_closure(roots: set[str], root: Path, top: str) -> dict[str, Path]:
    """The modules of package `top` (found under `root`) that importing `roots` can load."""
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
        if path is None or name in found:
            continue
        found[name] = path
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        todo += sorted(_imported_modules(tree, name, path.name == "__init__.py") - set(found))
    return found


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
             "[tool.setuptools.packages.find]", f'include = ["{LIBRARY}*", "{TOOL}*"]', ""]
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
    for name in ("README.md", "Makefile"):
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
    tool = module_closure(set(TOOL_ROOTS), REPO_ROOT, TOOL)
    for path in sorted(set(library.values()) | set(tool.values())):
        written.append(_copy(path, out / path.relative_to(REPO_ROOT)))
    (out / TOOL / "__main__.py").write_text(STUDENT_MAIN, encoding="utf-8")
    written.append(out / TOOL / "__main__.py")
    written += [_copy(STUDENT_FILES / name, out / name) for name in ("README.md", "Makefile")]
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
