"""ag2 1.x (PyPI ``ag2`` 1.2.1; not AG2 Classic): history event logs, the hub's channel WAL
and audit log, and TelemetryMiddleware spans stitched into one trace per run.

Fixtures: tests/fixtures/frameworks/ag2x/{workflow,failing}/, written by
generators/gen_ag2x.py running the real library offline (a hub workflow: coordinator →
researcher with ``web_search`` → writer, handoffs by tools returning ``Handoff``; in the
failing run the tool raises and the writer's model call is refused).  ``facts.json`` is what
the library's own objects recorded (passports, WAL envelopes, history events, audit records,
the stub's usage); ``golden.json`` pins the reviewed summaries (``MAST_WRITE_GOLDEN=1``).
Before these importers every one of these files was refused, and the OTel export was read
as three one-agent traces with no task.
"""

from __future__ import annotations

import copy
import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "ag2x"
FACTS = json.loads((FIX / "facts.json").read_text())
RUNS = ["workflow", "failing"]
AGENTS = ["coordinator", "researcher", "writer"]


def wal(run):
    return next((FIX / run / "hub" / "channels").glob("*/wal.jsonl"))


def history(run, agent):
    return next((FIX / run / "agents" / agent / "log").glob("*.jsonl"))


def rel(p):
    return str(p.relative_to(FIX))


FILES = [rel(p) for run in RUNS for p in [wal(run), FIX / run / "hub" / "audit" / "audit.jsonl",
                                           FIX / run / "telemetry.otlp.json",
                                           *(history(run, a) for a in AGENTS)]]
FORMAT = {"wal.jsonl": "ag2x-wal", "audit.jsonl": "ag2x-audit", "telemetry.otlp.json": "otel"}


def steps(db, trace=None):
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT agent, kind, tool_name, target_agent, status, content, span_id, parent_span_id "
                           "FROM steps ORDER BY trace_id, step")


