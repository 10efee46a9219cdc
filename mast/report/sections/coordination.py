"""Coordination: where each system spends its steps and tokens (see :mod:`mast.coordination`)."""

from __future__ import annotations

from mast.coordination import coordination
from mast.report.page import Page
from mast.report.section import Section, Values


def build(page: Page) -> Values:
    return {"coordination": coordination(page.store, page.selected_systems or None)}


SECTION = Section(id="coordination", title="Coordination", build=build)
