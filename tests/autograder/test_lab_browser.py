"""The student Lab and the instructor's Formgrader in headless Chromium (Debian's, driven by
Playwright; no browser is downloaded), started exactly as `make lab` / `make formgrader` start them.

Student Lab (on a copy of exercises/): only Validate of nbgrader is shown, no error dialog or
failed request, locked cells are marked, Validate on the untouched and on a solved assignment 1
says what the course promises, and the server keeps answering while it validates; nothing is
written next to the notebooks or into the repository. Formgrader: a written answer waits in
manual grading with its points, and the score typed into its box reaches `export`. Screenshots go to _build/screenshots/lab/.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from urllib.parse import urlparse

import nbformat
import pandas as pd
import pytest

from autograder.config.course import REPO_ROOT
from autograder.samples.submissions import build_samples
from autograder.student.validate import HIDDEN_NOTE
from tests.support.autograding import cli
from tests.support.lab import WRITTEN_ANSWER, LabServer, graded_written_course

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = REPO_ROOT / "_build" / "screenshots" / "lab"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
VALIDATE_TIMEOUT_MS = 240_000


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    """The student Lab on a copy of exercises/, with a solved assignment 1 beside the untouched one."""
    tmp = tmp_path_factory.mktemp("student-lab")
    root = tmp / "exercises"
    shutil.copytree(REPO_ROOT / "exercises", root)
    solved, _ = build_samples(REPO_ROOT / "exercises", REPO_ROOT / "solutions", "assignment1")["correct"]
    nbformat.write(solved, root / "assignment1" / "solved.ipynb")
    before = {p.relative_to(root) for p in root.rglob("*")}
    status = git_status()
    server = LabServer("student", root, tmp / "state", tmp / "lab.log")
    yield server
    server.stop()
    assert {p.relative_to(root) for p in root.rglob("*")} == before, "the Lab wrote files next to the notebooks"
    assert git_status() == status, "the Lab changed the repository"


class Watch:
    """Console errors, failed or foreign requests, and HTTP errors of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text} {m.location}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))
        page.on("request", lambda r: urlparse(r.url).scheme in ("http", "https", "ws", "wss")
                and urlparse(r.url).hostname not in LOCAL_HOSTS and self.errors.append(f"foreign: {r.url}"))


def open_notebook(browser, server, path: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page)
    page.goto(server.url(f"lab/tree/{path}?reset"))  # ?reset: no tabs restored from an earlier page
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    validate_button(page).wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('.jp-Notebook .jp-CodeCell .cm-editor') !== null")
    return page, watch


def validate_button(page):
    return page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-item:visible", has_text="Validate")


def validate(page, server) -> tuple[str, list[float]]:
    """Press Validate; return the dialog's text and the seconds /api/status took meanwhile
    (nbgrader's own handler blocked the server for the whole validation)."""
    latencies, done = [], threading.Event()

    def poll():
        while not done.is_set():
            start = time.monotonic()
            try:
                server.api("api/status", timeout=10)
                latencies.append(time.monotonic() - start)
            except OSError:
                latencies.append(float("inf"))
            time.sleep(0.5)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    validate_button(page).click()
    page.wait_for_selector("#validation-message", timeout=VALIDATE_TIMEOUT_MS)
    done.set()
    poller.join()
    return page.inner_text(".jp-Dialog"), latencies