def one_trace(db):
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT task, outcome, tokens_in, tokens_out, framework FROM traces")
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("name", FILES)
def test_detected_and_matches_golden(name, mast, db):
    p = FIX / name
    want = FORMAT.get(p.name, "ag2x-events")
    assert detect(p).name == want
    assert ingest(mast, p)["formats"] == {want: 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("run", RUNS)
def test_wal_is_the_workflow_the_hub_ran(run, mast, db):
    f = FACTS[run]
    ingest(mast, wal(run))
    task, outcome, *_ = one_trace(db)
    rows = steps(db)
    assert task == f["task"]
    assert [(r[0], r[3], r[2]) for r in rows if r[1] == "handoff"] == \
        [(h["source"], h["target"], h["tool"]) for h in f["handoffs"]]
    # agents named from the hub's passports, never by their ids
    assert {r[0] for r in rows if r[0]} == set(f["agents"])
    said = [(r[0], r[5]) for r in rows if r[1] == "message" and r[0] != "user"]
    assert [a for a, _ in said] == f["speakers"] and said[-1][1] == f["final_body"]
    errors = [(r[0], r[5]) for r in rows if r[1] == "error"]
    assert errors == [(e["agent"], f"{e['exc_type']}: {e['exc_message']}") for e in f["turn_failed"]]
    assert outcome == ("failure" if f["turn_failed"] else "unknown")
    assert rows[-1][1] == "termination" and rows[-1][5] == f["channel"]["close_reason"]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("agent", AGENTS)
def test_history_matches_the_agents_own_events(run, agent, mast, db):
    p = history(run, agent)
    f = FACTS[run]["history"][rel(p).split("/", 1)[1]]
    assert f["agent"] == agent
    ingest(mast, p)
    task, outcome, tin, tout, framework = one_trace(db)
    rows = steps(db)
    assert framework == "ag2x" and task == FACTS[run]["task"]
    assert sum(r[1] == "llm_call" for r in rows) == f["llm_calls"]
    assert (tin or 0, tout or 0) == (f["tokens_in"], f["tokens_out"])
    handoff_tools = {h["tool"] for h in FACTS[run]["handoffs"]}
    calls = [c for c in f["tool_calls"] if c["name"] not in handoff_tools]
    got = [(r[2], r[6]) for r in rows if r[1] == "tool_call"]
    assert got == [(c["name"], c["id"]) for c in calls]
    results = {r[7]: r[4] for r in rows if r[1] == "tool_result"}
    assert {c["id"]: c["result_status"] for c in calls} == {k: results.get(k) for k in (c["id"] for c in calls)}
    mine = [(h["target"], h["tool"]) for h in FACTS[run]["handoffs"] if h["source"] == agent]
    assert [(r[3], r[2]) for r in rows if r[1] == "handoff"] == mine
    assert {r[0] for r in rows if r[1] in ("llm_call", "tool_call", "handoff")} <= {agent}


@pytest.mark.parametrize("run", RUNS)
def test_telemetry_spans_of_one_run_are_one_trace(run, mast, db):
    """TelemetryMiddleware + hub tracing: one trace per envelope (and one for the channel)."""
    f = FACTS[run]
    doc = json.loads((FIX / run / "telemetry.otlp.json").read_text())
    assert len({s["traceId"] for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}) >= 3
    ingest(mast, FIX / run / "telemetry.otlp.json")
    task, outcome, tin, tout, _ = one_trace(db)
    rows = steps(db)
    assert task == f["task"]
    assert {r[0] for r in rows if r[0]} == set(AGENTS)
    assert (tin, tout) == (f["tokens_in"], f["tokens_out"])
    assert [(r[0], r[3]) for r in rows if r[1] == "handoff"] == [(h["source"], h["target"]) for h in f["handoffs"]]
    ran = [(r[2], r[4]) for r in rows if r[1] == "tool_result" and r[2] == "web_search"]
    assert ran == [("web_search", "error" if "error" in t else "ok") for t in f["tool_runs"]]
    assert outcome == ("failure" if f["turn_failed"] else "unknown")


# ---------------------------------------------------------------- stitching, by linking kind
def _spans(doc):
    return [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def _attr(s, key):
    return next((a["value"].get("stringValue") for a in s.get("attributes", []) if a["key"] == key), None)


def _unlinked():
    """The workflow export with the channel id and the links taken off every span: agent
    turns in traces nothing ties together (TelemetryMiddleware without hub tracing)."""
    doc = json.loads((FIX / "workflow" / "telemetry.otlp.json").read_text())
    for s in _spans(doc):
        s["attributes"] = [a for a in s.get("attributes", []) if a["key"] != "ag2.network.channel_id"]
        s.pop("links", None)
    return doc


def test_the_hub_links_every_envelope_to_its_channel(mast, db, tmp_path):
    """The real export is tied twice: channel ids and ``in_channel`` links.  Links alone
    (channel ids taken off) still make one run."""
    doc = json.loads((FIX / "workflow" / "telemetry.otlp.json").read_text())
    assert sum(bool(s.get("links")) for s in _spans(doc)) >= 3
    for s in _spans(doc):
        s["attributes"] = [a for a in s.get("attributes", []) if a["key"] != "ag2.network.channel_id"]
    _assert_one_run(mast, db, _write(tmp_path, doc))


def _roots(doc):
    """(envelope root span, invoke_agent span under it) per agent turn, in time order."""
    spans = _spans(doc)
    turns = []
    for s in sorted(spans, key=lambda x: int(x["startTimeUnixNano"])):
        if s["name"].startswith("invoke_agent "):
            root = next(r for r in spans if r["spanId"] == s.get("parentSpanId"))
            turns.append((root, s))
    assert len(turns) == 3
    return turns


def _write(tmp_path, doc):
    p = tmp_path / "export.otlp.json"
    p.write_text(json.dumps(doc))
    return p


def _assert_one_run(mast, db, p):
    ingest(mast, p)
    task, *_ = one_trace(db)
    assert task == FACTS["workflow"]["task"]
    assert {r[0] for r in steps(db) if r[0]} == set(AGENTS)


def test_without_ids_the_turns_stay_apart(mast, db, tmp_path):
    ingest(mast, _write(tmp_path, _unlinked()))
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 3


def test_stitched_by_a_parent_span_in_another_trace(mast, db, tmp_path):
    doc = _unlinked()
    turns = _roots(doc)
    for (root, _), (_, prev_agent) in zip(turns[1:], turns):
        root["parentSpanId"] = prev_agent["spanId"]  # a traceparent carried to the next turn
    _assert_one_run(mast, db, _write(tmp_path, doc))


def test_stitched_by_span_links(mast, db, tmp_path):
    doc = _unlinked()
    turns = _roots(doc)
    for (root, _), (prev_root, _) in zip(turns[1:], turns):
        root["links"] = [{"traceId": prev_root["traceId"], "spanId": prev_root["spanId"]}]
    _assert_one_run(mast, db, _write(tmp_path, doc))


def test_stitched_by_a_conversation_id(mast, db, tmp_path):
    doc = _unlinked()
    for _, agent in _roots(doc):
        agent["attributes"].append({"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-1"}})
    _assert_one_run(mast, db, _write(tmp_path, doc))


def test_different_conversation_ids_stay_apart(mast, db, tmp_path):
    doc = _unlinked()
    for i, (_, agent) in enumerate(_roots(doc)):
        agent["attributes"].append({"key": "gen_ai.conversation.id", "value": {"stringValue": f"conv-{i}"}})
    ingest(mast, _write(tmp_path, doc))
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 3


def test_two_channels_in_one_export_are_two_runs(mast, db, tmp_path):
    docs = [json.loads((FIX / r / "telemetry.otlp.json").read_text()) for r in RUNS]
    merged = copy.deepcopy(docs[0])
    merged["resourceSpans"] += docs[1]["resourceSpans"]
    ingest(mast, _write(tmp_path, merged))
    with Store(db, read_only=True) as st:
        got = st.fetchall("SELECT task FROM traces ORDER BY started_at")
    assert [t for (t,) in got] == [FACTS[r]["task"] for r in RUNS]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", [rel(wal("failing")), rel(history("failing", "researcher")),
                                  "failing/hub/audit/audit.jsonl"])
