"""The autograder's rooms (autograder/README.md, "Rooms"): no import cycle, each room imports only
the rooms it may (the sandbox and the student side stand alone), and the paths outside code names
(released gradebooks' hidden tests, the nbgrader and Lab configurations) still resolve."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.import_graph import find_cycle, import_graph

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "autograder"
# What each room may import of the tool (its own modules always). The sandbox is the security
# boundary: it needs only the course layout and the helpers the tests it runs use; the student side
# ships alone; the hidden tests' API (checks, grading) reads values through the channel only.
MAY_IMPORT = {
    "config": set(),
    "sandbox": {"config", "grading"},
    "grading": {"sandbox"},
    "checks": set(),
    "runner": {"config", "sandbox"},
    "student": set(),
    "commands": {"config", "runner", "sandbox", "student"},
    "samples": {"config", "commands"},
    "__main__": {"config", "commands", "student"},
}
COMMANDS = ["release", "collect", "grade", "feedback", "similarity", "export", "validate", "package", "lab",
            "formgrader", "doctor"]


def room(module: str) -> str:
    """'autograder.sandbox.execute' -> 'sandbox'; 'autograder.checks' -> 'checks'."""
    return module.split(".")[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(TOOL, ROOT, skip=("course",))   # course/: the generated course folder


def test_the_autograder_has_no_import_cycle(graph):
    assert graph["autograder.commands.grade"] >= {"autograder.runner.local_executor",
                                                  "autograder.runner.dask_executor"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_walker_finds_a_cycle_through_relative_and_lazy_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "runner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "runner" / "__init__.py").write_text("")
    (package / "grade.py").write_text("def run():\n    from .runner import dask\n")
    (package / "runner" / "dask.py").write_text("from ..grade import run\n")
    (package / "runner" / "local.py").write_text("from . import dask\n")
    graph = import_graph(package, tmp_path)
    assert graph["pkg.runner.local"] == {"pkg.runner.dask"}
    assert find_cycle(graph) == ["pkg.grade", "pkg.runner.dask", "pkg.grade"]
    (package / "runner" / "dask.py").write_text("import os\n")
    assert find_cycle(import_graph(package, tmp_path)) is None


def test_each_room_imports_only_the_rooms_it_may(graph):
    assert set(MAY_IMPORT) == {room(name) for name in graph if name != "autograder"}, "a room without a rule"
    wrong = [f"{name} imports {target}" for name, targets in sorted(graph.items()) if name != "autograder"
             for target in sorted(targets)
             if room(target) != room(name) and room(target) not in MAY_IMPORT[room(name)]]
    assert not wrong, "\n".join(wrong)


def test_the_configured_class_paths_resolve():
    """nbgrader and the Lab name classes by dotted path in their configuration files: each must import."""
    configs = [TOOL / "config" / "nbgrader_config.py", *TOOL.glob("**/jupyter_server_config.py")]
    pattern = re.compile(r"[\"'](autograder(?:\.\w+)+)[\"']")
    paths = {match for path in configs for match in pattern.findall(path.read_text())}
    assert {"autograder.sandbox.execute.GuardedExecute", "autograder.student.lab"} <= paths
    for path in sorted(paths):
        try:
            importlib.import_module(path)
        except ImportError:
            module, _, name = path.rpartition(".")
            assert hasattr(importlib.import_module(module), name), path


def test_the_paths_released_notebooks_and_the_command_line_use_still_work():
    """Hidden tests in released gradebooks do `from autograder import checks, grading`; the command
    line lists the same commands; `import autograder, vitcourse` works in a fresh interpreter."""
    code = ("import autograder, vitcourse\nfrom autograder import checks, grading\n"
            "print(callable(checks.assert_close), callable(grading.secret_seed))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["True", "True"], done.stderr
    helped = subprocess.run([sys.executable, "-m", "autograder", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "{" + ",".join(COMMANDS) + "}" in helped.stdout
