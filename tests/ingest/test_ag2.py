"""AG2 classic importers (``ag2-runtime-db``, ``ag2-runtime-log``, ``ag2-chat``, ``ag2-events``).

The fixtures under tests/fixtures/frameworks/ag2/ were written by
tests/fixtures/frameworks/generators/gen_ag2.py running AG2 Classic (``autogen`` 0.14.1)
offline; golden.json holds what the framework's ChatResult / events and the stub's
served token counts say each normalised trace must contain.  Each test ingests through
the CLI into a real DuckDB file and reads the store back with SQL.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import no_traces, refused
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "ag2"
GOLDEN = json.loads((FIX / "golden.json").read_text())["artefacts"]
SAMPLES = ROOT.parent / "shared" / "reference" / "frameworks" / "autogen" / "samples"
IMPORTER = {"runtime_logging.db": "ag2-runtime-db", "runtime.log": "ag2-runtime-log",
            "chat_result.json": "ag2-chat", "groupchat_messages.json": "ag2-chat", "events.jsonl": "ag2-events",
            "otel.otlp.json": "otel"}


def summarise(db: Path) -> dict:
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT trace_id, tokens_in, tokens_out, metadata FROM traces")
        assert len(traces) == 1, f"expected one trace, found {len(traces)}"
        tid, tin, tout, meta = traces[0]
        rows = st.fetchall("SELECT step, agent, kind, span_id, parent_span_id, tool_name, target_agent, content, "
                           "started_at FROM steps WHERE trace_id = ? ORDER BY step", [tid])
        # spans link a call to its result by span id and keep AG2's call id as an attribute
        call_ids = dict(st.fetchall("SELECT step, attributes->>'tool_call_id' FROM steps WHERE trace_id = ? "
                                    "AND kind = 'tool_call'", [tid]))
    results = {r[4]: r for r in rows if r[2] == "tool_result"}
    pairs = []
    for r in rows:
        if r[2] == "tool_call":
            assert r[3] in results, f"tool call {r[3]} has no linked result"
            assert results[r[3]][5] == r[5], "a result names another tool than its call"
            pairs.append([call_ids.get(r[0]) or r[3], r[5]])
    with Store(db, read_only=True) as st:
        statuses = [r[0] for r in st.fetchall("SELECT coalesce(status, 'ok') FROM steps WHERE trace_id = ? "
                                              "AND kind = 'tool_result' ORDER BY step", [tid])]
    return {"agents": sorted({r[1] for r in rows if r[1]}), "kinds": dict(Counter(r[2] for r in rows)),
            "tool_status": statuses,
            "tool_pairs": sorted(pairs), "handoffs": [[r[1], r[6]] for r in rows if r[2] == "handoff"],
            "tokens": None if tin is None and tout is None else [tin, tout],
            "metadata": json.loads(meta) if isinstance(meta, str) else meta, "rows": rows}


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_fixture_matches_golden(rel, mast, db):
    path = FIX / rel
    want = GOLDEN[rel]
    out = json.loads(mast("ingest", "--json", path).stdout)
    assert out["formats"] == {IMPORTER[path.name]: 1}, "auto-detection picked another importer"
    got = summarise(db)
    assert got["agents"] == want["agents"]
    if "kinds" in want:  # spans carry no conversation: their summary has no step counts
        assert got["kinds"] == want["kinds"]
    assert got["tool_pairs"] == want["tool_pairs"]
    assert got["handoffs"] == want["handoffs"]
    assert got["tokens"] == want.get("tokens")
    if "tool_status" in want:  # each execution as the tool itself ended: returned or raised
        assert got["tool_status"] == want["tool_status"]
    if "chat_id" in want:
        assert got["metadata"]["chat_id"] == want["chat_id"]
    if want.get("kinds", {}).get("termination"):
        assert [r[2] for r in got["rows"]].count("termination") == want["kinds"]["termination"]


def test_chat_id_128_bit_survives_exactly(mast, db):
    path = FIX / "groupchat" / "chat_result.json"
    digits = re.search(r'"chat_id":\s*(\d+)', path.read_text()).group(1)
    assert int(digits) > 2 ** 64  # really wider than int64 / float64 precision
    mast("ingest", path)
    with Store(db, read_only=True) as st:
        stored = st.fetchall("SELECT metadata->>'chat_id' FROM traces")[0][0]
    assert stored == digits


def test_runtime_db_timestamps_are_utc_and_rebroadcasts_dropped(mast, db):
    path = FIX / "groupchat" / "runtime_logging.db"
    mast("ingest", path)
    con = sqlite3.connect(path)
    first_event = con.execute("SELECT timestamp FROM events ORDER BY id LIMIT 1").fetchone()[0]
    received = con.execute("SELECT count(*) FROM events WHERE event_name = 'received_message'").fetchone()[0]
    llm_cost = con.execute("SELECT sum(cost) FROM chat_completions").fetchone()[0]
    con.close()
    with Store(db, read_only=True) as st:
        started, cost = st.fetchall("SELECT started_at, cost_usd FROM traces")[0]
        msgs = st.fetchall("SELECT count(*) FROM steps WHERE kind IN ('message', 'tool_call', 'tool_result')")[0][0]
        sel = st.fetchall("SELECT agent, target_agent FROM steps WHERE kind = 'event' ORDER BY step")
    # AG2 writes naive UTC; the store keeps naive UTC: the same wall time.
    assert started.isoformat(sep=" ") == first_event
    assert cost == pytest.approx(llm_cost)
    assert msgs < received / 2  # each message was received by the manager and every participant
    assert [t for _, t in sel] == ["weather_agent", "user_proxy", "weather_agent", "critic"]
    assert {a for a, _ in sel} == {"chat_manager"}


def test_file_log_matches_sqlite_log_of_the_same_conversation(tmp_path):
    from mast.ingest import get

    [a] = list(get("ag2-runtime-db").read(FIX / "pattern" / "runtime_logging.db"))
    [b] = list(get("ag2-runtime-log").read(FIX / "pattern" / "runtime.log"))
    shape = lambda t: [(s.agent, s.kind.value, s.tool_name, s.target_agent, s.tokens_in, s.tokens_out)  # noqa: E731
                       for s in t.steps]
    assert shape(a) == shape(b)
    assert b.metadata["skipped_lines"] > 0  # "[file_logger] Failed to log ..." lines


def test_chat_result_cost_matches_the_llm_calls(mast, db):
    # The two-agent ChatResult sums the assistant's client: the same calls the sqlite log holds.
    mast("ingest", FIX / "twoagent" / "chat_result.json")
    usage = summarise(db)["metadata"]["usage"]
    assert [usage["prompt_tokens"], usage["completion_tokens"]] == GOLDEN["twoagent/runtime_logging.db"]["tokens"]


def test_handoff_target_from_events(mast, db):
    mast("ingest", FIX / "pattern" / "events.jsonl")
    rows = summarise(db)["rows"]
    h = [r for r in rows if r[2] == "handoff"]
    assert [(r[1], r[6], r[5]) for r in h] == [("triage", "refunds", "transfer_to_refunds_1")]
    terms = [r[7] for r in rows if r[2] == "termination"]
    raw = [json.loads(ln) for ln in (FIX / "pattern" / "events.jsonl").read_text().splitlines()]
    assert terms == [e["content"]["termination_reason"] for e in raw if e["type"] == "termination"]


def test_secrets_in_artefacts_never_reach_the_store(mast, db):
    files = sorted((FIX / "twoagent").iterdir())
    key = "sk-mastfixture-ag2-key-1234567890abcdef"
    bearer = "mastfixturebearertoken0123456789"
    # The artefacts really hold them (the task pasted them into the chat).
    assert all(key.encode() in f.read_bytes() for f in files)
    for f in files:
        mast("ingest", f)
    with Store(db, read_only=True) as st:
        dump = "\n".join(str(r) for t in ("traces", "steps") for r in st.fetchall(f"SELECT * FROM {t}"))
        n = st.fetchall("SELECT count(*) FROM ingested_files")[0][0]
    assert n == len(files)  # every file read (some are one run: alternates of one trace)
    assert key not in dump and bearer not in dump
    assert "sk-mastfixture" not in dump
    assert "[REDACTED]" in dump


# ------------------------------------------------------------------------- bad input
def _db_copy(tmp_path: Path, sql: str | None = None) -> Path:
    p = tmp_path / "runtime_logging.db"
    shutil.copy(FIX / "groupchat" / "runtime_logging.db", p)
    if sql:
        con = sqlite3.connect(p)
        con.executescript(sql)
        con.commit()
        con.close()
    return p


def test_db_truncated(mast, db, tmp_path):
    src = (FIX / "groupchat" / "runtime_logging.db").read_bytes()
    p = tmp_path / "runtime_logging.db"
    p.write_bytes(src[: len(src) // 3])
    refused(mast, db, p, "truncated", fmt="ag2-runtime-db")


def test_db_missing_table(mast, db, tmp_path):
    refused(mast, db, _db_copy(tmp_path, "DROP TABLE events;"), "missing table(s) events")


def test_db_missing_field(mast, db, tmp_path):
    p = _db_copy(tmp_path, "UPDATE events SET json_state = '{\"sender\": \"critic\"}' WHERE id = 35;")
    refused(mast, db, p, "events row 35", "lacks message or sender")


def test_db_newer_version(mast, db, tmp_path):
    refused(mast, db, _db_copy(tmp_path, "UPDATE version SET version_number = 2;"), "record version",
          "version 2 is newer")


def test_db_lookalike(mast, db, tmp_path):
    p = tmp_path / "app.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE events (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    refused(mast, db, p, "no importer recognises")


def test_file_log_truncated(mast, db, tmp_path):
    lines = (FIX / "pattern" / "runtime.log").read_text().splitlines()
    i = len(lines) - 1
    p = tmp_path / "runtime.log"
    p.write_text("\n".join(lines[:-1] + [lines[-1][:60]]))
    refused(mast, db, p, f"line {i + 1}", "truncated")


def test_file_log_missing_field(mast, db, tmp_path):
    lines = (FIX / "twoagent" / "runtime.log").read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if '"event_name"' in ln)
    rec = json.loads(lines[i])
    del rec["json_state"]
    lines[i] = json.dumps(rec)
    p = tmp_path / "runtime.log"
    p.write_text("\n".join(lines) + "\n")
    refused(mast, db, p, f"line {i + 1}", "json_state")


def test_file_log_newer_record_kind(mast, db, tmp_path):
    # The file log has no version; a record of a kind this mast does not know (as a newer
    # AG2 might add) is an error, not silently dropped.
    lines = (FIX / "twoagent" / "runtime.log").read_text().splitlines()
    lines.insert(3, json.dumps({"span_id": 1, "session_id": "x", "trace_kind": "new"}))
    p = tmp_path / "runtime.log"
    p.write_text("\n".join(lines) + "\n")
    refused(mast, db, p, "line 4", "not an AG2 runtime_logging record")


def test_chat_result_truncated(mast, db, tmp_path):
    src = (FIX / "pattern" / "chat_result.json").read_bytes()
    p = tmp_path / "chat_result.json"
    p.write_bytes(src[:-40])
    refused(mast, db, p, "invalid JSON", fmt="ag2-chat")


def test_chat_result_missing_history(mast, db, tmp_path):
    data = json.loads((FIX / "pattern" / "chat_result.json").read_text())
    del data["chat_history"]
    data["history"] = []
    p = tmp_path / "chat_result.json"
    p.write_text(json.dumps(data))
    refused(mast, db, p, "chat_history", fmt="ag2-chat")


def test_chat_result_rounded_chat_id(mast, db, tmp_path):
    # What a float64 round trip does to a 128-bit id: refuse it rather than store a wrong id.
    text = (FIX / "pattern" / "chat_result.json").read_text()
    p = tmp_path / "chat_result.json"
    p.write_text(re.sub(r'"chat_id":\s*\d+', '"chat_id": 1.5782096765702111e+38', text))
    refused(mast, db, p, "record 0", "chat_id is a float")


def test_chat_result_lookalike(mast, db, tmp_path):
    data = json.loads((FIX / "pattern" / "chat_result.json").read_text())
    data["chat_history"][2] = {"role": "tool", "tool_call_id": "x"}  # no content at all
    p = tmp_path / "chat_result.json"
    p.write_text(json.dumps(data))
    refused(mast, db, p, "0, message 2")


def test_events_truncated_stores_nothing(mast, db, tmp_path):
    # A complete run, then a second one cut mid-record: the first is not stored either.
    a = (FIX / "twoagent" / "events.jsonl").read_text().splitlines()
    b = (FIX / "groupchat" / "events.jsonl").read_text().splitlines()
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(a + b[:-1] + [b[-1][:50]]) + "\n")
    refused(mast, db, p, f"line {len(a) + len(b)}", "truncated")


def test_events_missing_field(mast, db, tmp_path):
    lines = (FIX / "twoagent" / "events.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    del rec["content"]["sender"]
    lines[0] = json.dumps(rec)
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(lines) + "\n")
    refused(mast, db, p, "line 1", "lacks content or sender", fmt="ag2-events")


def test_events_newer_type_is_kept(mast, db, tmp_path):
    lines = (FIX / "twoagent" / "events.jsonl").read_text().splitlines()
    lines.insert(1, json.dumps({"type": "guardrail_check", "content": {"uuid": "u1", "sender": "assistant",
                                                                       "verdict": "pass"}}))
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(lines) + "\n")
    mast("ingest", p)
    got = summarise(db)
    assert got["metadata"]["other_event_types"] == ["guardrail_check"]
    assert got["rows"][1][2] == "event"


def test_events_lookalike(mast, db, tmp_path):
    lines = (FIX / "twoagent" / "events.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"level": "info", "msg": "hello"})
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(lines) + "\n")
    refused(mast, db, p, "line 3", "not an AG2 event")


# ------------------------------------------------------------ the shared reference samples
AG2_ARTEFACTS = {"runtime_logging.db": "ag2-runtime-db", "runtime.log": "ag2-runtime-log",
                 "chat_result.json": "ag2-chat", "run_response.json": "ag2-chat", "events.jsonl": "ag2-events"}


def test_every_shared_ag2_sample_is_detected_and_read():
    if not SAMPLES.exists():
        pytest.skip(f"{SAMPLES} not present (../shared is expected beside the clone)")
    from mast.ingest import detect

    seen = 0
    for f in sorted((SAMPLES / "ag2").glob("**/*")):
        want = AG2_ARTEFACTS.get(f.name)
        if not want or not f.is_file():
            continue
        imp = detect(f)
        assert imp.name == want, f"{f}: detected as {imp.name}"
        traces = list(imp.read(f))
        assert traces and all(t.steps for t in traces), f"{f}: no steps"
        seen += 1
    assert seen >= 40  # 2 model modes x 3 scenarios, 7 artefacts each


def test_sample_copies_in_traces_folder_are_readable():
    from mast.ingest import detect

    files = [f for f in (ROOT / "traces" / "ag2").iterdir() if f.suffix in (".db", ".json", ".jsonl", ".log")]
    assert files
    for f in files:
        assert detect(f).name == IMPORTER[f.name.split("-", 1)[1]]
        assert all(t.steps for t in detect(f).read(f))


def test_two_sessions_in_one_db_are_two_traces(tmp_path):
    # runtime_logging appends every session to the same file; events carry no session id
    # (they are joined through the agents table).
    from mast.ingest import get

    p = _db_copy(tmp_path)
    con = sqlite3.connect(p)
    con.execute("ATTACH ? AS other", [str(FIX / "twoagent" / "runtime_logging.db")])
    con.executescript("""
        INSERT INTO agents (agent_id, wrapper_id, session_id, name, class, init_args, timestamp)
            SELECT agent_id, wrapper_id, session_id, name, class, init_args, timestamp FROM other.agents;
        INSERT INTO events (event_name, source_id, source_name, agent_module, agent_class_name, json_state, timestamp)
            SELECT event_name, source_id, source_name, agent_module, agent_class_name, json_state, timestamp
            FROM other.events ORDER BY id;
        INSERT INTO chat_completions (invocation_id, client_id, wrapper_id, session_id, source_name, request,
                                      response, is_cached, cost, start_time, end_time)
            SELECT invocation_id, client_id, wrapper_id, session_id, source_name, request, response, is_cached,
                   cost, start_time, end_time FROM other.chat_completions ORDER BY id;
        INSERT INTO function_calls SELECT * FROM other.function_calls;
    """)
    con.commit()
    con.close()
    traces = list(get("ag2-runtime-db").read(p))
    assert len(traces) == 2
    for t, name in zip(traces, ("groupchat", "twoagent")):
        want = GOLDEN[f"{name}/runtime_logging.db"]
        kinds = dict(Counter(s.kind.value for s in t.steps))
        assert kinds == want["kinds"], name
        assert [sum(s.tokens_in or 0 for s in t.steps), sum(s.tokens_out or 0 for s in t.steps)] == want["tokens"]


def test_two_sessions_in_one_file_log(tmp_path):
    from mast.ingest import get

    p = tmp_path / "runtime.log"
    p.write_bytes((FIX / "twoagent" / "runtime.log").read_bytes() + (FIX / "pattern" / "runtime.log").read_bytes())
    traces = list(get("ag2-runtime-log").read(p))
    assert [dict(Counter(s.kind.value for s in t.steps)) for t in traces] == [
        GOLDEN["twoagent/runtime.log"]["kinds"], GOLDEN["pattern/runtime.log"]["kinds"]]
    assert traces[0].metadata["session_id"] != traces[1].metadata["session_id"]
