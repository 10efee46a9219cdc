"""Coordination analytics on traces with a known answer: OTLP files read by the real OTLP
importer into a real store, and hand-built traces for what OTLP cannot say (messages that
carry tokens, broken parent links).  Every expected figure is worked out in the comments."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mast.cli import cli
from mast.coordination import amdahl, analytics
from mast.ingest.pipeline import ingest_paths
from mast.model import Annotation, Label, Outcome, Step, StepKind, Trace
from mast.store import Store
from tests.coordination_otlp import PARALLEL, PIPELINE, SINGLE, S, llm, write

approx = pytest.approx


@pytest.fixture
def otlp_store(tmp_path):
    files = [write(tmp_path / "parallel.otlp.json", PARALLEL, "par", 1),
             write(tmp_path / "pipeline.otlp.json", PIPELINE, "pipe", 2),
             write(tmp_path / "single.otlp.json", SINGLE, "solo", 3)]
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        ingest_paths(st, files)
    return db


def _by_system(db, **kw):
    with Store(db, read_only=True) as st:
        res = analytics(st, **kw)
    return {t.system: t for t in res.traces}, {s.system: s for s in res.systems}, res


def test_two_workers_in_parallel_under_a_coordinator(otlp_store):
    t = _by_system(otlp_store)[0]["par"]
    # coordinator -> worker_a and -> worker_b (nested agent spans: a call and its return each)
    assert (t.topology, t.hub, t.agents, t.edges, t.hub_share) == ("centralized", "coordinator", 3, 4, 1.0)
    # plan [0,1], a [1,3], b [1,4], collect [4,5]: wall 5, work 2 + 2 + 3 = 7
    assert (t.wall_s, t.work_s, t.concurrency, t.peak_concurrency) == (5.0, 7.0, approx(1.4), 2)
    # at most one agent works during [0,1] and [3,5]: 3 s serial; [1,3]: 2 agents x 2 s parallel
    assert t.serial_fraction == approx(3 / 7) and t.serial_wall_share == approx(3 / 5)
    assert t.speedup == approx(7 / 5) and t.working_agents == 3
    assert t.ceiling == approx(1 / (3 / 7 + (4 / 7) / 3)) == approx(21 / 13)
    assert t.speedup <= t.ceiling
    # the longest chain: plan -> b -> collect = 1 + 3 + 1; worker_b carries 3/5 of it
    assert t.critical_path_s == 5.0
    assert t.critical_path_share == {"coordinator": approx(0.4), "worker_b": approx(0.6)}
    assert t.straggler == "worker_b"
    # implicit handoffs carry no tokens and were written by no call: all 400 tokens are work
    assert (t.tokens, t.coordination_tokens, t.coordination_token_share) == (400, 0, 0.0)
    assert t.models == ["gpt-4o", "gpt-4o-mini"]
    assert t.agent_models == {"coordinator": ["gpt-4o"], "worker_a": ["gpt-4o-mini"], "worker_b": ["gpt-4o-mini"]}
    assert t.timing_reason is None and (t.inverted_spans, t.skewed_spans, t.parent_cycles) == (0, 0, 0)


def test_pure_pipeline(otlp_store):
    t = _by_system(otlp_store)[0]["pipe"]
    # researcher -> writer -> editor under a workflow span with no agent: no owner, no returns
    assert (t.topology, t.hub, t.edges, t.back_edge_share) == ("pipeline", None, 2, 0.0)
    # research [0,2], draft [2,3], spellcheck tool [3,5] (ends when its result starts), edit [5,6]
    assert (t.work_spans, t.timed_spans, t.wall_s, t.work_s) == (4, 4, 6.0, 6.0)
    assert (t.concurrency, t.serial_fraction, t.speedup, t.ceiling) == (1.0, 1.0, 1.0, 1.0)
    assert t.critical_path_s == 6.0 and t.straggler == "writer"  # 3 of the 6 seconds
    assert t.critical_path_share == {"editor": approx(1 / 6), "researcher": approx(2 / 6), "writer": approx(3 / 6)}


def test_single_agent(otlp_store):
    t = _by_system(otlp_store)[0]["solo"]
    assert (t.topology, t.hub, t.agents, t.edges) == ("single", None, 1, 0)
    assert (t.wall_s, t.concurrency, t.serial_fraction, t.critical_path_s) == (4.0, 1.0, 1.0, 4.0)
    assert t.critical_path_share == {"solo": 1.0} and t.working_agents == 1


def test_system_rollup_and_graph(otlp_store):
    _, systems, res = _by_system(otlp_store)
    par = systems["par"]
    assert (par.topology, par.hub, par.timed_traces, par.untimed) == ("centralized", "coordinator", 1, {})
    assert par.ceiling == approx(amdahl(3 / 7, 3))
    assert par.single_model_team is False and par.models == ["gpt-4o", "gpt-4o-mini"]
    assert systems["pipe"].single_model_team is True
    assert systems["solo"].single_model_team is None  # one agent is no team
    assert {(e.source, e.target, e.messages) for e in res.edges_of("par")} == {
        ("coordinator", "worker_a", 1), ("worker_a", "coordinator", 1),
        ("coordinator", "worker_b", 1), ("worker_b", "coordinator", 1)}


def test_bad_timestamps_are_counted_and_said(tmp_path):
    backwards = S("root", "x", 0, 4, [S("agent", "solo", 0, 4, [llm((5, 5), 0, 1), llm((5, 5), 3, 2, "backwards")])])
    # worker_a's host clock is 100 s behind the coordinator's
    skewed = S("root", "y", 0, 5, [S("agent", "coordinator", 0, 5, [
        llm((1, 1), 0, 1, "plan"), S("agent", "worker_a", -99, -97, [llm((1, 1), -99, -97, "a")]),
        llm((1, 1), 4, 5, "collect")])])
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        ingest_paths(st, [write(tmp_path / "b.otlp.json", backwards, "backwards", 21),
                          write(tmp_path / "k.otlp.json", skewed, "skewed", 22)])
    traces, systems, _ = _by_system(db)
    b, k = traces["backwards"], traces["skewed"]
    assert (b.inverted_spans, b.timing_reason) == (1, "1 work span(s) end before they start")
    assert k.skewed_spans == 1 and "outside the run's own start and end (clocks that disagree" in k.timing_reason
    for t in (b, k):  # no made-up number
        assert (t.wall_s, t.concurrency, t.serial_fraction, t.critical_path_s, t.ceiling) == (None,) * 5
    assert systems["backwards"].inverted_spans == 1 and systems["skewed"].skewed_spans == 1
    assert systems["skewed"].timed_traces == 0 and systems["skewed"].concurrency is None
    assert b.topology == "single"  # the rest of what the trace says still stands


def _trace(system, steps, outcome=Outcome.UNKNOWN, index=0):
    return Trace(system=system, framework=None, source_format="messages", source_path=f"/{system}.json",
                 source_index=index, steps=steps, outcome=outcome).finalise()


def test_tax_steps_without_agent_and_parent_cycles(tmp_path):
    db = tmp_path / "s.duckdb"
    chat = [Step(agent="a", kind=StepKind.LLM_CALL, content="plan", tokens_in=80, tokens_out=20),
            Step(agent="a", kind=StepKind.MESSAGE, content="b, do it", target_agent="b"),
            Step(agent="b", kind=StepKind.LLM_CALL, content="think", tokens_in=40, tokens_out=10),
            Step(agent="b", kind=StepKind.TOOL_CALL, content=None, tool_name="run", role="assistant"),
            Step(agent="b", kind=StepKind.TOOL_RESULT, tool_name="run", role="tool", content="ok"),
            Step(agent="b", kind=StepKind.LLM_CALL, content="report", tokens_in=25, tokens_out=5),
            Step(agent="b", kind=StepKind.MESSAGE, content="done", tokens_in=0, tokens_out=20)]
    nobody = [Step(agent=None, kind=StepKind.MESSAGE, content="hello"),
              Step(agent=None, kind=StepKind.LLM_CALL, content="x", tokens_in=1, tokens_out=1)]
    cyclic = [Step(agent="a", kind=StepKind.LLM_CALL, content="1", span_id="s1", parent_span_id="s2"),
              Step(agent="a", kind=StepKind.LLM_CALL, content="2", span_id="s2", parent_span_id="s1"),
              Step(agent="a", kind=StepKind.LLM_CALL, content="3", span_id="s3", parent_span_id="s3"),
              Step(agent="a", kind=StepKind.LLM_CALL, content="4", span_id="s4", parent_span_id="s1")]
    with Store(db) as st:
        with st.transaction():
            st.write_traces([_trace("chat", chat), _trace("nobody", nobody), _trace("cyclic", cyclic)])
    traces, systems, _ = _by_system(db)
    c = traces["chat"]
    # coordination: a's call that wrote the message (100), b's call before its message (30),
    # b's message (20); work: b's "think" (50), followed by a tool call
    assert (c.tokens, c.coordination_tokens, c.coordination_token_share) == (200, 150, 0.75)
    # a -> b (named), b -> ? (no target: the next step's agent; there is none)
    assert (c.topology, c.edges, c.messages) == ("pipeline", 1, 2)
    assert c.timing_reason == "4 of 4 work spans lack a start or end time"  # chat logs keep no times
    assert (c.wall_s, c.concurrency) == (None, None)
    n = traces["nobody"]
    assert (n.agents, n.steps_without_agent, n.topology, n.topology_reason) == (0, 2, None, "no step names an agent")
    assert n.hub is None and n.coordination_token_share == 0.0  # the 2 tokens are an agentless call's
    assert traces["cyclic"].parent_cycles == 3  # s1 and s2 (each other's parent) and s3 (its own)
    assert systems["cyclic"].parent_cycles == 3 and traces["cyclic"].topology == "single"


def test_growth_cost_per_solved_task_and_exposure(tmp_path):
    db = tmp_path / "s.duckdb"
    teams = []
    for i, n in enumerate((1, 2, 3)):  # 10 tokens per agent plus 10 per message between them
        steps = []
        for j in range(n):
            steps.append(Step(agent=f"ag{j}", kind=StepKind.LLM_CALL, content=f"w{i}{j}", tokens_in=10, cost_usd=0.01))
            if j + 1 < n:
                steps.append(Step(agent=f"ag{j}", kind=StepKind.MESSAGE, content=f"m{i}{j}", target_agent=f"ag{j + 1}",
                                  tokens_in=10, cost_usd=0.01))
        teams.append(_trace("grow", steps, Outcome.SUCCESS if i < 2 else Outcome.FAILURE, index=i))
    with Store(db) as st:
        with st.transaction():
            st.write_traces(teams)
        ids = [t.trace_id for t in teams]
        # the pipeline of 3 fails (rules say 1.3); the humans clear the 2-agent one, overriding the rules
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT, annotator="rules", trace_id=ids[2]),
                              Annotation(mode="1.3", label=Label.PRESENT, annotator="rules", trace_id=ids[1]),
                              Annotation(mode="1.3", label=Label.ABSENT, annotator="human", trace_id=ids[1])])
    traces, systems, res = _by_system(db)
    g = systems["grow"]
    # tokens 10, 30, 50 for 1, 2, 3 agents: the least-squares slope is 20 tokens per added agent
    assert g.tokens_per_added_agent == approx(20.0) and g.cost_per_added_agent == approx(0.02)
    assert g.tokens == 90 and g.cost_usd == approx(0.09)
    assert (g.solved, g.cost_per_solved_task) == (2, approx(0.045))
    assert g.tokens_per_agent_per_task == approx((10 + 15 + 50 / 3) / 3)
    # the 3 messages (30 tokens) and the 3 calls that wrote them (30) of the 90
    assert g.coordination_tokens == 60
    by_topo = {x.topology: x for x in res.exposure_of("grow")}
    assert (by_topo["single"].traces, by_topo["single"].labelled, by_topo["single"].share) == (1, 0, None)
    assert (by_topo["pipeline"].traces, by_topo["pipeline"].labelled, by_topo["pipeline"].failing) == (2, 2, 1)
    assert by_topo["pipeline"].share == 0.5
    assert [(x.topology, x.failing) for x in res.exposure_of(None)] == [("single", 0), ("pipeline", 1)]


def test_cli_json_shape_and_nulls(otlp_store, tmp_path):
    r = CliRunner().invoke(cli, ["-d", str(otlp_store), "coordination", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    row = {t["system"]: t for t in doc["traces"]}
    for key in ("trace_id", "topology", "hub", "concurrency", "serial_fraction", "critical_path_s",
                "coordination_token_share"):
        assert key in row["solo"]
    assert row["solo"]["hub"] is None and row["par"]["hub"] == "coordinator"
    assert row["par"]["serial_fraction"] == approx(3 / 7)
    assert {s["system"] for s in doc["systems"]} == {"par", "pipe", "solo"}
    par = next(s for s in doc["systems"] if s["system"] == "par")
    assert len(par["edges"]) == 4 and par["topology"] == "centralized"
    human = CliRunner().invoke(cli, ["-d", str(otlp_store), "coordination", "--system", "par"],
                               env={"COLUMNS": "250"})
    assert human.exit_code == 0 and "coordinator" in human.stdout and "pipe" not in human.stdout


def test_groups_of_traces_give_the_one_pass_result(otlp_store):
    """The per-trace figures are computed a group of traces at a time (bounded memory);
    with groups of 1, 2 and 4 traces every figure, edge and exposure equals one pass's."""
    chat = [Step(agent="a", kind=StepKind.LLM_CALL, content="plan", tokens_in=80, tokens_out=20, cost_usd=0.1),
            Step(agent="a", kind=StepKind.MESSAGE, content="b, do it", target_agent="b"),
            Step(agent="b", kind=StepKind.MESSAGE, content="c, you", target_agent="c"),
            Step(agent="c", kind=StepKind.MESSAGE, content="back to a"),
            Step(agent="a", kind=StepKind.MESSAGE, content="done")]
    cyclic = [Step(agent="a", kind=StepKind.LLM_CALL, content="1", span_id="s1", parent_span_id="s2"),
              Step(agent="a", kind=StepKind.LLM_CALL, content="2", span_id="s2", parent_span_id="s1")]
    nobody = [Step(agent=None, kind=StepKind.MESSAGE, content="hello")]
    extra = [_trace("chat", chat, Outcome.SUCCESS, 0), _trace("chat", chat[:3], Outcome.FAILURE, 1),
             _trace("cyclic", cyclic, index=2), _trace("nobody", nobody, index=3), _trace("par", chat[:2], index=4)]
    with Store(otlp_store) as st:
        with st.transaction():
            st.write_traces(extra)
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT, annotator="rules", trace_id=extra[0].trace_id),
                              Annotation(mode="1.3", label=Label.ABSENT, annotator="human", trace_id=extra[1].trace_id)])
    with Store(otlp_store, read_only=True) as st:
        n = st.fetchall("SELECT count(*) FROM traces")[0][0]
        assert n == 8
        for systems in (None, ["chat", "par"]):
            whole = analytics(st, systems, group=n)
            assert whole.traces and whole.edges and whole.exposure  # something to compare
            for group in (1, 2, 4):
                part = analytics(st, systems, group=group)
                assert part.traces == whole.traces, (systems, group)
                assert part.systems == whole.systems, (systems, group)
                assert part.edges == whole.edges and part.exposure == whole.exposure, (systems, group)
        with pytest.raises(ValueError, match="group"):
            analytics(st, group=0)
        # nothing of a computation is left on the connection
        assert not st.fetchall("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '\\_co\\_%' ESCAPE '\\'")