def assert_responsive(latencies: list[float]) -> None:
    """The server answered throughout (a loaded 2-core machine slows single answers down)."""
    assert len(latencies) >= 3, latencies
    assert sorted(latencies)[len(latencies) // 2] < 1.0 and max(latencies) < 10.0, latencies


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_the_student_lab_shows_only_what_works(browser, student_lab):
    page, watch = open_notebook(browser, student_lab, "assignment1/assignment1.ipynb")
    page.wait_for_timeout(2000)  # let late start-up requests and dialogs appear
    menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    assert "File" in menus and "Nbgrader" not in menus, menus
    assert page.locator(".jp-Dialog").count() == 0, page.inner_text(".jp-Dialog")
    # The exchange panels are not offered: their commands and server routes do not exist.
    page.click(".jp-Notebook .jp-Cell >> nth=0")
    page.keyboard.press("Control+Shift+C")
    page.fill(".lm-CommandPalette-input", "nbgrader")
    page.wait_for_timeout(500)
    offered = page.locator(".lm-CommandPalette-item").all_inner_texts()
    assert not [item for item in offered if any(panel in item for panel in ("Assignment List", "Course List",
                                                                          "Formgrader"))], offered
    page.keyboard.press("Escape")
    for route in ("formgrader", "assignments", "courses"):
        with pytest.raises(OSError, match="404"):
            student_lab.api(route)
    screenshot(page, "student-lab")
    assert not watch.errors, watch.errors
    page.close()


def test_locked_cells_are_marked(browser, student_lab):
    page, _ = open_notebook(browser, student_lab, "assignment1/assignment1.ipynb")
    page.mouse.move(800, 500)
    for _ in range(20):  # Lab creates the editors of cells scrolled into view
        if page.locator(".jp-Notebook .jp-CodeCell .cm-editor").count() >= 4:
            break
        page.mouse.wheel(0, 700)
        page.wait_for_timeout(300)
    screenshot(page, "locked-cells")
    labels = page.evaluate("""[...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
        .filter(cell => cell.querySelector('.cm-editor')).map(cell => [
        cell.querySelector('.cm-editor').classList.contains('jp-mod-readOnly'),
        getComputedStyle(cell.querySelector('.jp-InputPrompt'), '::after').content])""")
    assert [True, '"locked"'] in labels and [False, "none"] in labels, labels
    assert all(label == ('"locked"' if locked else "none") for locked, label in labels), labels
    page.close()


def test_validate_on_the_untouched_notebook_lists_the_failing_questions(browser, student_lab):
    page, watch = open_notebook(browser, student_lab, "assignment1/assignment1.ipynb")
    text, latencies = validate(page, student_lab)
    screenshot(page, "validate-untouched")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[:3] == ["Validation Results", "6 of 6 test cells fail: q1, q2, q3, q4, q5", HIDDEN_NOTE], lines[:4]
    assert "NotImplementedError" in text
    # The summary replaces the first "The following cell failed:" heading (custom.css).
    assert not page.locator("#validation-message > div").first.is_visible()
    assert_responsive(latencies)
    assert not watch.errors, watch.errors
    page.close()


def test_validate_on_a_solved_notebook_says_hidden_tests_wait(browser, student_lab):
    page, watch = open_notebook(browser, student_lab, "assignment1/solved.ipynb")
    text, latencies = validate(page, student_lab)
    screenshot(page, "validate-solved")
    # nbgrader's "Your notebook passes all the tests." is hidden; the course's words say what ran.
    assert "passes all the tests" not in text, text
    assert not page.locator("#validation-message.validation-success p").first.is_visible()
    before, after = (page.evaluate(f"getComputedStyle(document.querySelector('#validation-message'), '{where}').content")
                     for where in ("::before", "::after"))
    assert before == '"Success! Every visible test passes."', before
    assert "Only the visible tests ran: hidden tests run when the assignment is graded" in after, after
    assert_responsive(latencies)
    assert not watch.errors, watch.errors
    page.close()


@pytest.fixture(scope="module")
def formgrader(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formgrader")
    course = graded_written_course(tmp)
    status = git_status()
    server = LabServer("instructor", course.root, tmp / "state", tmp / "lab.log")
    yield course, server
    server.stop()
    assert git_status() == status, "Formgrader changed the repository"


def test_formgrader_offers_the_written_answer_for_manual_grading(browser, formgrader):
    from nbgrader.api import Gradebook

    course, server = formgrader
    with Gradebook(course.db_url, "vitcourse") as gb:
        submission = gb.find_submission_notebook("written", "written", "ada").id
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server.url("formgrader"))
    page.wait_for_selector("text=Manual Grading", timeout=60_000)
    page.goto(server.url(f"formgrader/submissions/{submission}/?index=0"))
    page.wait_for_selector(f"text={WRITTEN_ANSWER}", timeout=60_000)
    screenshot(page, "formgrader-manual-grading")
    text = page.inner_text("body")
    assert "q2, in words (2 points, graded by hand)" in text
    assert "/ 2.0" in text and "/ 1.0" in text, text[:2000]
    # Grade it as an instructor would: the score box saves on change, and export reports it.
    waiting = page.locator("input.score.needs_manual_grade")
    assert waiting.count() == 1
    waiting.fill("1.5")
    waiting.press("Tab")
    page.wait_for_function("document.querySelectorAll('input.score.needs_manual_grade').length === 0",
                           timeout=30_000)
    page.close()
    cli(course, "export", "written")
    scores = pd.read_csv(course.reports("written") / "scores.csv", index_col="student")
    assert scores.loc["ada", "q2"] == 1.5 and scores.loc["ada", "total"] == 2.5
