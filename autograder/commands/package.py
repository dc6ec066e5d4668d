"""`package`: the folder (and zip) that students get; this repository is the instructor's.

What goes in:
  exercises/          the released assignments (run `python -m autograder release --all` first)
  vitcourse/          the library modules the notebooks import, and the modules those import
  autograder/         the student side of the tool, copied as it is: autograder/student/ (Validate,
                      the student Lab and its lab_config/, validate_config.py: the settings Validate
                      reads, which grading loads too), autograder/__init__.py, and
                      autograder/student/__main__.py as autograder/__main__.py (`python -m
                      autograder validate|lab`)
  README.md, Makefile, install.py from student/: set-up (install.py checks the Python, rebuilds
                      a broken .venv, picks PyTorch's build), `make lab`, Validate, how to submit
  pyproject.toml      generated: installs the library with the repository's pins for the
                      packages students need (the library's own, JupyterLab and nbgrader)
What never goes in: solutions/, tests/, hidden tests, instructor notes, the grading modules.
The student side must import nothing else of `autograder` (checked before anything is written).
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
from autograder.commands.release import FORBIDDEN_MARKERS

DEFAULT_OUT = REPO_ROOT / "_build" / "student-package"
STUDENT_FILES = REPO_ROOT / "student"  # STUDENT_TEXTS of the package
STUDENT_TEXTS = ("README.md", "Makefile", "install.py")
STAMP = ".vitcourse-student-package"   # marks a folder this command may overwrite
LIBRARY = "vitcourse"
# Besides what the notebooks import: the package itself and `python -m vitcourse.data fetch`.
LIBRARY_ROOTS = ("vitcourse", "vitcourse.data.__main__")
TOOL = "autograder"
# The student side of the tool: this folder of autograder/ is copied whole; with the package's
# own __init__.py, and STUDENT_MAIN as the package's autograder/__main__.py.
STUDENT_ROOM = Path(TOOL) / "student"
STUDENT_MAIN = STUDENT_ROOM / "__main__.py"
TOOL_FILES = {Path(TOOL) / "__init__.py": Path(TOOL) / "__init__.py",
              STUDENT_MAIN: Path(TOOL) / "__main__.py"}
LAB_CONFIG = "student/lab_config"   # package data of `autograder` in the package's pyproject.toml
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


def _shipped(path: Path, folder: Path) -> bool:
    """Whether a file under `folder` belongs in the package (no dotfiles, no __pycache__)."""
    return path.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                      for part in path.relative_to(folder).parts)


def student_side_files(root: Path = REPO_ROOT) -> dict[Path, Path]:
    """{source: target}, relative to `root` and the package: the student room copied whole, plus
    TOOL_FILES. Raises ValueError when the student room imports a module of the tool it would not
    carry (the student side must stand alone)."""
    room = root / STUDENT_ROOM
    files = {path.relative_to(root): path.relative_to(root)
             for path in sorted(room.rglob("*")) if _shipped(path, room)}
    files.update(TOOL_FILES)
    modules = {".".join(path.with_suffix("").parts) for path in files if path.suffix == ".py"}
    modules = {name.removesuffix(".__init__") for name in modules}
    needed = module_closure(modules, root, TOOL)
    outside = sorted(name for name in needed if name not in modules)
    if outside:
        raise ValueError(f"the student side imports {', '.join(outside)}, which the student package does not "
                         f"ship: move what it needs into {STUDENT_ROOM}/")
    return files


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
             f'{TOOL} = ["{LAB_CONFIG}/*", "{LAB_CONFIG}/*/*"]', ""]
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
    released = sorted(p for p in course.exercises.rglob("*") if _shipped(p, course.exercises))
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
    imports = set().union(*(notebook_imports(p) for p in notebooks))
    library = module_closure(imports | set(LIBRARY_ROOTS), REPO_ROOT, LIBRARY)
    tool = student_side_files()
    _prepare_out(out)
    written = [_copy(p, out / "exercises" / p.relative_to(course.exercises)) for p in released]
    written += [_copy(path, out / path.relative_to(REPO_ROOT)) for path in sorted(library.values())]
    written += [_copy(REPO_ROOT / source, out / target) for source, target in sorted(tool.items())]
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
