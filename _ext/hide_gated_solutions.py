"""Let sphinx-exercise's ``hide_solutions`` remove gated solutions too (the student edition).

``hide_solutions = True`` (``make book-student``) makes sphinx-exercise 1.2.1 drop every ``{solution}``
directive, but not a *gated* one (``{solution-start}`` ... ``{solution-end}``, which the book uses where a
solution holds code cells): the start directive returns nothing, the solution's text and cells stay on the
page, and the orphaned end node crashes the HTML writer ("departing unknown node type: solution_end_node";
executablebooks/sphinx-exercise#89, open). Here the start directive leaves a marker instead, and a transform
removes everything from the marker to its end node before the page is written. Where sphinx-exercise shows
the solution (the instructor build), nothing changes.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.transforms import SphinxTransform
from sphinx_exercise.directive import SolutionStartDirective
from sphinx_exercise.nodes import solution_end_node


class hidden_solution_start(nodes.Element):  # noqa: N801 (docutils names nodes in lower case)
    """Where a suppressed gated solution begins; removed with it by :class:`RemoveSuppressedGatedSolutions`."""


class SuppressibleSolutionStart(SolutionStartDirective):
    """``{solution-start}`` that marks its place when sphinx-exercise suppresses it."""

    def run(self):
        shown = super().run()  # registers the start for sphinx-exercise's structure check either way
        return shown or [hidden_solution_start()]


class RemoveSuppressedGatedSolutions(SphinxTransform):
    """Remove each marked gated solution: the marker, every sibling after it, and its ``{solution-end}``."""

    default_priority = 11  # after sphinx-exercise's CheckGatedDirectives (1) and MergeGatedSolutions (10)

    def apply(self):
        for start in list(self.document.findall(hidden_solution_start)):
            parent = start.parent
            first = parent.index(start)
            end = next((i for i in range(first + 1, len(parent)) if isinstance(parent[i], solution_end_node)), None)
            if end is None:
                raise ExtensionError(f"{self.env.docname}: a suppressed {{solution-start}} has no {{solution-end}} "
                                     "after it at the same level")
            for child in parent.children[first:end + 1]:
                parent.remove(child)


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.add_directive("solution-start", SuppressibleSolutionStart, override=True)
    app.add_transform(RemoveSuppressedGatedSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
