"""Annotators: who labelled the selection, and how far each pair agrees (see :mod:`mast.agreement`)."""

from __future__ import annotations

from mast.report.page import Page
from mast.report.section import Section, Values


def build(page: Page) -> Values:
    return {"agreement": page.labels.agreement()}


SECTION = Section(id="annotators", title="Annotators", build=build)
