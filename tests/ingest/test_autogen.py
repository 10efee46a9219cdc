"""AutoGen AgentChat importers (``autogen``, ``autogen-events``) on real framework output.

The fixtures under tests/fixtures/frameworks/autogen/ were written by
tests/fixtures/frameworks/generators/gen_autogen.py running autogen-agentchat 0.7.5 and
0.4.9.3 offline; its golden.json holds, per artefact, what the framework's own objects
and the stub's served token counts say the normalised trace must contain.  Each test
ingests through the CLI into a real DuckDB file and reads the store back with SQL, so
the comparison is between two independent readings of the same run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import no_traces, refused
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "autogen"
GOLDEN = json.loads((FIX / "golden.json").read_text())["artefacts"]
SAMPLES = ROOT.parent / "shared" / "reference" / "frameworks" / "autogen" / "samples"


def importer_for(name: str) -> str:
    if name.endswith(".otlp.json"):
        return "otel"
    return "autogen-events" if name.startswith("events.") else "autogen"


def summarise(db: Path) -> dict:
    """The golden-summary fields, read from the store with SQL."""
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT trace_id, tokens_in, tokens_out, metadata->>'outcome_reason' FROM traces")
        assert len(traces) == 1, f"expected one trace, found {len(traces)}"
        tid, tin, tout, reason = traces[0]
        rows = st.fetchall("SELECT step, agent, kind, span_id, parent_span_id, tool_name, target_agent, content "
                           "FROM steps WHERE trace_id = ? ORDER BY step", [tid])
        status = [r[0] for r in st.fetchall("SELECT coalesce(status, 'ok') FROM steps WHERE trace_id = ? "
                                            "AND kind = 'tool_result' ORDER BY step", [tid])]
    kinds = Counter(r[2] for r in rows)
    results = {r[4]: r for r in rows if r[2] == "tool_result"}
    pairs = []
    for r in rows:
        if r[2] == "tool_call":
            assert r[3] in results, f"tool call {r[3]} has no linked result"
            assert results[r[3]][5] == r[5], "a result names another tool than its call"
            pairs.append([r[3], r[5]])
    terms = [r for r in rows if r[2] == "termination"]
    return {"agents": sorted({r[1] for r in rows if r[1]}), "kinds": dict(kinds), "tool_pairs": sorted(pairs),
            "handoffs": [[r[1], r[6]] for r in rows if r[2] == "handoff"],
            "last_termination": terms[-1][7] if terms and terms[-1] is rows[-1] else None,
            "tool_status": status, "outcome_reason": reason, "tokens": [tin or 0, tout or 0], "rows": rows}


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_fixture_matches_golden(rel, mast, db):
    path = FIX / rel
    want = GOLDEN[rel]
    res = mast("ingest", "--json", path)
    out = json.loads(res.stdout)
    assert out["formats"] == {importer_for(path.name): 1}, "auto-detection picked another importer"
    got = summarise(db)
    assert got["agents"] == want["agents"]
    if "kinds" in want:  # spans: the LLM calls the stub served, not the message counts
        assert got["kinds"] == want["kinds"]
    if "manager_llm_calls" in want:  # the speaker selections, with their tokens
        assert sum(1 for r in got["rows"] if r[2] == "llm_call" and r[1].endswith("GroupChatManager")) \
            == want["manager_llm_calls"] > 0
    assert got["tool_pairs"] == want["tool_pairs"]
    assert got["handoffs"] == want["handoffs"]
    assert got["tokens"] == want["tokens"]
    if "tool_status" in want:  # each execution's is_error, as AgentChat recorded it
        assert got["tool_status"] == want["tool_status"]
    if want.get("stop_reason"):
        assert got["last_termination"] == want["stop_reason"]
        assert got["outcome_reason"] == want["stop_reason"]  # why the run stopped, for the classifiers


def test_handoff_is_one_step_not_three(mast, db):
    mast("ingest", FIX / "0.7.5" / "swarm" / "task_result.json")
    rows = summarise(db)["rows"]
    assert not [r for r in rows if (r[5] or "").startswith("transfer_to_") and r[2] != "handoff"]
    h = [r for r in rows if r[2] == "handoff"]
    assert [(r[1], r[6], r[5], r[3]) for r in h] == [("triage", "refunds", "transfer_to_refunds", "call_h1"),
                                                    ("refunds", "user", "transfer_to_user", "call_h2")]


def test_timestamps_ids_and_error_results(mast, db, tmp_path):
    mast("ingest", FIX / "0.7.5" / "selector" / "task_result.json")
    with Store(db, read_only=True) as st:
        missing = st.fetchall("SELECT count(*) FROM steps WHERE kind <> 'termination' AND started_at IS NULL")[0][0]
        status = st.fetchall("SELECT parent_span_id, status FROM steps WHERE kind = 'tool_result' ORDER BY 1")
        first = st.fetchall("SELECT min(s.started_at), any_value(t.task) FROM steps s JOIN traces t USING (trace_id)")[0]
    assert missing == 0  # 0.6+ messages carry created_at
    raw = json.loads((FIX / "0.7.5" / "selector" / "task_result.json").read_text())
    assert first[0].isoformat() == raw["messages"][0]["created_at"].rstrip("Z")  # stored as naive UTC
    assert first[1] == raw["messages"][0]["content"]
    assert status == [("call_p1", "ok"), ("call_p2", "error")]  # Atlantis raised inside the tool

    # 0.4 messages have neither id nor created_at: the order is the only timeline.
    db2 = tmp_path / "old.duckdb"
    from mast.ingest.pipeline import ingest_paths
    with Store(db2) as st:
        s = ingest_paths(st, [FIX / "0.4.9.3" / "swarm" / "task_result.json"])
        assert not s.errors
        rows = st.fetchall("SELECT count(*), count(s.started_at), any_value(t.metadata->>'agentchat_version') "
                           "FROM steps s JOIN traces t USING (trace_id)")[0]
    assert rows[0] > 0 and rows[1] == 0 and rows[2] == "0.4-0.5"


def test_event_log_counts_llm_tokens_once_and_keeps_prompts(mast, db):
    mast("ingest", FIX / "0.7.5" / "roundrobin" / "events.jsonl")
    with Store(db, read_only=True) as st:
        msg_tokens = st.fetchall("SELECT count(*) FROM steps WHERE kind <> 'llm_call' AND tokens_in IS NOT NULL")[0][0]
        llm = st.fetchall("SELECT agent, tokens_in, attributes->>'$.prompt[0].role', content FROM steps "
                          "WHERE kind = 'llm_call' ORDER BY step")
    assert msg_tokens == 0  # models_usage repeats the LLMCall's tokens
    assert [r[0] for r in llm] == ["planner", "weather_agent", "weather_agent", "critic"]
    assert all(r[2] == "system" for r in llm)  # the prompt, system message first
    assert llm[-1][3].endswith("APPROVE")


def test_plain_event_log_tolerates_repr_lines(tmp_path):
    from mast.ingest import get

    src = FIX / "0.7.5" / "swarm" / "events.log"
    reprs = [ln for ln in src.read_text().splitlines() if ln and not ln.startswith("{")]
    assert reprs, "the plain log should hold agentchat events as pydantic reprs"
    [t] = list(get("autogen-events").read(src))
    assert t.metadata["skipped_lines"] == len(reprs)


# ------------------------------------------------------------------------- bad input
def test_truncated_task_result(mast, db, tmp_path):
    src = (FIX / "0.7.5" / "roundrobin" / "task_result.json").read_bytes()
    p = tmp_path / "task_result.json"
    p.write_bytes(src[: len(src) // 2])
    refused(mast, db, p, "invalid JSON", fmt="autogen")


def test_truncated_stream_stores_nothing(mast, db, tmp_path):
    # Two complete runs, then a third cut mid-line: not even the first two are stored.
    lines = (FIX / "0.7.5" / "swarm" / "run_stream.jsonl").read_text().splitlines()
    other = (FIX / "0.7.5" / "roundrobin" / "run_stream.jsonl").read_text().splitlines()
    p = tmp_path / "run_stream.jsonl"
    p.write_text("\n".join(lines + other + [other[0][:40]]) + "\n")
    refused(mast, db, p, f"line {len(lines) + len(other) + 1}", "truncated")


def test_missing_source_names_the_message(mast, db, tmp_path):
    data = json.loads((FIX / "0.7.5" / "swarm" / "task_result.json").read_text())
    del data["messages"][3]["source"]
    p = tmp_path / "task_result.json"
    p.write_text(json.dumps(data))
    refused(mast, db, p, "message 3", "source")


def test_unknown_newer_message_type_is_kept_as_event(mast, db, tmp_path):
    # AgentChat messages carry no version; newer releases add event types.  They are kept
    # (kind event, attributes.unknown_type), not dropped and not fatal.
    data = json.loads((FIX / "0.7.5" / "roundrobin" / "task_result.json").read_text())
    data["messages"].insert(2, {"id": "x1", "source": "planner", "models_usage": None, "metadata": {},
                                "created_at": "2030-01-01T00:00:00Z", "content": "thinking",
                                "type": "PlanRevisionEvent"})
    p = tmp_path / "task_result.json"
    p.write_text(json.dumps(data))
    mast("ingest", p)
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT step, kind, attributes->>'type', attributes->>'unknown_type' FROM steps "
                           "WHERE attributes->>'type' = 'PlanRevisionEvent'")
    assert rows == [(2, "event", "PlanRevisionEvent", "true")]


def test_lookalike_message_list(mast, db, tmp_path):
    # Starts like an AgentChat message list; the third element is something else.
    data = json.loads((FIX / "0.7.5" / "roundrobin" / "messages.json").read_text())
    data[2] = {"role": "assistant", "content": "I am an OpenAI message"}
    p = tmp_path / "messages.json"
    p.write_text(json.dumps(data))
    refused(mast, db, p, "message 2", "not an AgentChat message")


def test_events_truncated_record(mast, db, tmp_path):
    src = (FIX / "0.7.5" / "selector" / "events.jsonl").read_text().splitlines()
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(src[:10] + [src[10][: len(src[10]) // 2]] + src[11:]) + "\n")
    refused(mast, db, p, "line 11", "truncated")


def test_events_llmcall_missing_fields(mast, db, tmp_path):
    src = (FIX / "0.7.5" / "roundrobin" / "events.log").read_text().splitlines()
    i = next(i for i, ln in enumerate(src) if '"type": "LLMCall"' in ln)
    src[i] = json.dumps({"type": "LLMCall", "agent_id": "planner_x/y"})
    p = tmp_path / "events.log"
    p.write_text("\n".join(src) + "\n")
    refused(mast, db, p, f"line {i + 1}", "LLMCall record lacks")


def test_events_lookalike_is_not_detected(mast, db, tmp_path):
    # Log-shaped lines (a prefix, then JSON) that are not AutoGen events.
    p = tmp_path / "events.log"
    p.write_text("2026-11-21 21:18:01,688 myapp.events INFO {\"type\": \"Request\", \"path\": \"/\"}\n"
                 "2026-11-21 21:18:02,001 myapp.events INFO {\"type\": \"Response\", \"status\": 200}\n")
    refused(mast, db, p, "no importer recognises")


def test_events_log_of_only_text_is_an_error(tmp_path):
    from mast.errors import IngestError
    from mast.ingest import get

    p = tmp_path / "events.log"
    p.write_text("tool_choice parameter specified but is ignored in replay mode\n")
    with pytest.raises(IngestError, match="no AutoGen event records"):
        list(get("autogen-events").read(p))


# ------------------------------------------------------------ the shared reference samples
AGENTCHAT_ARTEFACTS = {"task_result.json": "autogen", "messages.json": "autogen", "run_stream.jsonl": "autogen",
                       "events.jsonl": "autogen-events", "events.log": "autogen-events",
                       "events.ts.log": "autogen-events"}


def test_every_shared_agentchat_sample_is_detected_and_read(tmp_path):
    if not SAMPLES.exists():
        pytest.skip(f"{SAMPLES} not present (../shared is expected beside the clone)")
    from mast.ingest import detect

    seen = 0
    for f in sorted(SAMPLES.glob("agentchat*/**/*")):
        want = AGENTCHAT_ARTEFACTS.get(f.name)
        if not want or not f.is_file():
            continue
        imp = detect(f)
        assert imp.name == want, f"{f}: detected as {imp.name}"
        traces = list(imp.read(f))
        assert traces and all(t.steps for t in traces), f"{f}: no steps"
        seen += 1
    assert seen >= 60  # 4 + 3 + 6 scenario folders x 6 artefacts, less the missing ones


def test_fixture_copy_in_traces_folder_is_readable(tmp_path):
    # traces/autogen holds copies for the quick start; they must stay importable.
    folder = ROOT / "traces" / "autogen"
    files = [f for f in folder.glob("*") if f.suffix in (".json", ".jsonl", ".log")]
    assert files
    from mast.ingest import detect

    for f in files:
        assert detect(f).name == importer_for(f.name.split("-", 1)[1] if "-" in f.name else f.name)
        assert all(t.steps for t in detect(f).read(f))
