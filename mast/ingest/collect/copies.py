"""Re-emitted LLM calls: the traces `mast ingest` drops, dropped live too.

OpenInference's CrewAI event mode re-emits every LLM call as a root of its own, so each
call arrives twice: inside the crew's trace and as a one-span trace.  The file importer
drops a trace made only of LLM spans that lies, in time, inside an LLM span of another
trace (``steps.drop_duplicate_llm_groups``); the endpoint applies the same rule to the
groups it builds, against the LLM spans of every group built so far (``collect_llm``,
migration m240), in both orders of arrival:

- a copy built after the trace that holds it is not stored (:func:`copies_in`);
- a copy stored before the trace that holds it arrived (its root ended first, as the
  inner call's always does) is removed when that trace is built (:func:`earlier_copies`),
  as a stored trace that grew is replaced.

The importer's other rule, a trace in which nothing happened (no LLM, tool or agent span,
no AgentChat runtime span: AgentChat's agent-construction roots) left out of a file that
holds other traces (``steps.nothing_happened``, the importer's own predicate, as is
``steps.llm_only``), is applied with "the file" read as the groups staged:
:func:`empty_beside_others` and :func:`earlier_empties`.
"""

from __future__ import annotations

from typing import Sequence

from mast._arrow import pa

from mast.ingest.formats.otel.dialects import kind_of
from mast.ingest.formats.otel.spans import Span
from mast.ingest.formats.otel.steps import llm_only
from mast.store import Store


def llm_spans(group: Sequence[Span]) -> tuple[list[tuple[str, int, int]], bool]:
    """The group's LLM spans as ``(OTel trace id, start, end)`` (end: the start when it
    has none, as the file rule takes it), and whether the group is made only of them."""
    rows = [(s.trace_id, s.start_ns, s.end_ns or s.start_ns) for s in group if kind_of(s) == "llm"]
    return rows, llm_only(group)


def record(st: Store, members: Sequence[str], rows: Sequence[tuple[str, int, int]],
           only: dict[str, tuple[bool, bool]]) -> None:
    """Replace the LLM spans recorded for these OTel traces (built again: the group has
    grown) and, per trace, whether its group is made only of LLM spans and whether
    nothing happened in it.  In the caller's transaction."""
    if not members:
        return
    st.execute("DELETE FROM collect_llm WHERE otel_trace_id IN (SELECT unnest(?))", [list(members)])
    tb = pa.table({"otel_trace_id": pa.array([r[0] for r in rows], pa.string()),
                   "start_ns": pa.array([r[1] for r in rows], pa.int64()),
                   "end_ns": pa.array([r[2] for r in rows], pa.int64())})
    fl = pa.table({"otel_trace_id": pa.array(list(only), pa.string()),
                   "llm_only": pa.array([v[0] for v in only.values()], pa.bool_()),
                   "empty": pa.array([v[1] for v in only.values()], pa.bool_())})
    with st.registered("_mast_collect_llm", tb), st.registered("_mast_collect_only", fl):
        if rows:
            st.execute("INSERT INTO collect_llm SELECT otel_trace_id, start_ns, end_ns FROM _mast_collect_llm")
        st.execute("UPDATE collect_traces SET llm_only = f.llm_only, empty = f.empty FROM _mast_collect_only f "
                   "WHERE collect_traces.otel_trace_id = f.otel_trace_id")


def copies_in(st: Store, ranges: dict[str, tuple[int, int]]) -> dict[str, str]:
    """Of these LLM-only groups (name → first start, last end), those an LLM span of
    another group holds: name → that group's name (the smallest, if several).  A group
    whose start is unknown (0) is nobody's copy, as in a file."""
    cands = {g: r for g, r in ranges.items() if r[0]}
    if not cands:
        return {}
    tb = pa.table({"grp": pa.array(list(cands), pa.string()),
                   "lo": pa.array([r[0] for r in cands.values()], pa.int64()),
                   "hi": pa.array([r[1] for r in cands.values()], pa.int64())})
    with st.registered("_mast_collect_cand", tb):
        return dict(st.fetchall(
            "SELECT c.grp, min(k.grp) FROM _mast_collect_cand c "
            "JOIN collect_llm l ON l.start_ns <= c.lo AND c.hi <= l.end_ns "
            "JOIN collect_traces k ON k.otel_trace_id = l.otel_trace_id "
            "WHERE k.grp <> c.grp GROUP BY c.grp"))


def earlier_copies(st: Store, batch: Sequence[str], built: Sequence[str] = ()) -> dict[str, str]:
    """Stored LLM-only groups outside ``batch`` and ``built`` (the batch's other groups,
    dealt with already) that an LLM span of a group in ``batch`` holds: name → the
    holding group's name.  After :func:`record` for the batch."""
    if not batch:
        return {}
    return dict(st.fetchall(
        """
        WITH b AS (SELECT unnest(?) AS grp),
        held AS (SELECT l.start_ns, l.end_ns, k.grp FROM collect_llm l
                 JOIN collect_traces k ON k.otel_trace_id = l.otel_trace_id WHERE k.grp IN (SELECT grp FROM b)),
        o AS (SELECT k.grp, min(l.start_ns) AS lo, max(l.end_ns) AS hi FROM collect_traces k
              JOIN collect_llm l ON l.otel_trace_id = k.otel_trace_id
              WHERE k.grp IN (SELECT grp FROM collect_traces WHERE llm_only AND stored_trace_id IS NOT NULL)
                AND k.grp NOT IN (SELECT grp FROM b) AND k.grp NOT IN (SELECT unnest(?))
              GROUP BY k.grp HAVING bool_and(k.llm_only))
        SELECT o.grp, min(h.grp) FROM o JOIN held h ON h.start_ns <= o.lo AND o.hi <= h.end_ns
        WHERE o.lo <> 0 AND h.grp <> o.grp GROUP BY o.grp
        """, [list(batch), list(built)]))


def empty_beside_others(st: Store, groups: Sequence[str]) -> set[str]:
    """Of these groups in which nothing happened, those staged beside another group."""
    if not groups:
        return set()
    return {r[0] for r in st.fetchall(
        "SELECT g FROM (SELECT unnest(?) AS g) WHERE EXISTS (SELECT 1 FROM collect_traces k WHERE k.grp <> g)",
        [list(groups)])}


def earlier_empties(st: Store, batch: Sequence[str]) -> set[str]:
    """Stored groups outside ``batch`` in which nothing happened, now that another group
    is staged beside them (they were alone when built)."""
    return {r[0] for r in st.fetchall(
        """
        SELECT DISTINCT e.grp FROM collect_traces e
        WHERE e.empty AND e.stored_trace_id IS NOT NULL AND e.grp NOT IN (SELECT unnest(?))
          AND EXISTS (SELECT 1 FROM collect_traces k WHERE k.grp <> e.grp)
        """, [list(batch)])}
