"""LangGraph and LangSmith importers (``langgraph-stream``, ``langgraph-events``, ``langgraph-messages``,
``langsmith``).

Fixtures: tests/fixtures/frameworks/langgraph/, written by generators/gen_langgraph.py
running langgraph 1.2.22 / langgraph-supervisor 0.0.31 / langsmith 0.15.0 offline with a
scripted chat model; the LangSmith runs are what the real client sent to a loopback
stand-in of the LangSmith API.  ``facts.json`` holds what the scripted models returned
(usage per call) and the tools that ran, for checks independent of mast's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import artefact_keys, assert_truncated_refused, check_framework, ingest, summarise
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "langgraph"
FACTS = json.loads((FIX / "facts.json").read_text())["scenarios"]
SAMPLES = ROOT.parent / "shared" / "reference" / "frameworks" / "crewai-langgraph" / "samples"


def expected_format(name: str) -> str:
    if name.startswith("stream_"):
        return "langgraph-stream"
    if name.startswith("astream_events"):
        return "langgraph-events"
    if name.startswith("final_state"):
        return "langgraph-messages"
    if name.startswith("langsmith_run") or name.startswith("langsmith_wire"):
        return "langsmith"
    if ".otlp." in name or name.endswith(".sdk_to_json.jsonl"):
        return "otel"
    raise AssertionError(name)


def rows(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT agent, kind, tool_name, target_agent, status, tokens_in, tokens_out, content, "
                           "span_id, parent_span_id, started_at, role FROM steps ORDER BY trace_id, step")


#: Where mast still disagrees with the framework, ``{artefact: {fact: what mast stores}}``
#: (none now: OpenInference's LangGraph ``ToolNode`` was an agent, with handoffs to it,
#: until the importer learnt that a node no model call carries is no agent).
KNOWN: dict[str, dict] = {}


@pytest.mark.parametrize("rel", artefact_keys(FIX))
def test_fixture_detected_and_matches_what_langgraph_recorded(rel, mast, db):
    path = FIX / rel
    out = ingest(mast, path)
    fmt = expected_format(path.name)
    assert out["formats"] == {fmt: 1}, "auto-detection picked another importer"
    # golden.json: computed by the generators from LangChain's own objects in the run;
    # compared on the facts this form holds (fw_golden.CARRIES)
    check_framework(FIX, rel, db, known=KNOWN.get(rel))


# Artefacts that carry every LLM call (final_state of the supervisor keeps only each
# worker's last message: langgraph-supervisor's default output_mode="last_message").
FULL = ["supervisor/stream_v2.jsonl", "supervisor/stream_v1_tuples.jsonl", "supervisor/langsmith_runs.jsonl",
        "supervisor/openinference.otlp.json", "loop/stream_v2.jsonl", "loop/final_state.to_dict.json",
        "loop/langsmith_run_tree.json", "loop/openinference.b64.otlp.json", "loop/astream_events.jsonl",
        "loop/langsmith_otel.otlp.json", "loop/langsmith_wire.jsonl"]


@pytest.mark.parametrize("rel", FULL)
def test_tokens_and_agents_match_the_scripted_models(rel, mast, db):
    facts = FACTS[rel.split("/")[0]]
    ingest(mast, FIX / rel)
    [got] = summarise(db)
    assert got["tokens"] == [facts["tokens_in"], facts["tokens_out"]]
    assert got["agents"] == facts["agents"]
    assert got["unpaired_tool_calls"] == 0


@pytest.mark.parametrize("rel", ["supervisor/stream_v2.jsonl", "supervisor/stream_v1_tuples.jsonl",
                                 "supervisor/langsmith_runs.jsonl", "supervisor/openinference.otlp.json",
                                 "supervisor/final_state.dumpd.json"])
def test_supervisor_handoffs_are_handoffs_not_tools_or_errors(rel, mast, db):
    ingest(mast, FIX / rel)
    [got] = summarise(db)
    # transfer_to_researcher, back, transfer_to_writer, back: in this order
    assert got["handoffs"] == [["supervisor", "researcher"], ["researcher", "supervisor"],
                               ["supervisor", "writer"], ["writer", "supervisor"]]
    assert "error" not in got["kinds"], "ParentCommand is how langgraph-supervisor hands over, not a failure"
    assert got["outcome"] == "unknown"
    assert got["termination"][0] == "supervisor" and got["termination_last"]
    r = rows(db)
    assert not [x for x in r if (x[2] or "").startswith("transfer_") and x[1] != "handoff"]
    ran = [t["tool"] for t in FACTS["supervisor"]["tools"]]
    assert [p[0] for p in got["tool_pairs"]] in ([], ran)


def test_langsmith_parent_command_errors_are_in_the_source(mast, db):
    text = (FIX / "supervisor" / "langsmith_runs.jsonl").read_text()
    assert "ParentCommand(" in text  # the test above would be vacuous otherwise


def test_recursion_limit_is_a_failure_in_runs_and_spans(mast, db):
    assert FACTS["loop"]["error"].startswith("GraphRecursionError")
    for rel in ("loop/langsmith_run_tree.json", "loop/openinference.b64.otlp.json"):
        ingest(mast, FIX / rel)
    got = summarise(db)
    assert [g["outcome"] for g in got] == ["failure", "failure"]
    for g in got:
        assert g["kinds"]["error"] == 1 and g["termination"][1] == "failed"
        # planner and coder hand over with Command(goto=...), no tool: implicit handoffs
        assert g["handoffs"][:2] == [["planner", "coder"], ["coder", "planner"]]
    errs = [r for r in rows(db) if r[1] == "error"]
    assert all("Recursion limit" in (r[7] or "") for r in errs)


def test_tool_results_link_to_calls_and_keep_error_status(mast, db):
    ingest(mast, FIX / "loop" / "stream_v2.jsonl")
    r = rows(db)
    calls = [x for x in r if x[1] == "tool_call"]
    results = {x[9]: x for x in r if x[1] == "tool_result"}
    assert len(calls) == len(FACTS["loop"]["tools"]) == 3
    for c in calls:
        assert c[8] in results and results[c[8]][2] == c[2] == "run_tests"
        assert results[c[8]][4] == "error"


def test_stream_timestamps_come_from_debug_events(mast, db):
    ingest(mast, FIX / "supervisor" / "stream_v1_tuples.jsonl")
    r = rows(db)
    assert all(x[10] is not None for x in r if x[1] != "message" or x[11] != "user")
    ingest(mast, FIX / "supervisor" / "final_state.to_dict.json")
    with Store(db, read_only=True) as st:
        n = st.fetchall("SELECT count(*) FROM steps s JOIN traces t USING (trace_id) "
                        "WHERE t.source_format = 'langgraph-messages' AND s.started_at IS NOT NULL")[0][0]
    assert n == 0, "message lists carry no timestamps; none may be invented"


def test_the_three_message_serialisations_give_one_trace(mast, db):
    for form in ("to_dict", "dumpd", "model_dump"):
        ingest(mast, FIX / "supervisor" / f"final_state.{form}.json")
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 1, "same content hash whatever the form"


def test_secrets_in_messages_are_redacted(mast, db, tmp_path):
    msgs = json.loads((FIX / "supervisor" / "final_state.model_dump.json").read_text())
    msgs[0]["content"] = "Use api_key: sk-proj-abcdefghijklmnopqrstuv and header Authorization: Bearer zzzzzzzzzzzzzzzzzzzzzzzz"
    p = tmp_path / "m.json"
    p.write_text(json.dumps(msgs))
    ingest(mast, p)
    text = " ".join(x[7] or "" for x in rows(db))
    assert "Use api_key" in text
    assert "abcdefghijklmnopqrstuv" not in text and "zzzzzzzzzzzzzzzzzzzzzzzz" not in text
    runs = (FIX / "supervisor" / "langsmith_runs.jsonl").read_text()
    assert "lsv2_pt_" not in runs, "the LangSmith client does not put its API key in runs"


# -- bad input ------------------------------------------------------------------------------

def _no_traces(db: Path) -> None:
    if db.exists():
        with Store(db, read_only=True) as st:
            assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 0


def test_truncated_stream_names_the_line(mast, db, tmp_path):
    raw = (FIX / "supervisor" / "stream_v2.jsonl").read_text()
    p = tmp_path / "s.jsonl"
    p.write_text(raw[: len(raw) * 2 // 3])
    res = mast("ingest", p, expect=1)
    assert str(p) in res.stderr and f"line {raw[: len(raw) * 2 // 3].count(chr(10)) + 1}" in res.stderr
    _no_traces(db)


def test_unknown_stream_mode_is_a_newer_version(mast, db, tmp_path):
    lines = (FIX / "supervisor" / "stream_v2.jsonl").read_text().splitlines()
    lines.insert(3, json.dumps({"type": "lifecycle", "ns": [], "data": {"event": "started"}}))
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(lines) + "\n")
    res = mast("ingest", p, expect=1)
    assert "line 4" in res.stderr and "lifecycle" in res.stderr and "newer" in res.stderr
    _no_traces(db)


def test_newer_langchain_serialisation_is_refused(mast, db, tmp_path):
    msgs = json.loads((FIX / "supervisor" / "final_state.dumpd.json").read_text())
    msgs[2]["lc"] = 2
    p = tmp_path / "m.json"
    p.write_text(json.dumps(msgs))
    res = mast("ingest", p, expect=1)
    assert "message 2" in res.stderr and "lc=2" in res.stderr
    _no_traces(db)


def test_langsmith_run_missing_fields_and_unknown_run_type(mast, db, tmp_path):
    lines = (FIX / "supervisor" / "langsmith_runs.jsonl").read_text().splitlines()
    r = json.loads(lines[4])
    del r["run_type"]
    p = tmp_path / "runs.jsonl"
    p.write_text("\n".join(lines[:4] + [json.dumps(r)] + lines[5:]) + "\n")
    res = mast("ingest", "--format", "langsmith", p, expect=1)
    assert "line 5" in res.stderr and "run_type" in res.stderr
    r["run_type"] = "agent_v2"
    p.write_text("\n".join(lines[:4] + [json.dumps(r)] + lines[5:]) + "\n")
    res = mast("ingest", "--format", "langsmith", p, expect=1)
    assert "line 5" in res.stderr and "agent_v2" in res.stderr and "newer" in res.stderr
    _no_traces(db)


def test_lookalikes_are_refused_with_the_record(mast, db, tmp_path):
    # a list whose first element is a message and whose third is not
    msgs = json.loads((FIX / "supervisor" / "final_state.model_dump.json").read_text())
    msgs[2] = {"type": "ai", "text": "no content field"}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(msgs))
    res = mast("ingest", p, expect=1)
    assert "message 2" in res.stderr and "not a LangChain message" in res.stderr
    # a stream whose later line is not a stream part
    lines = (FIX / "loop" / "stream_v2.jsonl").read_text().splitlines()
    lines[6] = json.dumps({"hello": "world"})
    s = tmp_path / "s.jsonl"
    s.write_text("\n".join(lines) + "\n")
    res = mast("ingest", s, expect=1)
    assert "line 7" in res.stderr and "not a LangGraph stream part" in res.stderr
    _no_traces(db)


# -- the shared reference samples ---------------------------------------------------------------

def _supported(p: Path) -> str | None:
    n = p.name
    if n in ("stream_v1_updates_messages_debug.jsonl", "stream_v1_updates_messages_debug_subgraphs.jsonl",
             "stream_v1_updates_only_subgraphs.jsonl", "stream_v2_all_modes_subgraphs.jsonl"):
        return "langgraph-stream"
    if n.startswith("final_state_messages_"):
        return "langgraph-messages"
    if n == "astream_events_v2.jsonl":
        return "langgraph-events"
    if n in ("langsmith_run_tree.json", "langsmith_runs_flat.jsonl", "langsmith_runs_merged_ingest.jsonl",
             "langsmith_runs_read_schema_ingest.jsonl"):
        return "langsmith"
    if p.parent.name == "otel" and (n.endswith(".otlp.json") or n.endswith(".sdk_to_json.jsonl")):
        return "otel"
    return None


def test_every_supported_reference_sample_is_detected_and_yields_steps():
    if not SAMPLES.exists():
        pytest.skip(f"{SAMPLES} not present (../shared is expected beside the clone)")
    from mast import ingest as registry
    seen = 0
    for p in sorted(SAMPLES.rglob("*")):
        want = _supported(p) if p.is_file() else None
        if want is None:
            continue
        imp = registry.detect(p)
        assert imp.name == want, f"{p}: detected as {imp.name}"
        traces = list(imp.read(p))
        assert traces and all(t.steps for t in traces), p
        assert any(s.kind.value == "handoff" for t in traces for s in t.steps), p
        seen += 1
    assert seen >= 15


def test_messages_mode_alone_merges_token_chunks(mast, db, tmp_path):
    # stream_mode="messages" only: AI messages arrive as token chunks, merged by message id
    lines = [ln for ln in (FIX / "supervisor" / "stream_v1_tuples.jsonl").read_text().splitlines()
             if json.loads(ln)[1] == "messages"]
    chunks = [json.loads(ln)[2][0] for ln in lines]
    assert sum("AIMessageChunk" in json.dumps(c) for c in chunks) > 6
    p = tmp_path / "messages_only.jsonl"
    p.write_text("\n".join(lines) + "\n")
    ingest(mast, p)
    [got] = summarise(db)
    facts = FACTS["supervisor"]
    assert got["format"] == "langgraph-stream"
    assert got["tokens"] == [facts["tokens_in"], facts["tokens_out"]]
    assert got["handoffs"] == [["supervisor", "researcher"], ["researcher", "supervisor"],
                               ["supervisor", "writer"], ["writer", "supervisor"]]
    assert [p[0] for p in got["tool_pairs"]] == [t["tool"] for t in facts["tools"]]


@pytest.mark.parametrize("rel", artefact_keys(FIX))
def test_truncated_fixture_is_refused_whole(rel, mast, db, tmp_path):
    assert_truncated_refused(FIX / rel, mast, db, tmp_path)


def test_first_part_longer_than_the_detection_head(mast, db, tmp_path):
    from mast.ingest import HEAD_BYTES
    lines = (FIX / "supervisor" / "stream_v2.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["data"]["notes"] = "x" * (HEAD_BYTES + 10)
    p = tmp_path / "big_first.jsonl"
    p.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    assert ingest(mast, p)["formats"] == {"langgraph-stream": 1}
    [got] = summarise(db)
    assert got["tokens"] == [FACTS["supervisor"]["tokens_in"], FACTS["supervisor"]["tokens_out"]]
