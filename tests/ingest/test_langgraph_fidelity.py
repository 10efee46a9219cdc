"""LangGraph artefacts as users really write them (issue 12): dumpd-dumped run trees,
``{"role", "content"}`` graph inputs, and LangGraph's plumbing nodes.

``langgraph/dicts/`` comes from running LangGraph offline
(``generators/gen_langgraph_dicts.py``; versions in its ``facts.json``).  The plumbing
cases add a ``__start__`` run/span to real fixtures, as LangGraph releases that trace their
``__start__`` node write it (the pinned 1.2.22 does not trace it): hand-made, derived.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from conftest import ROOT
from mast.store import Store

FW = ROOT / "tests" / "fixtures" / "frameworks" / "langgraph"
DICTS = FW / "dicts"
FACTS = json.loads((DICTS / "facts.json").read_text())


def _summary(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as st:
        return st.fetchall("""
            SELECT t.source_format, t.task, t.started_at IS NOT NULL,
                   list(DISTINCT s.agent ORDER BY s.agent) FILTER (WHERE s.agent IS NOT NULL),
                   list(s.kind ORDER BY s.step)
            FROM traces t JOIN steps s USING (trace_id) GROUP BY ALL ORDER BY 1""")


def test_a_run_tree_dumped_with_dumpd_is_read(mast, db):
    # json.dumps(run.model_dump(), default=dumpd): every UUID and datetime is an lc object
    f = DICTS / "langsmith_run_tree.dumpd.json"
    assert '"not_implemented"' in f.read_text()
    out = json.loads(mast("ingest", f, "--json").stdout)
    assert out["errors"] == [] and out["traces_new"] == 1
    [(fmt, task, timed, agents, kinds)] = _summary(db)
    assert (fmt, task, timed) == ("langsmith", FACTS["task"], True)  # the role-dict input is the task
    assert agents == FACTS["agents"]
    assert kinds.count("llm_call") == 2 and kinds[-1] == "termination" and "handoff" in kinds


def test_astream_events_with_role_dict_inputs_are_read(mast, db):
    out = json.loads(mast("ingest", DICTS / "astream_events.jsonl", "--json").stdout)
    assert out["errors"] == [] and out["formats"] == {"langgraph-events": 1}
    [(fmt, task, _, agents, kinds)] = _summary(db)
    assert task == FACTS["task"] and agents == FACTS["agents"]
    assert kinds[0] == "message" and kinds[-1] == "termination"


def _with_start_run(tree: list[dict]) -> list[dict]:
    """The root's first node run, copied as LangGraph's ``__start__`` node run, put first."""
    root = tree[0]
    node = copy.deepcopy(root["child_runs"][0])
    md = node["extra"]["metadata"]
    md["langgraph_node"], md["langgraph_checkpoint_ns"] = "__start__", "__start__:00000000-0000-0000-0000-000000000001"
    md["langgraph_triggers"] = ["__start__"]
    node.update(name="__start__", child_runs=[], id="00000000-0000-4000-8000-00000000start",
                dotted_order=None, outputs=copy.deepcopy(root["inputs"]))
    root["child_runs"].insert(0, node)
    return tree


def test_plumbing_nodes_are_no_agents_in_langsmith(tmp_path, mast, db):
    tree = json.loads((FW / "loop" / "langsmith_run_tree.json").read_text())
    for r in tree:  # dotted_order would place the copy; start_time order is enough without it
        _strip_dotted(r)
    f = tmp_path / "loop" / "run_tree.json"
    f.parent.mkdir()
    f.write_text(json.dumps(_with_start_run(tree)))
    mast("ingest", f)
    [(_, _, _, agents, kinds)] = _summary(db)
    assert "__start__" not in agents and agents == ["coder", "planner"]
    with Store(db, read_only=True) as st:
        assert not st.fetchall("SELECT 1 FROM steps WHERE target_agent LIKE '\\_\\_%' ESCAPE '\\'")


def _strip_dotted(r: dict) -> None:
    r.pop("dotted_order", None)
    for c in r.get("child_runs") or []:
        _strip_dotted(c)


def test_plumbing_nodes_are_no_agents_in_openinference(tmp_path, mast, db):
    d = json.loads((FW / "supervisor" / "openinference.otlp.json").read_text())
    scope = d["resourceSpans"][0]["scopeSpans"][0]
    spans = scope["spans"]
    root = next(s for s in spans if not s.get("parentSpanId"))
    first = next(s for s in spans if s.get("parentSpanId") == root["spanId"])
    start = copy.deepcopy(first)
    start.update(name="__start__", spanId="00000000000057a1")
    for a in start["attributes"]:
        if a["key"] == "metadata":
            md = json.loads(a["value"]["stringValue"])
            md.update(langgraph_node="__start__", langgraph_checkpoint_ns="__start__:0001")
            a["value"]["stringValue"] = json.dumps(md)
    start["endTimeUnixNano"] = start["startTimeUnixNano"]
    spans.insert(spans.index(first), start)
    f = tmp_path / "sup" / "openinference.otlp.json"
    f.parent.mkdir()
    f.write_text(json.dumps(d))
    mast("ingest", f)
    [(_, _, _, agents, _)] = _summary(db)
    assert agents == ["researcher", "supervisor", "writer"]


def _kinds(mast, db, path: Path) -> list[tuple]:
    """(kind, agent, tokens in, tokens out) of one artefact's steps, ingested alone."""
    db.unlink(missing_ok=True)
    mast("ingest", path)
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT kind, agent, tokens_in, tokens_out FROM steps ORDER BY step")


def test_model_replies_are_llm_calls_in_every_artefact_of_a_run(mast, db):
    # astream_events, LangSmith runs and OpenInference spans of the same graph: a model's
    # reply is one llm_call step with its tokens in all three (astream_events stored it as a
    # message).  What only one artefact holds is left out of the comparison: the tool steps
    # of a hand-written node (its update, only in the events) and how the run ended (the
    # GraphRecursionError, in the run tree and spans, raised to the caller of astream_events)
    loop = FW / "loop"
    shared = ("message", "llm_call", "handoff")
    seqs = {name: [s for s in _kinds(mast, db, loop / name) if s[0] in shared]
            for name in ("astream_events.jsonl", "langsmith_run_tree.json", "openinference.b64.otlp.json")}
    events = seqs["astream_events.jsonl"]
    assert [s[0] for s in events].count("llm_call") == 6  # the six ScriptedChatModel runs of the run tree
    assert all(s[2] is not None for s in events if s[0] == "llm_call")
    assert seqs["langsmith_run_tree.json"] == events == seqs["openinference.b64.otlp.json"]
    # the graph of role-dict inputs: the events and the dumpd run tree agree step for step
    assert _kinds(mast, db, DICTS / "astream_events.jsonl") == _kinds(mast, db, DICTS / "langsmith_run_tree.dumpd.json")
