"""MAD importer: both shapes, every system's log split without losing text, labels mapped."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from mast.ingest import detect, get
from mast.ingest.formats.mad import split_trace
from mast.store import Store
from mast.taxonomy import load as load_taxonomy
from conftest import COMMUNITY, DATASETS, MAD_HUMAN, need, write_json

MANIFEST = DATASETS / "mast-human" / "MANIFEST.md"


def _records(path: Path) -> list[dict]:
    return json.loads(need(path).read_text(encoding="utf-8"))


def _system(rec: dict) -> str:
    # Records 17/18 carry the system in benchmark_name (fields swapped in the source).
    return rec["benchmark_name"] if rec["mas_name"] == "GAIA" else rec["mas_name"]


def _rebuild(split, raw: str):
    """The contract of mast.ingest.formats.mad.split, implemented here independently."""
    contents = [s.content for s in split.steps]
    assert all(isinstance(c, str) for c in contents)
    if split.wrapper is None:
        return "".join(contents)
    if split.form == "text":
        value = "".join(contents)
    elif split.form == "lines":
        value = "".join(contents).split("\n")
    else:
        assert split.form == "messages"
        value = []
        for s in split.steps:
            msg = dict(s.attributes["source"])
            n = s.attributes.get("content_lines")
            msg["content"] = s.content if n is None else ([] if n == 0 else s.content.split("\n"))
            value.append(msg)
    assert split.wrapper[split.field] is None
    return {**split.wrapper, split.field: value}


def _all_records():
    out = []
    if MAD_HUMAN.exists():
        out += [("human", i) for i in range(len(_records(MAD_HUMAN)))]
    for f in sorted(COMMUNITY.glob("raw_ag2_records*.json")) if COMMUNITY.exists() else []:
        out += [(f.name, i) for i in range(len(_records(f)))]
    return out or [("human", 0)]


@pytest.mark.parametrize("source,index", _all_records())
def test_split_keeps_every_character(source, index):
    path = MAD_HUMAN if source == "human" else COMMUNITY / source
    rec = _records(path)[index]
    raw = rec["trace"]
    split = split_trace(_system(rec), raw)
    rebuilt = _rebuild(split, raw)
    if split.wrapper is None:
        assert rebuilt == raw
    else:
        assert rebuilt == json.loads(raw)
    assert split.method != "whole-text", "every system in the data sets has a recognised log shape"
    assert len(split.steps) > 1


def _human_split(trace_id: int):
    rec = _records(MAD_HUMAN)[trace_id]
    return rec, split_trace(_system(rec), rec["trace"])


def test_ag2_messages_one_step_per_trajectory_entry():
    for tid in (2, 7, 12):
        rec, s = _human_split(tid)
        traj = json.loads(rec["trace"])["trajectory"]
        assert len(s.steps) == len(traj)
        assert [st.agent for st in s.steps] == [m["name"] for m in traj]
        assert [st.role for st in s.steps] == [m["role"] for m in traj]
        assert s.steps[0].content == "\n".join(traj[0]["content"])
        assert s.task == "\n".join(json.loads(rec["trace"])["problem_statement"])


def test_chatdev_turns_speakers_targets_and_times():
    rec, s = _human_split(3)
    raw = rec["trace"]
    turn_rx = re.compile(r"^\[[^]]+\] ([^:\n]+): \*\*([^*<]+)<->([^*]+) on : [^*]+, turn \d+\*\*", re.M)
    turns = turn_rx.findall(raw)
    msgs = [st for st in s.steps if st.attributes and "turn" in st.attributes]
    assert [(m.agent, m.target_agent) for m in msgs] == [
        (sp, b if sp == a else a) for sp, a, b in turns]
    # One step per "[date LEVEL]" log line, plus nothing else (the log has no preamble).
    assert len(s.steps) == len(re.findall(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+\] ", raw, re.M))
    # ChatDev writes %Y-%d-%m: "2025-17-01 11:36:43" is 17 January.
    assert s.steps[0].started_at == "2025-01-17T11:36:43"
    usage = [st for st in s.steps if st.kind.value == "llm_call"]
    assert sum(st.tokens_in for st in usage) == sum(
        int(x) for x in re.findall(r"^prompt_tokens: (\d+)$", raw, re.M)[:len(usage)])
    assert s.task and s.task.startswith("Develop a classic Sudoku")


def test_metagpt_both_log_shapes():
    rec, s = _human_split(4)  # JSON run with a loguru "content"
    content = json.loads(rec["trace"])["content"]
    acts = re.findall(r" - \w+\((\w+)\): to do ", content)
    assert [st.agent for st in s.steps if st.kind.value == "message"] == acts
    assert s.field == "content" and s.task == json.loads(rec["trace"])["prompt"]
    rec, s = _human_split(16)  # communication log
    raw = rec["trace"]
    first = next(st for st in s.steps if st.agent == "Human")
    assert first.target_agent == "<all>" and first.role == "user"
    speakers = re.findall(r"NEW MESSAGES:\n\n(\w+): ", raw)
    assert [st.agent for st in s.steps if st.kind.value == "message" and st.agent != "Human"] == speakers
    assert all(st.started_at for st in s.steps if st.kind.value == "message")


def test_appworld_magentic_openmanus_hyperagent_shapes():
    rec, s = _human_split(0)
    raw = rec["trace"]
    env = [st for st in s.steps if st.agent == "environment"]
    opening = [st for st in s.steps if st.agent == "Supervisor Agent" and st.role == "user"]
    # Every output the harness feeds back is an environment step; each inner loop opens
    # with the Supervisor's own message.
    assert len(opening) == len(re.findall(r"^Entering .+ message loop$", raw, re.M))
    assert len(env) + len(opening) == (raw.count("\nCode Execution Output\n")
                                       + len(re.findall(r"^ *Message to .+ Agent$", raw, re.M))
                                       + raw.count("Response from send_message API"))
    assert {st.kind.value for st in env} == {"tool_result", "error"}
    assert s.outcome.value == "failure"  # its Evaluation block says "success": false
    rec, s = _human_split(17)
    speakers = re.findall(r"^---------- (.+) ----------$", rec["trace"], re.M)
    assert [st.agent for st in s.steps if st.kind.value in ("message", "termination")] == speakers
    assert s.steps[-1].agent == "log" and s.task.startswith("How many at bats")
    rec, s = _human_split(18)
    calls = [st for st in s.steps if st.kind.value == "tool_call"]
    assert len(calls) == rec["trace"].count("Tool arguments:")
    assert all(c.tool_name for c in calls) and any(st.kind.value == "termination" for st in s.steps)
    toks = [st.tokens_in for st in s.steps if st.kind.value == "llm_call"]
    assert sum(toks) == sum(int(x) for x in re.findall(r"Token usage: Input=(\d+),", rec["trace"]))
    rec, s = _human_split(6)
    lines = json.loads(rec["trace"])["trajectory"]
    header = re.compile(r"HyperAgent_\S+ - INFO - (.+?)'s Response:")
    responses = [header.match(ln).group(1) for ln in lines if header.match(ln)]
    assert [st.agent for st in s.steps if header.match(st.content)] == responses
    handoffs = [st for st in s.steps if st.kind.value == "handoff"]
    assert len(handoffs) == sum(1 for ln in lines if ln.startswith("Intern Name: "))
    assert {h.target_agent for h in handoffs} <= {"Navigator", "Editor", "Executor"}


def _manifest_map() -> dict[str, dict[str, str]]:
    """The 'How the older codes map onto the final 14' table of the data set's MANIFEST."""
    text = need(MANIFEST).read_text(encoding="utf-8")
    table = text.split("## How the older codes map", 1)[1]
    r1, r23 = {}, {}
    for final, c1, c23 in re.findall(r"^\| (\d\.\d) [^|]+\| (\d\.\d) [^|]*\| (\d\.\d) \|$", table, re.M):
        r1[c1] = final
        r23[c23] = final
    return {"mad-round1": r1, "mad-round23": r23}


