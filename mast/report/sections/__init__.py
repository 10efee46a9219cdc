"""The report's sections, in the order the page shows them.

Each is one module here defining ``SECTION`` (see :mod:`mast.report.section`), beside its
partial ``<id>.html.j2`` and, if it has one, its script ``<id>.js``.  To add a section,
add those files and one line below.
"""

from __future__ import annotations

from mast.report.section import Section
from mast.report.sections import (agents, annotators, compare, coordination, explorer, exposure, glossary, models,
                                  overview, taxonomies, unclassified)

SECTIONS: list[Section] = [
    overview.SECTION,
    compare.SECTION,
    exposure.SECTION,
    explorer.SECTION,
    taxonomies.SECTION,
    agents.SECTION,
    coordination.SECTION,
    annotators.SECTION,
    unclassified.SECTION,
    models.SECTION,
    glossary.SECTION,
]

__all__ = ["SECTIONS"]
