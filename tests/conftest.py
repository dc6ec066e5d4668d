"""The tests that need the whole machine, marked ``serial``: `make test` runs every other test on all
cores (pytest-xdist, one test file per worker) and these afterwards, alone (`pytest -m serial`).

A test needs the whole machine when what it checks depends on the load beside it: it starts its
own CPU hog per core (the grading must hold under exactly that load, not more), it measures CPU or
memory budgets, or it times a browser. Add a test here (by file, or file and test names) rather than
in the test file, so the list stays in one place with its reasons; a stale entry stops the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# file (under tests/) -> None (the whole file: its module fixture does the loaded work) or the tests that need it.
SERIAL: dict[str, tuple[str, ...] | None] = {
    "autograder/test_autograder_assignment1.py": None,  # grades beside a CPU hog per core
    "autograder/test_autograder_assignment2.py": None,  # grades (and trains) on both cores, with 60 s cell timeouts
    "autograder/test_autograder_hostile.py": None,      # one parallel batch beside a CPU hog per core
    "autograder/test_autograder_budget.py": None,       # memory and process budgets of real control groups
    "autograder/test_lab_validate.py": ("test_correct_assignment2_validates_beside_two_cpu_hogs",
                                        "test_busy_cores_sees_a_cpu_hog"),
    "autograder/test_lab_browser.py": None,             # Lab and Formgrader in Chromium, response times measured
    "book/test_browser.py": None,                       # Chromium over every page of the built book
}


def stale_entries() -> list[str]:
    """Entries of SERIAL whose file or test no longer exists."""
    stale = []
    for name, tests in SERIAL.items():
        path = HERE / name
        if not path.is_file():
            stale.append(f"tests/{name} (no such file)")
            continue
        text = path.read_text()
        stale += [f"tests/{name}::{test}" for test in tests or () if f"def {test}(" not in text]
    return stale


def pytest_configure(config):
    stale = stale_entries()
    if stale:
        raise pytest.UsageError("tests/conftest.py SERIAL names tests that do not exist: " + ", ".join(stale)
                                + ". Update the list (renamed or removed tests).")


def is_serial(path: Path, test: str) -> bool:
    """Whether the test ``test`` (its function name) of the file ``path`` needs the whole machine."""
    try:
        name = path.relative_to(HERE).as_posix()
    except ValueError:
        return False
    if name not in SERIAL:
        return False
    tests = SERIAL[name]
    return tests is None or test in tests


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_serial(Path(str(item.path)), getattr(item, "originalname", item.name)):
            item.add_marker(pytest.mark.serial)