def test_taxonomy_maps_match_the_manifest_table():
    tax = load_taxonomy()
    expected = _manifest_map()
    assert len(expected["mad-round1"]) == len(expected["mad-round23"]) == 14
    for draft, codes in expected.items():
        assert tax.maps[draft]["codes"] == codes


def _ingest(db: Path, *paths) -> None:
    from mast.ingest.pipeline import ingest_paths
    with Store(db) as st:
        summary = ingest_paths(st, paths)
    assert not summary.errors, summary.errors


def test_human_file_annotators_and_majority_mapped(db):
    recs = _records(MAD_HUMAN)
    assert detect(MAD_HUMAN).name == "mad"
    _ingest(db, MAD_HUMAN)
    maps = _manifest_map()
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT source_index, annotator, mode, label FROM annotations a "
                           "JOIN traces USING (trace_id)")
        systems = Counter(r[0] for r in st.fetchall("SELECT system FROM traces"))
        counts = st.fetchall("SELECT source_index, n_steps, (SELECT count(*) FROM steps s WHERE "
                             "s.trace_id = t.trace_id) FROM traces t")
    assert len(counts) == 19 and all(n == c and n > 1 for _, n, c in counts)
    assert systems == {"AppWorld": 3, "HyperAgent": 3, "AG2": 3, "ChatDev": 4, "MetaGPT": 4,
                       "Magentic": 1, "OpenManus": 1}
    by = {}
    for idx, annotator, mode, label in rows:
        by.setdefault((idx, annotator), {})[mode] = label
    for i, rec in enumerate(recs):
        draft = {"Round 1": "mad-round1", "Round 2": "mad-round23", "Round 3": "mad-round23"}.get(rec["round"])
        want_majority = set()
        want = {k: set() for k in ("annotator_1", "annotator_2", "annotator_3")}
        for block in rec["annotations"]:
            code = block["failure mode"].split()[0]
            final = maps[draft].get(code) if draft else code
            if final is None:
                continue  # an older mode without a final counterpart
            if sum(block[k] for k in want) >= 2:
                want_majority.add(final)
            for k in want:
                if block[k]:
                    want[k].add(final)
        assert {m for m, lab in by[(i, "human")].items() if lab == "present"} == want_majority, i
        for k, modes in want.items():
            assert {m for m, lab in by[(i, f"human:{k}")].items() if lab == "present"} == modes


