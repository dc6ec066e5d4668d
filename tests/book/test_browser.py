"""Open every page of the built book in headless Chromium, served from localhost.

Asserts, per page: MathJax typeset every formula (with the book's own local copy), every image
loaded, no request left localhost, and the book's own scripts logged no console error.
A screenshot of each page is saved under _build/screenshots/. Needs `make book` first and
Debian's chromium (installed by `make test`); select with `pytest -m browser`.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from urllib.parse import urlparse

import pytest

from tests.support.pages import HTML, ROOT, built_page, toc_files
from vitcourse.plotting import COLUMN_PX

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "_build" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def _math_count(page) -> int:
    return page.locator(".math").count()


@pytest.mark.parametrize("file", toc_files())
def test_page_renders_offline(file, server, browser):
    path = built_page(file).relative_to(HTML).as_posix()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    foreign, console_errors, failed = [], [], []
    page.on("request", lambda r: urlparse(r.url).hostname not in LOCAL_HOSTS
            and urlparse(r.url).scheme in ("http", "https", "ws", "wss") and foreign.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: m.type == "error" and console_errors.append((m.text, m.location.get("url", ""))))
    page.on("pageerror", lambda e: console_errors.append((str(e), "")))

    page.goto(f"{server}/{path}", wait_until="load")
    formulas = _math_count(page)
    if formulas:
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15000)
        page.evaluate("MathJax.startup.promise")
        typeset = page.locator("mjx-container").count()
        assert typeset >= formulas, f"{file}: {formulas} formulas but only {typeset} typeset by MathJax"
        assert page.locator("mjx-merror").count() == 0, f"{file}: MathJax reported a TeX error"
        mathjax_src = page.evaluate("[...document.scripts].map(s => s.src).filter(s => s.includes('mathjax'))")
        assert mathjax_src and all(urlparse(s).hostname in LOCAL_HOSTS for s in mathjax_src), mathjax_src

    broken = page.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    assert not broken, f"{file}: images that did not load: {broken}"
    # Every figure is shown at least as large as vitcourse.plotting assumed when it sized the
    # figure's type (its own width, or the COLUMN_PX column): otherwise its text is smaller.
    shrunk = page.evaluate(
        "column => [...document.querySelectorAll('article img')]"
        ".map(i => [i.src.split('/').pop(), Math.round(i.getBoundingClientRect().width), i.naturalWidth])"
        ".filter(([src, shown, natural]) => shown + 1 < Math.min(natural, column))", COLUMN_PX)
    assert not shrunk, f"{file}: figures shown narrower than {COLUMN_PX} px (name, shown, natural): {shrunk}"
    assert not foreign, f"{file}: requests to non-local hosts: {foreign}"
    assert not failed, f"{file}: failed requests: {failed}"
    # Code (cells and listings, not outputs) fits its box: nothing hidden behind a sideways scroll.
    clipped = page.evaluate(
        "[...document.querySelectorAll('article pre')]"
        ".filter(p => !p.closest('.cell_output') && p.scrollWidth > p.clientWidth + 1)"
        ".map(p => p.textContent.split('\\n').reduce((a, b) => b.length > a.length ? b : a, ''))")
    assert not clipped, f"{file}: code wider than its box: {clipped[:3]}"
    own_errors = [(text, url) for text, url in console_errors if not url or urlparse(url).hostname in LOCAL_HOSTS]
    assert not own_errors, f"{file}: console errors: {own_errors}"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{file.replace('/', '__')}.png"), full_page=True)
    page.close()


def test_every_toc_page_was_built():
    missing = [f for f in toc_files() if not (HTML / f"{f}.html").exists()]
    assert not missing, f"pages in _toc.yml with no HTML (run make book): {missing}"
    assert (HTML / "index.html").exists()
