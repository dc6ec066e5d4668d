"""Fixtures of the autograder tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.config.course import REPO_ROOT, Course
from tests.support.autograding import cli, temp_course


@pytest.fixture(scope="session")
def released_course(tmp_path_factory):
    """A factory: ``make(assignment, solutions=..., name=...)`` gives a throwaway course (its own folder
    ``tmp``, with ``inbox`` and scratch space beside the course) in which ``assignment`` of
    ``solutions`` (the course's solutions/ by default) has been released through the CLI.

    Returns ``(course, tmp)``. Session-scoped so that module fixtures can use it.
    """
    def make(assignment: str, solutions: Path | None = None, name: str | None = None,
             tmp: Path | None = None) -> tuple[Course, Path]:
        tmp = tmp or tmp_path_factory.mktemp(name or assignment)
        course = temp_course(tmp, solutions or REPO_ROOT / "solutions")
        cli(course, "release", assignment)
        return course, tmp

    return make