def test_truncated_is_refused_whole(name, mast, db, tmp_path):
    assert_truncated_refused(FIX / name, mast, db, tmp_path)


def _copy_lines(tmp_path, src, name, edit):
    lines = src.read_text().splitlines()
    out = edit([json.loads(x) for x in lines])
    d = tmp_path / name
    d.parent.mkdir(parents=True, exist_ok=True)
    d.write_text("".join(json.dumps(x) + "\n" for x in out))
    return d


def test_wal_envelope_missing_a_field_names_the_line(mast, db, tmp_path):
    def edit(recs):
        del recs[3]["sender_id"]
        return recs
    p = _copy_lines(tmp_path, wal("workflow"), "wal.jsonl", edit)
    refused(mast, db, p, "line 4", "sender_id")


def test_history_event_missing_data_names_the_line(mast, db, tmp_path):
    def edit(recs):
        recs[2]["data"] = None
        return recs
    p = _copy_lines(tmp_path, history("workflow", "researcher"), "log/s.jsonl", edit)
    refused(mast, db, p, "line 3", "data")


def test_tool_result_without_its_call_id_is_refused(mast, db, tmp_path):
    def edit(recs):
        for r in recs:
            if r["type"].endswith(".ToolResultEvent"):
                del r["data"]["parent_id"]
        return recs
    p = _copy_lines(tmp_path, history("workflow", "researcher"), "log/s.jsonl", edit)
    refused(mast, db, p, "parent_id")


def test_audit_record_missing_kind_names_the_line(mast, db, tmp_path):
    def edit(recs):
        del recs[4]["kind"]
        return recs
    p = _copy_lines(tmp_path, FIX / "workflow" / "hub" / "audit" / "audit.jsonl", "audit.jsonl", edit)
    refused(mast, db, p, "line 5", "kind")


