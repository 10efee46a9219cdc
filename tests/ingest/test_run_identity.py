"""One run is one trace: the artefacts of a run, in any order and across ingests, become one trace.

The fixture folders hold the artefacts the generators wrote; which of them came from the
same execution is known from the generators (their docstrings, and the ids the frameworks
put in the files), not from mast.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import pytest

from mast.classify.rules import RulesClassifier
from mast.classify.runner import Selection, run
from mast.ingest.pipeline import expand, ingest_paths
from mast.store import Store, run_match

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "tests" / "fixtures" / "frameworks"

#: Per fixture folder: (runs the generator executed, traces expected, why they differ).
#: Where the artefacts of one run carry no shared id, each keeps a trace (and ingest says
#: they look like one run): more traces than runs is then the honest answer.
FOLDERS = {
    # run_stream's items, TaskResult, its messages, both event logs: one team.run_stream();
    # save_state.json from another run (its messages' ids are others)
    "autogen/0.7.5/roundrobin": (2, 2, ""),
    # + otel.otlp.json: the selector team run once more with tracing on (gen_autogen.py
    # --otel), a third run; its times are not the others'
    "autogen/0.7.5/selector": (3, 3, ""),
    "autogen/0.7.5/swarm": (2, 2, ""),
    # 0.4 messages carry no id: messages, run_stream and TaskResult merged by content
    "autogen/0.4.9.3/roundrobin": (1, 1, ""),
    "autogen/0.4.9.3/selector": (1, 1, ""),
    "autogen/0.4.9.3/swarm": (1, 1, ""),
    # sqlite logger + ChatResult from one run, the file logger from a second, events a third:
    # ChatResult and the events carry no times and no id of their run, and every run of
    # the script reads alike, so which run they belong to is not known (noted, kept apart)
    "ag2/twoagent": (3, 4, "ChatResult and the .run() events fit more than one run"),
    "ag2/groupchat": (3, 4, "ChatResult and the .run() events fit more than one run"),
    "ag2/pattern": (3, 4, "ChatResult and the .run() events fit more than one run"),
    # + GroupChat.messages of the sqlite run, and OTel spans of a fourth run
    "ag2/toolfail": (4, 6, "ChatResult, GroupChat.messages and the .run() events fit more than one run"),
    # kickoff 1: bus, checkpoint, CrewOutput, task callback, output_log.txt; then output_log.json,
    # native OTel, OpenInference wrappers, OpenInference events: one kickoff each.  The
    # output log (times to the second) joins kickoff 1 by content; CrewOutput and the task
    # callback have no times and read alike in kickoffs 1 and 2
    "crewai/research": (5, 6, "CrewOutput and task outputs carry no run id and no times"),
    "crewai/failing": (2, 2, ""),
    # bus, native OTel, OpenInference wrappers and events: one kickoff each
    "crewai/hierarchical": (4, 4, ""),
    # both forms written by one step_callback during one kickoff
    "crewai_steps": (1, 1, ""),
    # one run per artefact, but the three final-state dumps of one invoke (same content)
    "langgraph/loop": (7, 7, ""),
    "langgraph/supervisor": (6, 6, ""),
    "langgraph/dicts": (2, 2, ""),
    "langgraph/toolerror": (1, 1, ""),
    # autogen-magentic-one's LogHandler: one log per run
    "magentic_one/solved": (1, 1, ""),
    "magentic_one/maxrounds": (1, 1, ""),
    # MagenticOneGroupChat: TaskResult, run_stream and event log of one run_stream()
    "magentic_one/agentchat": (1, 1, ""),
    # a @traceable pipeline, and a bare wrapped call
    "langsmith/wrap_openai": (2, 2, ""),
    # the same spans as console lines and OTLP JSON (legacy run), as OTLP lines and SDK
    # to_json lines (current run), and a run split over two trace ids
    "otel": (3, 3, ""),
    # three runs, each written by three trace processors at once
    "openai_agents": (3, 3, ""),
    # one run, two encodings
    "smolagents": (1, 1, ""),
    # one hub run each: WAL, audit log, spans, and each agent's history (a tree)
    "ag2x/workflow": (1, 1, ""),
    "ag2x/failing": (1, 1, ""),
}


#: Fixture folders that arrived after these counts were pinned (how many runs their
#: generators made per artefact is not checked here yet).
NOT_PINNED: set[str] = set()
#: Fixture folders whose run is a folder tree (ag2 1.x: agents' logs, the hub's WAL and audit log).
TREES = {"ag2x"}


def _files(folder: Path) -> list[Path]:
    tree = folder.relative_to(FW).parts[0] in TREES
    return [f for f in expand([folder]) if (tree or f.parent == folder)
            and not (f.name in ("golden.json", "facts.json") or f.name.endswith(".facts.json"))]


def _n_traces(db: Path) -> int:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT count(*) FROM traces")[0][0]


def _folder(p: Path) -> str:
    rel = p.parent.relative_to(FW)
    return "/".join(rel.parts[:2]) if rel.parts[0] in TREES else str(rel)


def test_every_framework_folder_is_covered():
    have = {_folder(p) for p in FW.rglob("*") if p.is_file() and "generators" not in p.parts
            and p.name not in ("golden.json", "facts.json", "README.md") and not p.name.endswith(".facts.json")
            and not p.name.startswith(".") and p.relative_to(FW).parts[0] not in NOT_PINNED}
    assert have == set(FOLDERS)


@pytest.mark.parametrize("rel", sorted(FOLDERS))
def test_all_artefacts_of_a_folder_give_one_trace_per_identified_run(rel, tmp_path):
    runs, want, why = FOLDERS[rel]
    db = tmp_path / "s.duckdb"
    files = _files(FW / rel)
    with Store(db) as st:
        res = ingest_paths(st, files)
        assert not res.errors
    assert _n_traces(db) == want
    assert (want == runs) == (not why)
    with Store(db, read_only=True) as st:
        # every artefact is recorded; each stored trace names the one it was built from
        rows = st.fetchall("SELECT path, chosen, stored_trace_id FROM run_sources")
        read = {r[0] for r in st.fetchall("SELECT path FROM ingested_files")}  # not the companions
        assert {r[0] for r in rows} == read and read <= {str(f.resolve()) for f in files}
        stored = {r[0] for r in st.fetchall("SELECT trace_id FROM traces")}
        assert {r[2] for r in rows} == stored
        chosen = st.fetchall("SELECT t.source_path, s.path FROM traces t JOIN run_sources s "
                             "ON s.stored_trace_id = t.trace_id AND s.chosen")
        assert len(chosen) == len(stored)
    if why and "OTel" not in why:  # the artefacts no id ties are named as looking like one run
        assert res.same_run  # (OTel spans open with LLM calls, not the messages: no fingerprint match)


SELECTOR = FW / "autogen" / "0.7.5" / "selector"


def _state(db: Path) -> tuple:
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT trace_id, source_format, n_steps, tokens_in FROM traces ORDER BY 1")
        sources = st.fetchall("SELECT path, format, chosen, stored_trace_id FROM run_sources ORDER BY 1")
    return traces, sources


@pytest.mark.parametrize("order", list(itertools.permutations(range(5)))[::41], ids=lambda o: "".join(map(str, o)))
def test_the_same_trace_whatever_order_the_artefacts_arrive_in(order, tmp_path):
    # save_state.json: another run; otel.otlp.json: added later, not pinned here
    files = [f for f in _files(SELECTOR) if f.name not in ("save_state.json", "otel.otlp.json")]
    assert len(files) == 5
    ref = tmp_path / "ref.duckdb"
    with Store(ref) as st:
        ingest_paths(st, files)
    one = tmp_path / "one-by-one.duckdb"
    for i in order:  # separate ingests, one file each
        with Store(one) as st:
            assert not ingest_paths(st, [files[i]]).errors
    assert _state(one) == _state(ref)
    traces, sources = _state(ref)
    assert [t[1] for t in traces] == ["autogen-events"]  # the event log is the richest
    assert sum(s[2] for s in sources) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["grouped", "streamed"])
def test_a_later_richer_artefact_rebuilds_the_trace_and_its_labels_go(tmp_path, monkeypatch, stream):
    if stream:  # the big-file path: staged batches published in one transaction
        from mast.ingest import pipeline
        monkeypatch.setattr(pipeline, "STREAM_BYTES", 10)
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        first = ingest_paths(st, [SELECTOR / "task_result.json"])
        assert first.traces_new == 1
        [(old,)] = st.fetchall("SELECT trace_id FROM traces")
        run(st, RulesClassifier(), Selection())
        labels = st.fetchall("SELECT count(*) FROM annotations WHERE trace_id = ?", [old])[0][0]
        assert labels > 0
    with Store(db) as st:
        res = ingest_paths(st, [SELECTOR / "events.jsonl"])
        assert (res.traces_new, res.traces_superseded, res.labels_superseded) == (1, 1, labels)
        [(new, fmt, source)] = st.fetchall("SELECT trace_id, source_format, source_path FROM traces")
        assert (fmt, Path(source).name) == ("autogen-events", "events.jsonl") and new != old
        assert st.fetchall("SELECT count(*) FROM annotations WHERE trace_id = ?", [old])[0][0] == 0
        srcs = st.run_sources(new)
        assert [(Path(s["path"]).name, s["chosen"]) for s in srcs] == [("events.jsonl", True),
                                                                       ("task_result.json", False)]
    with Store(db) as st:  # a poorer one after it: an alternate, not a new trace
        res = ingest_paths(st, [SELECTOR / "run_stream.jsonl"])
        assert (res.traces_new, res.alternates) == (0, 1)
        assert st.fetchall("SELECT trace_id FROM traces") == [(new,)]


def test_a_changed_chosen_artefact_keeps_its_alternates(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(SELECTOR, d, ignore=shutil.ignore_patterns("save_state*", "otel.*"))
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        ingest_paths(st, [d])
        [(old,)] = st.fetchall("SELECT trace_id FROM traces")
    ev = d / "events.jsonl"
    ev.write_text(ev.read_text().replace("Atlantis", "Atlantis (edited)"))
    os.utime(ev, ns=(2 * 10**18, 2 * 10**18))
    with Store(db) as st:
        res = ingest_paths(st, [d])
        assert not res.errors and res.traces_replaced == 1  # the old version of events.jsonl
        [(new, source)] = st.fetchall("SELECT trace_id, source_path FROM traces")
        assert new != old and Path(source).name == "events.jsonl"
        srcs = st.run_sources(new)
        assert len(srcs) == 5 and [s["chosen"] for s in srcs].count(True) == 1
        assert Path(srcs[0]["path"]).name == "events.jsonl"


def test_same_run_without_ids_is_said_naming_both_files(mast, db):
    # ChatResult has no times and no id the loggers know: it fits the sqlite run and the
    # file logger's run alike (the script's runs read the same), so it joins neither
    twoagent = FW / "ag2" / "twoagent"
    res = mast("ingest", twoagent / "runtime_logging.db", twoagent / "runtime.log", twoagent / "chat_result.json")
    err = " ".join(res.stderr.split())
    assert "looks like the same run as" in err and "merged by content" not in err
    assert "runtime_logging.db" in err and "chat_result.json" in err
    assert _n_traces(db) == 3
    out = json.loads(mast("ingest", "--json", FW / "ag2" / "pattern").stdout)
    pairs = {(Path(p["path"]).name, Path(p["other"]).name) for p in out["same_run_no_id"]}
    assert ("runtime_logging.db", "chat_result.json") in pairs and not out["merged_by_content"]


def test_an_artefact_without_ids_that_fits_one_run_is_merged_and_said(mast, db):
    twoagent = FW / "ag2" / "twoagent"  # the sqlite log and ChatResult of one run, alone
    res = mast("ingest", twoagent / "runtime_logging.db", twoagent / "chat_result.json")
    err = " ".join(res.stderr.split())
    assert "merged by content with" in err and "chat_result.json" in err and "runtime_logging.db" in err
    assert _n_traces(db) == 1
    with Store(db, read_only=True) as st:
        [(tid, fmt)] = st.fetchall("SELECT trace_id, source_format FROM traces")
    assert fmt == "ag2-runtime-db"  # the richer of the two
    shown = json.loads(mast("traces", "show", "--json", tid).stdout)
    rules = {Path(s["path"]).name: s["match_rule"] for s in shown["sources"]}
    assert rules["chat_result.json"].startswith("content:") and "no times" in rules["chat_result.json"]
    text = " ".join(mast("traces", "show", tid).stdout.split())
    assert "matched by" in text and "content:" in text


def test_two_runs_with_their_own_ids_are_not_said_to_be_one(mast, db):
    loop = FW / "langgraph" / "loop"
    res = mast("ingest", loop / "langsmith_wire.jsonl", loop / "langsmith_run_tree.json", loop / "astream_events.jsonl")
    assert "looks like the same run" not in res.stderr  # three run ids: three runs
    assert _n_traces(db) == 3


def test_traces_show_names_the_chosen_artefact_and_the_alternates(mast, db):
    mast("ingest", *_files(FW / "otel"))
    with Store(db, read_only=True) as st:
        [(tid,)] = st.fetchall("SELECT stored_trace_id FROM run_sources WHERE path LIKE '%console_spans.txt'")
    shown = json.loads(mast("traces", "show", "--json", tid).stdout)
    names = [(Path(s["path"]).name, s["chosen"]) for s in shown["sources"]]
    assert sorted(names) == [("console_spans.txt", names[0][0] == "console_spans.txt"),
                             ("genai_legacy.otlp.json", names[0][0] == "genai_legacy.otlp.json")]
    assert shown["sources"][0]["chosen"] and shown["sources"][0]["why"].startswith("richest of 2")
    assert shown["trace"]["metadata"]["run_key_kind"] == "otel-trace"
    text = " ".join(mast("traces", "show", tid).stdout.split())
    assert "artefacts of this run" in text and "alternate" in text and "chosen" in text


SWARM04 = FW / "autogen" / "0.4.9.3" / "swarm"
RESEARCH = FW / "crewai" / "research"


def _rules(db: Path) -> dict[str, str | None]:
    with Store(db, read_only=True) as st:
        return {Path(p).name: r for p, r in st.fetchall("SELECT path, match_rule FROM run_sources")}


def test_two_runs_of_one_task_with_other_messages_are_not_merged(tmp_path):
    # no ids and no times in either: the same task and opening messages, then the runs part
    d = tmp_path / "runs"
    d.mkdir()
    shutil.copy(SWARM04 / "messages.json", d / "messages.json")
    tr = json.loads((SWARM04 / "task_result.json").read_text())
    texts = [m for m in tr["messages"] if isinstance(m.get("content"), str)]
    assert len(texts) > 3
    texts[-1]["content"] = "Refund declined: the order is older than 30 days."
    (d / "task_result.json").write_text(json.dumps(tr))
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        res = ingest_paths(st, [d])
        assert not res.errors and not res.merged_by_content
        assert res.same_run  # said to look alike, kept apart
    assert _n_traces(db) == 2
    # the unchanged TaskResult of the same run is merged
    shutil.copy(SWARM04 / "task_result.json", d / "task_result.json")
    os.utime(d / "task_result.json", ns=(2 * 10**18, 2 * 10**18))
    with Store(db) as st:
        res = ingest_paths(st, [d / "task_result.json"])
        assert res.merged_by_content and not res.errors
    assert _n_traces(db) == 1
    assert _rules(db)["messages.json"].startswith("content:")


def _shift_log(src: Path, dst: Path, hours: int) -> None:
    import datetime as dt

    def shift(m):
        t = dt.datetime.strptime(m.group(0), "%Y-%m-%d %H:%M:%S") + dt.timedelta(hours=hours)
        return t.strftime("%Y-%m-%d %H:%M:%S")
    import re
    dst.write_text(re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", shift, src.read_text()))


def test_two_runs_identical_but_for_their_times_are_not_merged(tmp_path):
    # CrewAI's output log (no run id, times to the second) beside the event bus of its
    # kickoff: merged; the same log an hour later is another kickoff of the same crew
    db = tmp_path / "s.duckdb"
    later = tmp_path / "later" / "output_log.txt"
    later.parent.mkdir()
    _shift_log(RESEARCH / "output_log.txt", later, 1)
    with Store(db) as st:
        res = ingest_paths(st, [RESEARCH / "event_bus.jsonl", later])
        assert not res.errors and not res.merged_by_content
    assert _n_traces(db) == 2
    with Store(db) as st:
        res = ingest_paths(st, [RESEARCH / "output_log.txt"])
        bus = str((RESEARCH / "event_bus.jsonl").resolve())
        assert res.merged_by_content == [(str(RESEARCH / "output_log.txt"), bus)]
        assert (res.traces_new, res.alternates) == (0, 1)
    assert _n_traces(db) == 2  # the bus's trace, and the later kickoff's log
    rules = _rules(db)
    assert rules["output_log.txt"].startswith("content:") and "overlapping times" in rules["output_log.txt"]


@pytest.mark.parametrize("first", ["log", "bus"])
def test_a_content_match_is_the_same_whichever_arrives_first(tmp_path, first):
    files = [RESEARCH / "output_log.txt", RESEARCH / "event_bus.jsonl"]
    ref = tmp_path / "ref.duckdb"
    with Store(ref) as st:
        ingest_paths(st, files)
    one = tmp_path / "one.duckdb"
    for f in (files if first == "log" else files[::-1]):
        with Store(one) as st:
            assert not ingest_paths(st, [f]).errors
    assert _state(one) == _state(ref)
    assert [t[1] for t in _state(one)[0]] == ["crewai-events"]


def test_agent_histories_join_their_hub_run_in_any_order(tmp_path):
    run = FW / "ag2x" / "workflow"
    db = tmp_path / "s.duckdb"
    with Store(db) as st:  # each agent's history first: no run to join yet
        assert not ingest_paths(st, [run / "agents"]).errors
    assert _n_traces(db) == 3
    with Store(db) as st:
        res = ingest_paths(st, [run / "hub", run / "telemetry.otlp.json"])
        assert not res.errors and res.traces_superseded == 3
    assert _n_traces(db) == 1
    with Store(db, read_only=True) as st:
        [(fmt, kind)] = st.fetchall("SELECT source_format, json_extract_string(metadata, '$.run_key_kind') FROM traces")
        rows = st.fetchall("SELECT format, match_rule FROM run_sources ORDER BY format")
    assert (fmt, kind) == ("otel", "ag2x-channel")  # the spans: every model call with tokens
    assert sorted(r for f, r in rows if f == "ag2x-events") == [run_match.RULE_PART] * 3
    assert {r for f, r in rows if f != "ag2x-events"} == {None}  # WAL, audit log and spans: the channel id


def test_agents_sdk_and_openinference_are_tied_by_responses_ids(tmp_path):
    d = FW / "openai_agents"
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        assert not ingest_paths(st, [d / "processor.jsonl", d / "openinference.otlp.json"]).errors
        kinds = sorted(json.loads(m)["run_key_kind"] for (m,) in st.fetchall("SELECT metadata::VARCHAR FROM traces"))
        rules = st.fetchall("SELECT match_rule, count(*) FROM run_sources GROUP BY 1 ORDER BY 1")
    # the Responses run by its calls' ids; the two chat-completions runs by content and times
    assert kinds == ["openai-response", "otel-trace", "otel-trace"]
    assert rules == [(run_match.RULE_TIMED, 4), (None, 2)]


def test_poorer_artefacts_of_a_run_in_one_ingest_are_never_written(tmp_path):
    written: list[str] = []

    class Spy:
        tables = ("traces",)

        def on_write(self, store, batch):
            written.extend(r[0] for r in store.fetchall(f"SELECT source_format FROM {batch.traces}"))
    files = [f for f in _files(SELECTOR) if f.name not in ("save_state.json", "otel.otlp.json")]
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        res = ingest_paths(st, files, hooks=[Spy()])
        assert not res.errors
        assert (res.traces_new, res.alternates, res.traces_superseded) == (1, 4, 0)
        assert st.fetchall("SELECT count(*) FROM run_sources WHERE stored_trace_id IS NULL")[0][0] == 0
    assert written == ["autogen-events"]  # the four poorer artefacts were not written first


def test_a_touched_artefact_already_stored_loses_to_a_richer_one_in_its_group(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(SELECTOR / "task_result.json", d / "task_result.json")
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        ingest_paths(st, [d])
    shutil.copy(SELECTOR / "events.jsonl", d / "events.jsonl")
    os.utime(d / "task_result.json", ns=(2 * 10**18, 2 * 10**18))  # read again, same trace
    with Store(db) as st:
        assert not ingest_paths(st, [d]).errors
        assert st.fetchall("SELECT source_format FROM traces") == [("autogen-events",)]


def test_records_of_a_labelled_dataset_are_never_merged_by_content(tmp_path):
    """Copies of the MAST human records, each copy's dataset id and text marked apart (as a
    benchmark's copies are): every record stays its own trace, however alike their opening
    messages, task and agents (they have no times, so the content rule would take them)."""
    recs = json.loads((ROOT / "traces" / "mast-human" / "MAD_human_labelled_subset.json").read_text(encoding="utf-8"))
    recs = recs[:4]
    for k in range(3):
        copies = []
        for r in recs:
            c = dict(r)
            c["trace_id"] = f"{r['trace_id']}-copy{k}"
            c["trace"] = r["trace"] + f"\n[copy {k}]"  # other content: another trace id
            copies.append(c)
        (tmp_path / f"copy{k}.json").write_text(json.dumps(copies), encoding="utf-8")
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        res = ingest_paths(st, sorted(tmp_path.glob("copy*.json")))
        assert not res.errors
    assert _n_traces(db) == 3 * len(recs)
