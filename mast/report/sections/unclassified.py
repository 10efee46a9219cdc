"""Unclassified traces: the traces of the selection the LLM judge was asked about and could
not classify (a call that kept failing, a reply that did not parse), with the reason, so
that a trace without judge labels is never read as a trace without failures.

A trace counts while its latest failure for a model has not been followed by labels from
that model (a rerun that classified it removes it from here).  The reasons come from the
``judge_failures`` table, where the prompt and the raw reply are kept as well.
"""

from __future__ import annotations

from mast.report.page import Page
from mast.report.section import Section, Values

#: traces listed by name (the counts are never bounded)
MAX_LISTED = 200
REASON_CHARS = 400


def build(page: Page) -> Values:
    sel, params = page.traces_sql()
    rows = page.store.fetchall(
        f"""
        WITH sel AS ({sel}),
        f AS (SELECT trace_id, model, kind, reason, created_at,
                     CASE WHEN model IS NULL THEN 'judge' ELSE 'judge:' || model END AS annotator,
                     row_number() OVER (PARTITION BY trace_id, model ORDER BY created_at DESC) AS latest
              FROM judge_failures WHERE trace_id IN (SELECT trace_id FROM sel))
        SELECT f.trace_id, s.sys, f.annotator, f.kind, f.reason, f.created_at
        FROM f JOIN sel s USING (trace_id)
        WHERE f.latest = 1 AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_id = f.trace_id
                                           AND a.annotator = f.annotator)
        ORDER BY f.created_at DESC, f.trace_id
        """, params)
    if page.selected_annotators:
        rows = [r for r in rows if r[2] in page.selected_annotators]
    counts: dict[tuple[str, str], int] = {}
    for _, _, annotator, kind, _, _ in rows:
        counts[(annotator, kind)] = counts.get((annotator, kind), 0) + 1
    summary = [{"annotator": a, "kind": k, "traces": n}
               for (a, k), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    listed = [{"trace_id": t, "system": s, "annotator": a, "kind": k,
               "reason": r if len(r) <= REASON_CHARS else r[:REASON_CHARS] + " …",
               "when": w.strftime("%Y-%m-%d %H:%M UTC") if w else ""}
              for t, s, a, k, r, w in rows[:MAX_LISTED]]
    total = len({r[0] for r in rows})
    if total:
        page.note(f"{total} trace(s) could not be classified by the LLM judge and have no judge labels: "
                  "see “Unclassified traces” for why.")
    return {"unclassified_total": total, "unclassified_summary": summary, "unclassified": listed,
            "unclassified_more": max(0, len(rows) - len(listed))}


SECTION = Section(id="unclassified", title="Unclassified traces", build=build)
