"""Other taxonomies: exposure by the labels of every taxonomy in the store besides the
page's, each in its own block with its own mode ids, so that two taxonomies' modes never
share a heat map, a filter or a count.  Shown only when such labels exist."""

from __future__ import annotations

from mast.errors import UsageError
from mast.report.labels import BEST, Labels
from mast.report.page import Page
from mast.report.section import Section, Values
from mast.taxonomy import load as load_taxonomy


def build(page: Page) -> Values:
    st = page.store
    sel, params = page.traces_sql()
    others = [r[0] for r in st.fetchall(f"""
        WITH sel AS ({sel}) SELECT DISTINCT a.taxonomy FROM annotations a JOIN sel USING (trace_id)
        WHERE a.label IN ('present', 'absent') AND a.taxonomy <> ? ORDER BY 1""", [*params, page.taxonomy.id])]
    blocks = []
    for tid in others:
        try:
            tax = load_taxonomy(tid)
        except UsageError:
            page.note(f"Labels of taxonomy {tid!r} are in the store, but mast has no such taxonomy: not shown.")
            continue
        with Labels(st, tax.id, page.selected_systems, page.selected_annotators) as labels:
            cells = {(c.system, c.mode): c for c in labels.cells() if c.annotator == BEST}
        systems = sorted({s for s, _ in cells})
        blocks.append({"id": tax.id, "name": tax.name, "modes": list(tax.modes), "systems": systems,
                       "cells": cells})
    return {"other_taxonomies": blocks}


SECTION = Section(id="taxonomies", title="Other taxonomies", build=build)