def test_community_records_with_gold_labels(db, tmp_path):
    need(COMMUNITY)
    _ingest(db, *sorted(COMMUNITY.glob("raw_ag2_records*.json")))
    gold = {}
    for g in sorted(COMMUNITY.glob("gold_labels*.json")):
        gold.update(json.loads(g.read_text())["labels"])
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT json_extract_string(metadata, '$.trace_id'), mode, label FROM annotations "
                           "JOIN traces USING (trace_id) WHERE annotator = 'community:mast-lint'")
        n = st.fetchall("SELECT count(*) FROM traces")[0][0]
        wrapper = st.fetchall("SELECT json_extract(metadata, '$.trace_wrapper.problem_statement') FROM traces")
    assert n == 40 and len(rows) == 40 * 14
    present = {}
    for tid, mode, label in rows:
        present.setdefault(tid, set())
        if label == "present":
            present[tid].add(mode)
    assert present == {k: {c.removeprefix("FM-") for c in v["present"]} for k, v in gold.items()}
    assert all(w[0] is not None for w in wrapper)  # the wrapper's other fields stay reachable


def test_full_dataset_shape(tmp_path, db):
    rec = _records(MAD_HUMAN)[7]
    traj = json.loads(rec["trace"])["trajectory"]
    full = [{"mas_name": "AG2", "llm_name": "gpt-4o", "benchmark_name": "GSM-Plus",
             "trace": {"trajectory": [{"content": "\n".join(m["content"]), "role": m["role"], "name": m["name"]}
                                      for m in traj]},
             "mast_annotation": {"1.1": 1, "1.2": 0, "3.3": 1, "9.9": 1}}]
    f = write_json(tmp_path / "full.json", full)
    assert detect(f).name == "mad"
    [t] = list(get("mad").read(f))
    assert len(t.steps) == len(traj) and t.metadata["llm_name"] == "gpt-4o"
    assert {(a.mode, a.label.value, a.annotator) for a in t.annotations} == {
        ("1.1", "present", "mad:o1"), ("1.2", "absent", "mad:o1"), ("3.3", "present", "mad:o1")}


def test_companion_labels_file_is_skipped_with_note_but_unknown_files_fail(tmp_path, mast):
    src = need(Path(__file__).resolve().parents[2] / "traces" / "mast-lint-community")
    d = tmp_path / "c"
    d.mkdir()
    for f in src.glob("*.json"):
        (d / f.name).write_bytes(f.read_bytes())
    res = mast("ingest", d, "--json")
    out = json.loads(res.stdout)
    assert out["errors"] == [] and out["traces_new"] == 7
    assert [Path(c["path"]).name for c in out["skipped_companion"]] == ["gold_labels_sample.json"]
    # The same labels file without its records file is not a companion: it fails detection.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "gold_labels_x.json").write_bytes((src / "gold_labels_sample.json").read_bytes())
    res = mast("ingest", lone, "--json", expect=1)
    assert "no importer recognises this file" in json.loads(res.stdout)["errors"][0]


def test_same_label_text_maps_by_each_records_round(tmp_path):
    # The importer reads each "failure mode" text once per file; the same text in records of
    # different rounds still maps through each round's own draft of the taxonomy.
    maps = load_taxonomy().maps
    text = "2.6 Action-Reasoning Mismatch"
    recs = [{"round": rnd, "mas_name": "AG2", "trace_id": i, "trace": "plain log",
             "annotations": [{"failure mode": text, "annotator_1": True, "annotator_2": True, "annotator_3": False}]}
            for i, rnd in enumerate(["Round 1", "Round 2", "Generlazability", "Round 1"])]
    f = write_json(tmp_path / "rounds.json", recs)
    got = [{(a.mode, a.annotator) for a in t.annotations if a.annotator == "human"} for t in get("mad").read(f)]
    want = [maps["mad-round1"]["codes"]["2.6"], maps["mad-round23"]["codes"]["2.6"], "2.6",
            maps["mad-round1"]["codes"]["2.6"]]
    assert len(set(want)) == 3  # the three rounds name three different final modes
    assert got == [{(m, "human")} for m in want]
