"""pyproject.toml is the one place versions are pinned; environment.yml must mirror it."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"jupyter-book", "jupytext", "nbgrader", "numpy", "torch", "matplotlib", "pandas",
            "jupyterlab", "tqdm", "pytest"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    pins = {}
    for spec in specs:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;,]+)", spec.strip())
        assert match, f"pyproject.toml: {spec!r} is not pinned with == (every dependency must be)"
        pins[_canonical(match[1])] = match[2]
    return pins


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                if spec.startswith("-e"):
                    continue
                name, version = spec.split("==")
                pins[_canonical(name)] = version
        elif "=" in dep:
            name, version = dep.split("=", 1)
            if _canonical(name) not in {"python", "nodejs"}:
                pins[_canonical(name)] = version
    return pins


def test_every_required_package_is_pinned_in_pyproject():
    assert REQUIRED <= set(pyproject_pins())


def test_torch_is_pinned_exactly_to_the_cpu_wheel_on_disk():
    assert pyproject_pins()["torch"] == "2.13.0"


def test_jupyter_book_is_the_sphinx_one():
    assert pyproject_pins()["jupyter-book"].startswith("1.")


def test_environment_yml_mirrors_pyproject():
    assert environment_pins() == pyproject_pins()


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name in ["torch", "numpy", "pandas", "jupyter-book", "nbgrader", "jupytext"]:
        installed = version(name).split("+")[0]
        assert installed == pyproject_pins()[name], f"{name}: installed {installed}, pinned {pyproject_pins()[name]}; run make setup"


def test_mathjax_is_pinned_to_version_3():
    import json

    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/mathjax"]["version"].startswith("3.")
    assert json.loads((ROOT / "package.json").read_text())["dependencies"]["mathjax"] == \
        lock["packages"]["node_modules/mathjax"]["version"]


@pytest.mark.parametrize("path", ["README.md", ".ci/run"])
def test_ci_runs_the_readme_test_command(path):
    assert "make test" in (ROOT / path).read_text()