def test_newer_event_types_are_kept_as_events(mast, db, tmp_path):
    """No version field: a class or envelope type a newer ag2 adds is an ``event`` naming it."""
    def edit_hist(recs):
        return recs[:1] + [{"type": "ag2.events.future.PlanRevised", "data": {"created_at": 1796131924.0,
                                                                            "content": "new plan"}}] + recs[1:]
    p = _copy_lines(tmp_path, history("workflow", "researcher"), "a/log/s.jsonl", edit_hist)
    ingest(mast, p)
    with Store(db, read_only=True) as st:
        ev = st.fetchall("SELECT content, attributes->>'event' FROM steps WHERE kind = 'event'")
    assert ("new plan", "ag2.events.future.PlanRevised") in ev

    def edit_wal(recs):
        r = dict(recs[-2], event_type="ag2.vote.cast", event_data={"choice": "b"}, envelope_id="e-new")
        return recs[:-1] + [r] + recs[-1:]
    p = _copy_lines(tmp_path, wal("workflow"), "b/wal.jsonl", edit_wal)
    ingest(mast, p)
    with Store(db, read_only=True) as st:
        kinds = st.fetchall("SELECT kind FROM steps WHERE attributes->>'event_type' = 'ag2.vote.cast'")
    assert kinds == [("event",)]


def test_lookalikes_are_not_taken(tmp_path):
    classic = next((ROOT / "tests" / "fixtures" / "frameworks" / "ag2").rglob("events.jsonl"))
    assert detect(classic).name == "ag2-events"  # AG2 Classic's .run() events stay AG2 Classic's
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"type": "ag2.events.types.ModelResponse", "payload": {}}) + "\n")
    from mast.ingest.formats.ag2x_events import AG2xEventsImporter
    assert not AG2xEventsImporter().detect(p, p.read_bytes())
    assert AG2xEventsImporter().decline(p, p.read_bytes())[0] > 0
    q = tmp_path / "y.jsonl"
    q.write_text(json.dumps({"channel_id": "c", "envelope_id": "e", "event_type": "t", "event_data": {}}) + "\n")
    from mast.ingest.formats.ag2x_hub import AG2xAuditImporter, AG2xWalImporter
    assert not AG2xWalImporter().detect(q, q.read_bytes())
    assert "sender_id" in AG2xWalImporter().decline(q, q.read_bytes())[1]
    r = tmp_path / "z.jsonl"
    r.write_text(json.dumps({"at": "2026-01-01T00:00:00Z", "kind": "login"}) + "\n")
    assert not AG2xAuditImporter().detect(r, r.read_bytes())


def test_a_wal_with_another_channels_envelope_is_refused(mast, db, tmp_path):
    def edit(recs):
        recs[5]["channel_id"] = "someone-else"
        return recs
    p = _copy_lines(tmp_path, wal("workflow"), "wal.jsonl", edit)
    refused(mast, db, p, "line 6", "someone-else")
    assert no_traces(db)


def test_a_whole_hub_folder_is_read_and_its_state_files_skipped(mast, db):
    """Pointing mast at the hub's store: the WAL and the audit log are traces, passports,
    channel metadata and the rest are companions (skipped with a note, not errors)."""
    out = ingest(mast, FIX / "failing" / "hub")
    assert out["formats"] == {"ag2x-wal": 1, "ag2x-audit": 1}
    assert not out["errors"]
    with Store(db, read_only=True) as st:
        # one channel, one run: the WAL's trace, the audit log its alternate source
        assert st.fetchall("SELECT source_format, outcome FROM traces") == [("ag2x-wal", "failure")]
        assert sorted(st.fetchall("SELECT format, chosen, kind FROM run_sources")) == \
            [("ag2x-audit", False, "ag2x-channel"), ("ag2x-wal", True, "ag2x-channel")]
