"""Exposure: the heatmaps of system × mode and system × category, one per annotator view."""

from __future__ import annotations

from collections import defaultdict

from mast.report.labels import BEST, Cell
from mast.report.page import Page
from mast.report.section import Section, Values

Grid = dict[str, dict[str, dict[str, Cell]]]  # view -> system -> mode (or category) -> cell


def _grid(cells: list[Cell]) -> Grid:
    out: dict[str, dict[str, dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
    for c in cells:
        out[c.annotator][c.system][c.mode] = c
    return {k: dict(v) for k, v in out.items()}


def build(page: Page) -> Values:
    mode_category = {m.id: m.category for m in page.modes}
    return {
        "views": [BEST] + [a.name for a in page.annotators if a.traces],  # BEST first, then annotators
        "exposure": _grid(page.cells),
        "category_exposure": _grid(page.labels.category_cells(mode_category)),
    }


SECTION = Section(id="exposure", title="Exposure", build=build)
