"""Tool-calling trajectories (``trajectory``): real τ-bench results records.

tests/fixtures/formats/trajectory/ holds 4 records of τ-bench's published gpt-4o airline
run (NOTICE.md).  Before this importer the file was refused; renamed to a message list it
was read with every tool result as an agent named after the tool and the system prompt as
an agent called ``system``.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats" / "trajectory"
NAME = "tau-bench-gpt-4o-airline.excerpt.json"
RECORDS = json.loads((FIX / NAME).read_text())


def _rows(db):
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT trace_id, outcome, task FROM traces ORDER BY source_index")
        steps = [st.fetchall("SELECT agent, role, kind, tool_name, span_id, parent_span_id, status, content FROM steps "
                             "WHERE trace_id = ? ORDER BY step", [t[0]]) for t in traces]
    return traces, steps


def test_detected_and_matches_golden(mast, db):
    assert detect(FIX / NAME).name == "trajectory"
    assert ingest(mast, FIX / NAME)["formats"] == {"trajectory": 1}
    check(FIX, NAME, summarise(db))


def test_records_match_the_benchmark_output(mast, db):
    ingest(mast, FIX / NAME)
    traces, steps = _rows(db)
    assert len(traces) == len(RECORDS)
    for rec, (tid, outcome, task), st in zip(RECORDS, traces, steps):
        assert outcome == {1.0: "success", 0.0: "failure"}[rec["reward"]]
        assert task == next(m["content"] for m in rec["traj"] if m["role"] == "user")
        calls = [c for m in rec["traj"] for c in m.get("tool_calls") or []]
        assert [(s[3], s[4]) for s in st if s[2] == "tool_call"] == [(c["function"]["name"], c["id"]) for c in calls]
        results = [m for m in rec["traj"] if m["role"] == "tool"]
        assert [(s[3], s[5]) for s in st if s[2] == "tool_result"] == [(m["name"], m["tool_call_id"]) for m in results]
        tools = {m["name"] for m in results}
        agents = {s[0] for s in st if s[0]}
        assert not tools & agents and "system" not in agents and agents <= {"assistant", "user"}
        assert st[0][:3] == (None, "system", "message")  # the system prompt: a system-role step
        assert st[-1][2] == "termination"
        # a tool result is "error" when the environment answered a failure, else "ok" (never NULL)
        assert [s[6] for s in st if s[2] == "tool_result"] == [
            "error" if (m["content"] or "").startswith(("Error:", "Unknown action")) else "ok" for m in results]


def test_records_as_json_lines(mast, db, tmp_path):
    p = tmp_path / "results.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert ingest(mast, p)["formats"] == {"trajectory": 1}
    assert [g["outcome"] for g in summarise(db)] == ["success", "success", "failure", "failure"]


def test_two_trials_that_read_alike_are_two_traces(mast, db, tmp_path):
    # pass^k: the same task run k times; a deterministic model gives the same trajectory each time
    recs = [dict(RECORDS[0], trial=t) for t in (0, 1, 2)]
    p = tmp_path / "trials.json"
    p.write_text(json.dumps(recs))
    ingest(mast, p)
    with Store(db, read_only=True) as st:
        trials = sorted(r[0] for r in st.fetchall("SELECT json_extract(metadata, '$.trial')::INT FROM traces"))
    assert trials == [0, 1, 2]


def test_crashed_attempt_is_an_error_and_a_failure(mast, db, tmp_path):
    rec = {"task_id": 7, "trial": 1, "reward": 0.0, "info": {"error": "RateLimitError: 429", "traceback": "…"},
           "traj": RECORDS[0]["traj"][:3]}
    p = tmp_path / "crash.json"
    p.write_text(json.dumps([rec]))
    ingest(mast, p)
    [g] = summarise(db)
    assert g["outcome"] == "failure" and g["kinds"].get("error") == 1


def test_truncated_results_are_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / NAME, mast, db, tmp_path)


@pytest.mark.parametrize("mutate,must", [
    (lambda r: r.pop("traj"), "missing required field(s): traj"),
    (lambda r: r.update(reward="high"), "reward 'high' is not a number"),
    (lambda r: r["traj"][2].pop("role"), "traj[2]"),
    (lambda r: r.update(traj={"role": "user"}), "field traj is not a list"),
])
def test_bad_record_is_refused_naming_it(mutate, must, mast, db, tmp_path):
    recs = json.loads((FIX / NAME).read_text())
    mutate(recs[2])
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(recs, indent=1))
    text = refused(mast, db, p, must, fmt="trajectory")
    assert "2" in text
    assert no_traces(db)


def test_lookalike_task_list_is_not_a_trajectory(tmp_path):
    # a benchmark's task list (task_id + instruction, no traj / reward) is not a run
    p = tmp_path / "tasks.json"
    p.write_text(json.dumps([{"task_id": 1, "instruction": "Cancel the flight", "actions": []}]))
    with pytest.raises(Exception, match="no importer"):
        detect(p)


@pytest.mark.parametrize("order", ["sorted", "reward_first"])
def test_records_are_known_by_their_keys_in_any_order(order, mast, db, tmp_path):
    # json.dump(sort_keys=True) writes info, reward, task_id, traj, trial: it was refused
    # ("records do not start with task_id or traj")
    recs = json.loads((FIX / NAME).read_text())
    if order == "reward_first":
        recs = [{k: r[k] for k in ("reward", "trial", "info", "traj", "task_id")} for r in recs]
    p = tmp_path / "results.json"
    p.write_text(json.dumps(recs, indent=2, sort_keys=order == "sorted"))
    assert detect(p).name == "trajectory"
    ingest(mast, p)
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == len(recs)


def test_a_tool_that_failed_is_an_error_result(mast, db, tmp_path):
    # tau-bench's Env.step answers a tool that raised with f"Error: {e}" (and its tools return
    # "Error: ..." themselves); that result was stored as a successful one. Derived from a
    # real record: its first tool result replaced by such an answer.
    rec = json.loads(json.dumps(RECORDS[2]))
    tool = next(m for m in rec["traj"] if m.get("role") == "tool")
    tool["content"] = "Error: reservation not found"
    p = tmp_path / "failed_tool.json"
    p.write_text(json.dumps([rec]))
    ingest(mast, p)
    [g] = summarise(db)
    want = [[m["name"], "error" if m is tool else "ok"] for m in rec["traj"] if m.get("role") == "tool"]
    assert g["tool_pairs"] == want and want[0][1] == "error"


def test_content_as_a_list_of_text_parts_is_the_text(mast, db, tmp_path):
    # The OpenAI API (and newer harnesses that log its requests) write a message's content
    # as parts, [{"type": "text", "text": ...}]: the task and every message were stored as
    # the parts' JSON. Derived from a real record: each string content made one text part.
    plain = json.loads(json.dumps(RECORDS[2]))
    parts = json.loads(json.dumps(plain))
    for m in parts["traj"]:
        if isinstance(m.get("content"), str) and m["content"]:
            m["content"] = [{"type": "text", "text": m["content"]}]
    (tmp_path / "plain.json").write_text(json.dumps([plain]))
    (tmp_path / "parts.json").write_text(json.dumps([parts]))
    ingest(mast, tmp_path / "plain.json")
    want = _rows(db)
    db.unlink()
    ingest(mast, tmp_path / "parts.json")
    got = _rows(db)
    assert [t[1:] for t in got[0]] == [t[1:] for t in want[0]]  # outcome and task
    assert got[1] == want[1]
