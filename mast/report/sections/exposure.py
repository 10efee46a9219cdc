"""Exposure: the heatmaps of system × mode and system × category, one per annotator view.

Systems are rows and modes columns, so 50 systems grow the table down, not sideways;
a cell's colour is the lower end of its 95% interval (see ``mast.report.html.heat``), and
cells resting on fewer than :data:`THIN_N` traces are drawn faint.
"""

from __future__ import annotations

from collections import defaultdict

from mast.report.labels import BEST, Cell
from mast.report.page import Page
from mast.report.section import Section, Values

THIN_N = 10
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
        "thin_n": THIN_N,
    }


SECTION = Section(id="exposure", title="Exposure", build=build)
