"""CrewAI importers (``crewai-events``, ``crewai-checkpoint``, ``crewai-output``, ``crewai-log``).

Fixtures: tests/fixtures/frameworks/crewai/, written by generators/gen_crewai.py running
crewai 1.15.30 offline against a loopback OpenAI stand-in.  Each test ingests through the
CLI into a real DuckDB file and reads the store back with SQL (tests/ingest/fw_golden.py);
``facts.json`` is what the generator saw the framework do (usage the stand-in served,
tools that ran), so token totals and tool pairs are checked against the framework side,
not against mast's own output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import artefact_keys, assert_truncated_refused, check_framework, ingest, summarise
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "crewai"
FACTS = json.loads((FIX / "facts.json").read_text())
SAMPLES = ROOT.parent / "shared" / "reference" / "frameworks" / "crewai-langgraph" / "samples" / "crewai"


def expected_format(name: str) -> str:
    if name.startswith("event_bus"):
        return "crewai-events"
    if name == "checkpoint.json" or "_p-" in name:
        return "crewai-checkpoint"
    if name.startswith("crew_output") or name.startswith("task_callback"):
        return "crewai-output"
    if name.startswith("output_log"):
        return "crewai-log"
    if name.endswith(".otlp.json"):
        return "otel"
    raise AssertionError(f"unexpected fixture {name}")


def steps(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT agent, kind, tool_name, target_agent, status, tokens_in, tokens_out, content, "
                           "span_id, parent_span_id, started_at FROM steps ORDER BY trace_id, step")


@pytest.mark.parametrize("rel", artefact_keys(FIX))
def test_fixture_detected_and_matches_what_crewai_recorded(rel, mast, db):
    path = FIX / rel
    out = ingest(mast, path)
    fmt = expected_format(path.name)
    assert out["formats"] == {fmt: 1}, "auto-detection picked another importer"
    # golden.json: computed by gen_crewai.py from CrewAI's own objects in the run
    check_framework(FIX, rel, db)  # the facts this form holds: fw_golden.CARRIES


@pytest.mark.parametrize("rel", ["research/event_bus.jsonl",
                                 "research/checkpoint.json", "research/crewai_native.otlp.json",
                                 "research/openinference_wrappers.otlp.json", "research/openinference_events.otlp.json",
                                 "failing/event_bus.jsonl", "failing/crewai_native.otlp.json"])
def test_tokens_tools_and_agents_match_what_the_framework_did(rel, mast, db):
    facts = FACTS["scenarios"][rel.split("/")[0]]
    ingest(mast, FIX / rel)
    [got] = summarise(db)
    # every LLM call the stand-in answered, counted once (CrewOutput.token_usage double counts)
    assert got["tokens"] == [facts["tokens_in"], facts["tokens_out"]]
    assert got["agents"] == facts["agents"]
    ran = [t["tool"] for t in facts["tools"]]
    assert sorted({p[0] for p in got["tool_pairs"]}) == sorted(set(ran))
    assert got["unpaired_tool_calls"] == 0
    assert ["Researcher", "Writer"] in got["handoffs"]


def test_failed_kickoff_is_a_failure_with_one_error(mast, db):
    ingest(mast, FIX / "failing" / "event_bus.jsonl")
    [got] = summarise(db)
    assert got["outcome"] == "failure"
    assert got["kinds"]["error"] == 1, "one failure, reported by every scope it unwinds, is one error step"
    assert got["termination"] == ["Writer", "failed"]
    rows = steps(db)
    err = next(r for r in rows if r[1] == "error")
    assert err[0] == "Writer" and "400" in err[7]
    tool_errors = [r for r in rows if r[1] == "tool_result" and r[4] == "error"]
    assert len(tool_errors) == 1 and "unreachable" in tool_errors[0][7]


def test_events_are_ordered_by_emission_not_arrival(mast, db, tmp_path):
    src = (FIX / "research" / "event_bus.jsonl").read_text().splitlines()
    shuffled = src[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != src
    p = tmp_path / "shuffled.jsonl"
    p.write_text("\n".join(shuffled) + "\n")
    ingest(mast, p)
    a = steps(db)
    other = tmp_path / "other.duckdb"  # the file as written, into a second store
    from click.testing import CliRunner

    from mast.cli import cli
    res = CliRunner().invoke(cli, ["-d", str(other), "ingest", str(FIX / "research" / "event_bus.jsonl")])
    assert res.exit_code == 0, res.output
    with Store(other, read_only=True) as st:
        b = st.fetchall("SELECT agent, kind, tool_name, target_agent, status, tokens_in, tokens_out, content, "
                        "span_id, parent_span_id, started_at FROM steps ORDER BY trace_id, step")
    assert a == b
    times = [r[10] for r in a if r[10] is not None]
    assert times == sorted(times)
    kinds = [r[1] for r in a]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("handoff") < kinds.index("termination")


def test_tool_call_linked_to_result_and_llm_tool_call_id(mast, db):
    ingest(mast, FIX / "research" / "event_bus.jsonl")
    rows = steps(db)
    call = next(r for r in rows if r[1] == "tool_call")
    result = next(r for r in rows if r[1] == "tool_result")
    assert call[2] == result[2] == "web_search"
    assert call[8] == result[9]
    assert call[8].startswith("call_researcher_"), "the id the LLM gave the call, as the stand-in served it"


def test_api_key_in_artefacts_never_reaches_the_store(mast, db):
    key = FACTS["api_key_used"]
    files = [p for p in FIX.rglob("*") if p.is_file() and p.name not in ("golden.json", "facts.json")]
    assert any(key in p.read_text() for p in files), "the fixtures should carry the key, as CrewAI writes it"
    for p in files:
        ingest(mast, p)
    with Store(db, read_only=True) as st:
        n = st.fetchall("SELECT count(*) FROM steps WHERE contains(coalesce(content, '') || coalesce(tool_args, '') "
                        "|| coalesce(CAST(attributes AS VARCHAR), ''), ?)", [key[:20]])[0][0]
        m = st.fetchall("SELECT count(*) FROM traces WHERE contains(coalesce(task, '') || "
                        "coalesce(CAST(metadata AS VARCHAR), ''), ?)", [key[:20]])[0][0]
    assert n == 0 and m == 0


def test_api_key_and_authorization_inside_event_text_are_redacted(mast, db, tmp_path):
    lines = (FIX / "research" / "event_bus.jsonl").read_text().splitlines()
    out = []
    for ln in lines:
        e = json.loads(ln)
        if e["type"] == "tool_usage_finished":
            e["output"] = "called api with api_key=sk-live-abcdefghijklmnop1234 and Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"
        out.append(json.dumps(e))
    p = tmp_path / "leaky.jsonl"
    p.write_text("\n".join(out) + "\n")
    ingest(mast, p)
    text = " ".join(r[7] or "" for r in steps(db))
    assert "called api with" in text
    assert "abcdefghijklmnop1234" not in text and "abcdefghijklmnopqrstuvwxyz012345" not in text


# -- bad input ------------------------------------------------------------------------------

def _no_traces(db: Path) -> None:
    if db.exists():
        with Store(db, read_only=True) as st:
            assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 0
            assert st.fetchall("SELECT count(*) FROM steps")[0][0] == 0


def test_truncated_event_log_names_file_and_line_and_stores_nothing(mast, db, tmp_path):
    raw = (FIX / "research" / "event_bus.jsonl").read_text()
    p = tmp_path / "cut.jsonl"
    p.write_text(raw[: len(raw) // 2])
    res = mast("ingest", p, expect=1)
    n = raw[: len(raw) // 2].count("\n") + 1
    assert str(p) in res.stderr and f"line {n}" in res.stderr and "truncated" in res.stderr
    _no_traces(db)


def test_event_missing_required_field(mast, db, tmp_path):
    lines = (FIX / "research" / "event_bus.jsonl").read_text().splitlines()
    bad = json.loads(lines[5])
    del bad["event_id"]
    lines[5] = json.dumps(bad)
    p = tmp_path / "missing.jsonl"
    p.write_text("\n".join(lines) + "\n")
    res = mast("ingest", "--format", "crewai-events", p, expect=1)
    assert "line 6" in res.stderr and "event_id" in res.stderr
    _no_traces(db)


def test_checkpoint_from_a_newer_crewai_is_refused(mast, db, tmp_path):
    d = json.loads((FIX / "research" / "checkpoint.json").read_text())
    d["crewai_version"] = "2.0.1"
    p = tmp_path / "cp.json"
    p.write_text(json.dumps(d))
    res = mast("ingest", p, expect=1)
    assert str(p) in res.stderr and "2.0.1" in res.stderr and "newer" in res.stderr
    _no_traces(db)


def test_checkpoint_without_event_record(mast, db, tmp_path):
    d = json.loads((FIX / "research" / "checkpoint.json").read_text())
    d["event_record"] = {"edges": []}
    p = tmp_path / "cp.json"
    p.write_text(json.dumps(d))
    res = mast("ingest", p, expect=1)
    assert "event_record.nodes" in res.stderr
    _no_traces(db)


def test_lookalike_crew_output_and_output_log(mast, db, tmp_path):
    p = tmp_path / "crew_output.json"
    p.write_text(json.dumps({"raw": "x", "tasks_output": [{"description": "no agent here", "raw": "y"}],
                             "token_usage": {}}))
    res = mast("ingest", p, expect=1)
    assert "tasks_output[0]" in res.stderr and "agent" in res.stderr
    log = tmp_path / "output_log.txt"
    log.write_text('2026-11-21 21:17:04: task_name="a", task="t", agent="A", status="started"\n'
                   "this line is not part of the log format\n")
    res = mast("ingest", log, expect=1)
    assert str(log) in res.stderr and "line 2" in res.stderr
    _no_traces(db)


def test_a_bad_line_after_good_runs_stores_nothing_from_the_file(mast, db, tmp_path):
    good = (FIX / "research" / "event_bus.jsonl").read_text()
    p = tmp_path / "two_runs.jsonl"
    p.write_text(good + (FIX / "failing" / "event_bus.jsonl").read_text() + '{"type": 3, "event_id": "x"}\n')
    res = mast("ingest", p, expect=1)
    assert "record" in res.stderr
    _no_traces(db)


def test_two_runs_in_one_log_are_two_traces(mast, db, tmp_path):
    p = tmp_path / "two_runs.jsonl"
    p.write_text((FIX / "research" / "event_bus.jsonl").read_text() + (FIX / "failing" / "event_bus.jsonl").read_text())
    ingest(mast, p)
    got = summarise(db)
    assert sorted(g["system"] for g in got) == ["tracing_failing", "tracing_research"]
    assert sorted(g["outcome"] for g in got) == ["failure", "unknown"]


# -- the shared reference samples ---------------------------------------------------------------

SUPPORTED = {"event_bus_events.jsonl": "crewai-events", "event_bus_events.to_json.jsonl": "crewai-events",
             "crew_output.model_dump.json": "crewai-output", "crew_output.summary.json": "crewai-output",
             "task_callback.jsonl": "crewai-output",
             "output_log.txt": "crewai-log", "output_log.json": "crewai-log", "crewai_native_otel.otlp.json": "otel"}


def test_every_supported_reference_sample_is_detected_and_yields_steps():
    if not SAMPLES.exists():
        pytest.skip(f"{SAMPLES} not present (../shared is expected beside the clone)")
    from mast import ingest as registry
    seen = 0
    for p in sorted(SAMPLES.rglob("*")):
        want = SUPPORTED.get(p.name) or ("crewai-checkpoint" if p.parent.name == "main" and p.suffix == ".json" else None)
        if not p.is_file() or want is None:
            continue
        imp = registry.detect(p)
        assert imp.name == want, f"{p}: detected as {imp.name}"
        traces = list(imp.read(p))
        assert traces and all(t.steps for t in traces), p
        seen += 1
    assert seen >= 20


def test_system_name_from_the_crew_else_from_the_command_line(mast, db, tmp_path):
    ingest(mast, FIX / "research" / "event_bus.jsonl")
    text = (FIX / "research" / "event_bus.jsonl").read_text().replace('"crew_name":"tracing_research"', '"crew_name":"crew"')
    assert '"crew_name":"crew"' in text
    p = tmp_path / "unnamed.jsonl"
    # another run: another kickoff id (with the same ids it would be the same run, one trace)
    kickoff = next(json.loads(ln)["event_id"] for ln in text.splitlines()
                   if json.loads(ln)["type"] == "crew_kickoff_started")
    p.write_text(text.replace("LangGraph and CrewAI", "another topic")
                 .replace(kickoff, "6ae348a4-1965-4b8f-b837-000000000001"))
    mast("ingest", "--default-system", "my-crew", p)
    with Store(db, read_only=True) as st:
        got = sorted(r[0] for r in st.fetchall("SELECT system FROM traces"))
    assert got == ["my-crew", "tracing_research"]  # "crew" is CrewAI's default name: --system decides


@pytest.mark.parametrize("rel", artefact_keys(FIX))
def test_truncated_fixture_is_refused_whole(rel, mast, db, tmp_path):
    assert_truncated_refused(FIX / rel, mast, db, tmp_path)


def test_first_event_longer_than_the_detection_head(mast, db, tmp_path):
    from mast.ingest import HEAD_BYTES
    lines = (FIX / "research" / "event_bus.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["agent"] = {"role": "Researcher", "backstory": "x" * (HEAD_BYTES + 10)}  # after the base fields
    p = tmp_path / "big_first.jsonl"
    p.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    assert ingest(mast, p)["formats"] == {"crewai-events": 1}


def test_events_naming_a_newer_crewai_are_refused(mast, db, tmp_path):
    lines = (FIX / "research" / "event_bus.jsonl").read_text().splitlines()
    wrapped = [json.dumps({"event_class": "X", "crewai_version": "2.1.0", "event": json.loads(ln)}) for ln in lines]
    p = tmp_path / "v2.jsonl"
    p.write_text("\n".join(wrapped) + "\n")
    res = mast("ingest", p, expect=1)
    assert "line 1" in res.stderr and "2.1.0" in res.stderr and "newer" in res.stderr
    _no_traces(db)
    wrapped = [json.dumps({"event_class": "X", "crewai_version": "1.15.30", "event": json.loads(ln)}) for ln in lines]
    p.write_text("\n".join(wrapped) + "\n")
    assert ingest(mast, p)["formats"] == {"crewai-events": 1}
