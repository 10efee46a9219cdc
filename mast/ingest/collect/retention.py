"""How long staged spans are kept: the bound on the endpoint's stitching state.

Staged spans are what a late span or a late piece rebuilds its trace from, and the span
index is what stitching joins against (:meth:`Collector.fold
<mast.ingest.collect.staging.Collector.fold>` scans it for ties), so without a bound both
grow with everything ever collected, and so does the cost of every fold.  A group is
*settled* when every span staged for it is in its stored version (or it failed, or was a
copy) and its newest span was folded more than ``horizon`` seconds ago; its index rows
(``collect_spans``, ``collect_traces``, ``collect_llm``) and the request bodies no other
staged span needs (``collect_requests``) are then removed.  A span that arrives for it
later starts a trace of its own, as a file holding only that span would.

The rows removed are the builder's own (built, folded, older than the horizon): the
writer, committing new requests on its own connection meanwhile, only appends rows with
a higher ``seq`` and a new ``req``, which this never touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mast.store import Store


@dataclass(frozen=True)
class Pruned:
    traces: int = 0
    spans: int = 0
    requests: int = 0


def prune(st: Store, horizon: float, now: datetime) -> Pruned:
    """Remove the staged rows of every group settled for ``horizon`` seconds before ``now``
    (naive UTC, as ``collect_traces.last_seen``)."""
    (top,), = st.fetchall("SELECT seq FROM collect_folded")
    cut = now - timedelta(seconds=horizon)
    ids = [r[0] for r in st.fetchall(
        """
        WITH unfolded AS (SELECT DISTINCT otel_trace_id FROM collect_spans WHERE seq > ?),
        settled AS (SELECT grp FROM collect_traces GROUP BY grp
                    HAVING bool_and(spans = built_spans) AND max(last_seen) <= ?
                       AND NOT bool_or(otel_trace_id IN (SELECT otel_trace_id FROM unfolded)))
        SELECT otel_trace_id FROM collect_traces WHERE grp IN (SELECT grp FROM settled)
        """, [top, cut])]
    if not ids:
        return Pruned()
    with st.transaction():
        reqs = [r[0] for r in st.fetchall(
            "SELECT DISTINCT req FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) AND req IS NOT NULL",
            [ids])]
        (spans,), = st.fetchall("SELECT count(*) FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) "
                                "AND seq <= ?", [ids, top])
        st.execute("DELETE FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) AND seq <= ?", [ids, top])
        st.execute("DELETE FROM collect_llm WHERE otel_trace_id IN (SELECT unnest(?))", [ids])
        st.execute("DELETE FROM collect_traces WHERE otel_trace_id IN (SELECT unnest(?))", [ids])
        # a body is kept while a span of another trace still needs it (a request holds
        # the spans of many traces); a new request always has a new req
        gone = [r[0] for r in st.fetchall(
            "SELECT req FROM (SELECT unnest(?) AS req) WHERE req NOT IN "
            "(SELECT req FROM collect_spans WHERE req IN (SELECT unnest(?)))", [reqs, reqs])] if reqs else []
        if gone:
            st.execute("DELETE FROM collect_requests WHERE req IN (SELECT unnest(?))", [gone])
    return Pruned(len(ids), int(spans), len(gone))
