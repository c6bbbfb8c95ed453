"""Drop duplicate inline <script> blocks from every page.

Sphinx 7.4 adds an inline script (``add_js_file(None, body=...)``) twice when an extension registers it
after the builder is initialised (fixed upstream in Sphinx 8.2, sphinx-doc/sphinx#13402). Jupyter Book 1
pins Sphinx 7, and sphinx-thebe's duplicated ``const THEBE_JS_URL`` then throws in the browser.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = (str(js.filename or ""), js.attributes.get("body", ""))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
