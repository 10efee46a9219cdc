"""Who&When importer over all 184 records of both subsets, checked against the raw JSON."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from conftest import WHOWHEN, need
from mast.ingest import detect, get
from mast.ingest.pipeline import ingest_paths
from mast.store import Store


def _files(subset: str):
    return sorted(need(WHOWHEN / subset).glob("*.json"), key=lambda p: int(p.stem))


@pytest.mark.parametrize("subset,system,n", [("Hand-Crafted", "Magentic-One", 58),
                                             ("Algorithm-Generated", "CaptainAgent", 126)])
def test_every_record_matches_its_source(subset, system, n):
    files = _files(subset)
    assert len(files) == n
    imp = get("whowhen")
    for f in files:
        raw = json.loads(f.read_text(encoding="utf-8"))
        assert detect(f) is imp, f
        [t] = list(imp.read(f))
        assert t.system == system and t.outcome.value == "failure"
        assert len(t.steps) == len(raw["history"])  # 1:1, so mistake_step stays a step number
        assert [s.content for s in t.steps] == [h["content"] for h in raw["history"]]
        if "name" in raw["history"][0]:
            assert [s.agent for s in t.steps] == [h["name"] for h in raw["history"]]
        else:
            # "Orchestrator (-> WebSurfer)": agent before the parenthesis, recipient after "->".
            for s, h in zip(t.steps, raw["history"]):
                assert s.agent == h["role"].split(" (")[0].strip()
                m = re.search(r"\(-> ?([^)]+)\)", h["role"])
                assert s.target_agent == (m.group(1).strip() if m else None)
                assert (s.kind.value == "termination") == ("(termination condition)" in h["role"])
        [a] = t.attributions
        assert (a.annotator, a.agent, a.step, a.rationale) == (
            "human", raw["mistake_agent"], int(raw["mistake_step"]), raw["mistake_reason"])
        assert t.task == raw["question"] and t.metadata["question_ID"] == raw["question_ID"]


def test_store_counts_for_both_subsets(db):
    need(WHOWHEN)
    with Store(db) as st:
        summary = ingest_paths(st, [WHOWHEN])
    assert not summary.errors and summary.traces_new == 184
    want_steps = sum(len(json.loads(f.read_text())["history"])
                     for sub in ("Hand-Crafted", "Algorithm-Generated") for f in _files(sub))
    with Store(db, read_only=True) as st:
        systems = dict(st.fetchall("SELECT system, count(*) FROM traces GROUP BY 1"))
        steps = st.fetchall("SELECT count(*) FROM steps")[0][0]
        atts = st.fetchall("SELECT annotator, count(*) FROM attributions GROUP BY 1")
        ok = st.fetchall("SELECT count(*) FROM attributions a JOIN traces t USING (trace_id) "
                         "WHERE a.step >= 0 AND a.step < t.n_steps")[0][0]
        hc_agents = Counter(dict(st.fetchall(
            "SELECT agent, count(*) FROM attributions JOIN traces USING (trace_id) "
            "WHERE system = 'Magentic-One' GROUP BY 1")))
    assert systems == {"Magentic-One": 58, "CaptainAgent": 126}
    assert steps == want_steps
    assert atts == [("human", 184)] and ok == 184
    # The MANIFEST's ground-truth counts for the hand-crafted subset.
    assert hc_agents == {"WebSurfer": 33, "Orchestrator": 18, "Assistant": 4, "FileSurfer": 3}
