"""Comparison: two selections side by side (:mod:`mast.compare`), only when the report is
asked for one (``mast report --baseline SEL --candidate SEL``).  The selections are read
over the whole store, not only the report's ``--system`` filter: they say what they select."""

from __future__ import annotations

from mast.compare import compare, parse_selection
from mast.report.page import Page
from mast.report.section import Section, Values


def build(page: Page) -> Values:
    if page.comparison is None:
        return {"comparison": None}
    base, cand = page.comparison
    comp = compare(page.store, parse_selection(base), parse_selection(cand), page.taxonomy.id)
    return {"comparison": comp,
            "comparison_rows": [d for d in comp.modes if d.baseline.n or d.candidate.n] + [comp.any_mode],
            "comparison_blank": [d.mode for d in comp.modes if not d.baseline.n and not d.candidate.n]}


SECTION = Section(id="compare", title="Comparison", build=build)
