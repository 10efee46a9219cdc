"""What ingest adds to every trace: the system name (and the rule that gave it), the outcome's reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import ROOT, unwrapped
from mast.ingest.pipeline import ingest_paths
from mast.store import Store

FW = ROOT / "tests" / "fixtures" / "frameworks"
AGENTCHAT = FW / "autogen" / "0.7.5"


def _put(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _traces(db: Path) -> dict[str, tuple]:
    with Store(db, read_only=True) as st:
        return {Path(p).parent.name + "/" + Path(p).name: (sys, frm, reason) for p, sys, frm, reason in st.fetchall(
            "SELECT source_path, system, metadata->>'system_from', metadata->>'outcome_reason' FROM traces")}


def test_unnamed_systems_take_the_folder_name_and_the_summary_says_so(tmp_path, mast, db):
    # AgentChat's TaskResult names no team: the folder each run sits in names it.
    _put(AGENTCHAT / "roundrobin" / "task_result.json", tmp_path / "runs" / "review-team" / "task_result.json")
    _put(AGENTCHAT / "swarm" / "task_result.json", tmp_path / "runs" / "refunds" / "task_result.json")
    # CrewAI's event bus names its crew: the artefact wins over the folder.
    _put(FW / "crewai" / "research" / "event_bus.jsonl", tmp_path / "runs" / "crews" / "event_bus.jsonl")
    out = json.loads(mast("ingest", tmp_path / "runs", "--json").stdout)
    assert out["errors"] == []
    assert out["systems_named"] == {"folder": 2, "artefact": 1}
    got = _traces(db)
    assert got["review-team/task_result.json"][:2] == ("review-team", "folder")
    assert got["refunds/task_result.json"][:2] == ("refunds", "folder")
    assert got["crews/event_bus.jsonl"][:2] == ("tracing_research", "artefact")
    res = mast("ingest", tmp_path / "runs")
    assert "system names" not in res.stderr  # unchanged files: nothing named this time


def test_default_system_comes_before_the_folder(tmp_path, mast, db):
    f = _put(AGENTCHAT / "selector" / "task_result.json", tmp_path / "x" / "task_result.json")
    res = mast("ingest", f, "--default-system", "support-bot")
    assert "1 trace(s) from the default-system" in res.stderr
    assert _traces(db)["x/task_result.json"][:2] == ("support-bot", "default-system")


def test_traces_show_names_the_system_and_the_outcome_reason(tmp_path, mast, db):
    f = _put(AGENTCHAT / "roundrobin" / "task_result.json", tmp_path / "review-team" / "task_result.json")
    mast("ingest", f)
    with Store(db, read_only=True) as st:
        [(tid, reason)] = st.fetchall("SELECT trace_id, metadata->>'outcome_reason' FROM traces")
    assert reason == json.loads(f.read_text())["stop_reason"]  # AgentChat's own words
    shown = mast("traces", "show", tid[:12]).stdout
    head = unwrapped(shown.split("source:")[0])  # the heading line, however the terminal wraps it
    assert "None" not in head
    assert "review-team [named by folder]" in head
    assert f"unknown: {reason}" in head


def test_a_recursion_limit_is_the_outcome_reason(tmp_path, mast, db):
    f = _put(FW / "langgraph" / "loop" / "langsmith_run_tree.json", tmp_path / "loop" / "run.json")
    mast("ingest", f)
    [(_, _, reason)] = _traces(db).values()
    assert reason == "GraphRecursionError: Recursion limit of 6 reached"


def _other(run_id: str) -> str:
    return ("1" if run_id[0] == "0" else "0") + run_id[1:]


def test_astream_events_take_the_graph_name_as_langsmith_does(tmp_path, mast, db):
    # the root chain of astream_events is the graph; its name was ignored, so one run was
    # "fix_loop" from LangSmith and the folder's name from its events
    loop = FW / "langgraph" / "loop"
    _put(loop / "astream_events.jsonl", tmp_path / "runs" / "astream_events.jsonl")
    _put(loop / "langsmith_run_tree.json", tmp_path / "runs" / "langsmith_run_tree.json")
    # a graph left with its default name, "LangGraph", names nothing: the folder does
    events = [json.loads(x) for x in (loop / "astream_events.jsonl").read_text().splitlines()]
    for ev in events:
        if ev.get("name") == "fix_loop":
            ev["name"] = "LangGraph"
        # another run: other run ids (the same ids would make it the same run)
        ev["run_id"] = _other(ev["run_id"])
        ev["parent_ids"] = [_other(p) for p in ev.get("parent_ids") or []]
    (tmp_path / "unnamed" / "team-x").mkdir(parents=True)
    text = "".join(json.dumps(e) + "\n" for e in events).replace("Make the date-parsing test pass.", "Another task.")
    (tmp_path / "unnamed" / "team-x" / "events.jsonl").write_text(text)
    mast("ingest", tmp_path / "runs", tmp_path / "unnamed")
    got = _traces(db)
    assert got["runs/langsmith_run_tree.json"][:2] == ("fix_loop", "artefact")
    assert got["runs/astream_events.jsonl"][:2] == ("fix_loop", "artefact")
    assert got["team-x/events.jsonl"][:2] == ("team-x", "folder")


def test_openai_agents_max_turns_is_the_same_reason_from_every_artefact(tmp_path, mast, db):
    # OpenInference's error text is "Max turns exceeded: {'max_turns': 2}": the limit rule
    # matched inside the dict and kept "max_turns': 2}" as the reason
    # (each artefact into a store of its own: together they are one run, one trace)
    fix = FW / "openai_agents"
    rows = []
    for name in ("processor.jsonl", "openinference.otlp.json"):
        with Store(tmp_path / f"{name}.duckdb") as st:
            assert not ingest_paths(st, [fix / name]).errors
            rows += st.fetchall("SELECT source_format, metadata->>'outcome_reason' FROM traces "
                                "WHERE outcome = 'failure'")
    assert sorted(rows) == [("openai-agents", "Max turns exceeded"), ("otel", "Max turns exceeded")]


def test_an_ag2_hub_run_is_named_by_its_channel_kind_and_agents_not_its_channel_id(mast, db):
    # ag2 1.x keeps a channel's WAL under channels/<channel id>/: named by that folder, every
    # run would be a system of its own.  The hub says what the run is: the channel's kind
    # (its manifest type) and the agents in it, named by their passports / the audit log.
    hubs = [FW / "ag2x" / run / "hub" for run in ("workflow", "failing")]
    out = json.loads(mast("ingest", "--json", *hubs).stdout)
    assert out["errors"] == [] and set(out["systems_named"]) == {"artefact"}  # WALs and audit logs alike
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT source_format, system, metadata->>'system_from', metadata->>'channel_id' FROM traces")
    names = set()
    for hub in hubs:  # what the hub itself says: the agents registered, the channel's kind
        audit = [json.loads(line) for line in (hub / "audit" / "audit.jsonl").read_text().splitlines() if line]
        ids = {r["agent_id"]: r["name"] for r in audit if r["kind"] == "agent_registered"}
        [made] = [r for r in audit if r["kind"] == "channel_created"]
        members = {ids[a] for a in [*made["participants"], made["creator_id"]]}
        names.add(f"{made['manifest_type']}: " + ", ".join(sorted(members)))
    assert len(rows) == 2 and {r[2] for r in rows} == {"artefact"}
    assert {r[1] for r in rows} == names
    assert not any(r[3] in r[1] for r in rows)  # the channel id is the run's, not the system's
