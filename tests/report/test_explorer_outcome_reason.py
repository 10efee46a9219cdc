"""The explorer carries why a run stopped (trace metadata ``outcome_reason``, set at ingest)."""

from __future__ import annotations

from mast.model import Outcome
from mast.report import build_context
from mast.report.html import render
from mast.store import Store
from tests.report.conftest import make_trace


def test_explorer_rows_carry_the_outcome_reason(tmp_path):
    stopped = make_trace("alpha", 0, Outcome.UNKNOWN)
    stopped.metadata["outcome_reason"] = "Maximum number of messages 6 reached, current message count: 6"
    plain = make_trace("alpha", 1, Outcome.UNKNOWN)
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        with st.transaction():
            st.write_traces([stopped, plain])
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
        html = render(ctx)
    rows = {t["id"]: t for t in ctx.explorer.traces}
    assert rows[stopped.trace_id]["outcome_reason"] == stopped.metadata["outcome_reason"]
    assert rows[plain.trace_id]["outcome_reason"] is None
    assert stopped.metadata["outcome_reason"] in html  # in the page's data, for the detail pane
