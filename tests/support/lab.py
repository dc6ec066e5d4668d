"""Shared by the Lab, Validate and Formgrader tests: a small graded course with a written answer,
and a JupyterLab server started exactly as `python -m autograder lab|formgrader` starts it."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat

from autograder.config.course import REPO_ROOT, Course
from autograder.student.lab import lab_command
from autograder.samples.submissions import build_samples, cell_by_id
from tests.support.autograding import TEST_LIMITS, cli, temp_course

WRITTEN_SOLUTIONS = REPO_ROOT / "tests" / "fixtures" / "lab" / "solutions"
WRITTEN_ANSWER = "Doubling keeps sums and multiples: 2(a + b) = 2a + 2b."


def graded_written_course(tmp: Path) -> Course:
    """The 'written' assignment released, one submission ('ada': right code, a written answer)
    collected and autograded; the written answer waits for manual grading."""
    course = temp_course(tmp, WRITTEN_SOLUTIONS)
    cli(course, "release", "written")
    nb, _ = build_samples(course.exercises, course.solutions, "written")["correct"]
    cell_by_id(nb, "q2_written").source = WRITTEN_ANSWER
    inbox = tmp / "inbox"
    inbox.mkdir()
    nbformat.write(nb, inbox / "ada_written.ipynb")
    cli(course, "collect", "written", str(inbox))
    cli(course, "grade", "written", "--workers", "1", *TEST_LIMITS)
    return course


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """`jupyter lab` with a course profile, in the background; .url(path) adds the token."""

    TOKEN = "vitcourse-test"

    def __init__(self, profile: str, root: Path, state: Path, log: Path):
        self.port = free_port()
        argv, env = lab_command(profile, root, port=self.port, browser=False,
                                extra=[f"--IdentityProvider.token={self.TOKEN}", "--ServerApp.ip=127.0.0.1"])
        env["VITCOURSE_LAB_STATE"] = str(state)
        self.log = log
        self.process = subprocess.Popen(argv, env=env, cwd=str(root), stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {log.read_text()[-3000:]}")
            try:
                self.api("api/status", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer in 120 s: {log.read_text()[-3000:]}")

    def url(self, path: str) -> str:
        return f"{self.base}/{path}{'&' if '?' in path else '?'}token={self.TOKEN}"

    def api(self, path: str, timeout: float = 10, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/{path}", method=method,
                                         headers={"Authorization": f"token {self.TOKEN}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            return json.loads(body) if body.strip().startswith(b"{") else body

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
