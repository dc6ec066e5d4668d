"""A small Sphinx extension for the course book (loaded through _config.yml's local_extensions).

Jupyter Book 1 adds sphinx-thebe even when launch buttons are off: its inline config script is
injected twice on every page (a "THEBE_JS_URL has already been declared" console error) and it
names a CDN URL. The book runs no live code, so the thebe scripts are dropped, and any other
script that ends up on a page twice is kept once.

The theme also starts with an empty colour mode on a first visit and logs "Got invalid theme
mode" as a console error; a one-line script gives it "auto" (the theme's own fallback) first.
"""

from __future__ import annotations

DEFAULT_MODE_JS = 'document.documentElement.dataset.mode = document.documentElement.dataset.mode || "auto";'


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script)), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _is_thebe(script) -> bool:
    attributes = getattr(script, "attributes", {}) or {}
    return "thebe" in str(getattr(script, "filename", script) or "") or "THEBE_JS_URL" in str(attributes.get("body", ""))


def clean_page_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if _is_thebe(script) or key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


def setup(app):
    app.add_js_file(None, body=DEFAULT_MODE_JS, priority=100)
    app.connect("html-page-context", clean_page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
