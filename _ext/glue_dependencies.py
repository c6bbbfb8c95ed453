"""Rebuild a page when a notebook it pastes glued values from changes.

MyST-NB pastes a value glued in another notebook (``{glue:text}`../part/notebook.ipynb::key:.3f```, as the
instructor guides do) when the page is written, from that notebook's glue cache, but it does not tell Sphinx
that the page depends on the notebook. After the notebook is re-executed, an incremental build then keeps the
page as it was, with the old value, or with none where the key was new. Here each such reference is recorded
as a dependency of the page, so Sphinx re-reads and re-writes the page whenever the notebook changes.
"""

from __future__ import annotations

from myst_nb.ext.glue.utils import PendingGlueReference


def _note_glued_notebooks(app, doctree):
    for node in doctree.findall(PendingGlueReference):
        app.env.note_dependency(str(app.env.doc2path(node.refdoc)))


def setup(app):
    app.connect("doctree-read", _note_glued_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
