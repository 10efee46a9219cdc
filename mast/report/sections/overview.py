"""Overview: one card per system (outcome, flagged traces, tokens, cost, top modes).

Shows only page-wide facts (:attr:`mast.report.page.Page.systems`), so it has no builder.
"""

from __future__ import annotations

from mast.report.section import Section

SECTION = Section(id="overview", title="Overview")
