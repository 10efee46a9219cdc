"""Glossary: the taxonomy's modes, and which registered classifiers can detect each."""

from __future__ import annotations

from mast.classify import coverage
from mast.report.page import Page
from mast.report.section import Section, Values


def build(page: Page) -> Values:
    return {"coverage": coverage(page.taxonomy)}


SECTION = Section(id="glossary", title="The 14 modes", build=build)
