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

from conftest import unwrapped

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "tests" / "fixtures" / "frameworks"

#: Per fixture folder, the runs its generator executed and the artefacts each wrote
#: (``runs.json``, written by the generators: ``_venvs.record_runs``), not from mast.
#: Every run of a generator differs from its other runs as real runs do (the scripted
#: models word their answers differently run by run), so every artefact fits one run.
RUNS = json.loads((FW / "runs.json").read_text())
FOLDERS = {rel: len(entry["runs"]) for rel, entry in RUNS.items()}


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
            and not p.name.startswith(".") and p.parent != FW and p.relative_to(FW).parts[0] not in NOT_PINNED}
    assert have == set(FOLDERS)
    for rel, entry in RUNS.items():  # each artefact of the folder is the work of one run
        listed = [a for run in entry["runs"] for a in run]
        on_disk = {p.relative_to(FW / rel).parts[0] for p in _files(FW / rel)}
        assert on_disk == set(listed), rel
        assert len(set(listed)) == len(listed) or rel == "openai_agents", rel  # its three runs share files


@pytest.mark.parametrize("rel", sorted(FOLDERS))
def test_all_artefacts_of_n_runs_give_n_traces(rel, tmp_path):
    db = tmp_path / "s.duckdb"
    files = _files(FW / rel)
    with Store(db) as st:
        res = ingest_paths(st, files)
        assert not res.errors
    assert _n_traces(db) == FOLDERS[rel]
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
        # and the artefacts of each run are that run's trace (a folder tree is one run)
        by_file = dict(st.fetchall("SELECT path, list(DISTINCT stored_trace_id) FROM run_sources GROUP BY 1"))
    for run in RUNS[rel]["runs"]:
        if rel == "openai_agents" or rel.startswith("ag2x"):
            continue  # files shared by runs / a tree: the count above says it
        ids = {t for a in run for p, ts in by_file.items() if Path(p).name == a for t in ts}
        assert len(ids) == 1, (rel, run)


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


def test_two_runs_that_read_alike_keep_an_artefact_without_times_apart_and_say_so(mast, db, tmp_path):
    # The file logger's run made to read exactly like the sqlite run (the scripted model's
    # second wording put back to the first): ChatResult, with no times and no id the
    # loggers know, then fits both runs alike, so it joins neither and the note names them
    twoagent = FW / "ag2" / "twoagent"
    d = tmp_path / "alike"
    d.mkdir()
    for f in ("runtime_logging.db", "chat_result.json"):
        shutil.copy(twoagent / f, d / f)
    import sys
    sys.path.insert(0, str(FW / "generators"))
    from gen_ag2 import WEATHER  # how the scripted model worded each run's answer

    log = (twoagent / "runtime.log").read_text()
    assert WEATHER[1] in log and WEATHER[0] not in log
    (d / "runtime.log").write_text(log.replace(WEATHER[1], WEATHER[0]))
    res = mast("ingest", d / "runtime_logging.db", d / "runtime.log", d / "chat_result.json")
    err = " ".join(res.stderr.split())
    assert "looks like the same run as" in err and "merged by content" not in err
    assert "runtime_logging.db" in err and "chat_result.json" in err
    assert _n_traces(db) == 3
    with Store(tmp_path / "two.duckdb") as st:
        res = ingest_paths(st, [d])
    pairs = {(Path(a).name, Path(b).name) for a, b in res.same_run}
    assert ("runtime_logging.db", "chat_result.json") in pairs and not res.merged_by_content
    # as the generator wrote them (the runs worded apart), ChatResult joins its own run only
    with Store(tmp_path / "three.duckdb") as st:
        res = ingest_paths(st, [twoagent])
    merged = {(Path(a).name, Path(b).name) for a, b in res.merged_by_content}
    assert ("chat_result.json", "runtime_logging.db") in merged and not res.same_run


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


TAU = ROOT / "tests" / "fixtures" / "formats" / "trajectory" / "tau-bench-gpt-4o-airline.excerpt.json"


@pytest.mark.parametrize("form", ["trajectory", "messages"])
def test_two_artefacts_of_one_kind_that_no_id_ties_are_two_runs(tmp_path, form):
    """A run writes one artefact of each kind: two τ-bench records (or two message lists) that
    read alike for their first messages and part later, with no times, are two runs, not one
    run by content (on main the second was merged into the first, and one trace was left)."""
    if form == "trajectory":
        [rec] = json.loads(TAU.read_text(encoding="utf-8"))[:1]
        other = json.loads(json.dumps(rec))
        other["traj"][-1]["content"] = "Your booking is cancelled; the refund takes 5 days."
        docs = [[rec], [other]]
        assert len(rec["traj"]) > 2
    else:
        said = [{"role": "user", "content": "Plan three days in Rome."}] + [
            {"role": "assistant", "name": "planner" if i % 2 else "critic", "content": f"Day {i}: stop {i}."}
            for i in range(10)]
        other = [dict(m) for m in said]
        other[-1]["content"] = "Day 9: a rest day instead."
        docs = [said, other]
    for k, doc in enumerate(docs):
        (tmp_path / f"run{k}.json").write_text(json.dumps(doc), encoding="utf-8")
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        res = ingest_paths(st, [tmp_path / "run0.json", tmp_path / "run1.json"])
        assert not res.errors and not res.merged_by_content
        assert not res.same_run  # one kind, two artefacts: two runs by that alone, nothing to say
        fmts = {f for (f,) in st.fetchall("SELECT source_format FROM traces")}
    assert fmts == {form}
    assert _n_traces(db) == 2


ROUNDROBIN = FW / "autogen" / "0.7.5" / "roundrobin"


@pytest.mark.parametrize("order", ["together", "log_first", "result_first"])
def test_the_chosen_artefact_inherits_what_only_an_alternate_knows(tmp_path, order, mast, db):
    """AgentChat's event log wins its run, but only the TaskResult says why the run stopped
    (its stop reason): the stored trace takes the reason from it, in any order of arrival,
    and ``traces show`` says which alternate it came from."""
    log, result = ROUNDROBIN / "events.jsonl", ROUNDROBIN / "task_result.json"
    groups = {"together": [[log, result]], "log_first": [[log], [result]], "result_first": [[result], [log]]}[order]
    for g in groups:
        mast("ingest", *g)
    stop = json.loads(result.read_text())["stop_reason"]
    assert stop
    with Store(db, read_only=True) as st:
        [(tid, fmt, meta)] = st.fetchall("SELECT trace_id, source_format, metadata::VARCHAR FROM traces")
        [(facts,)] = st.fetchall("SELECT facts FROM run_sources WHERE path = ?", [str(log.resolve())])
    assert fmt == "autogen-events" and "outcome_reason" not in json.loads(facts)  # the log itself does not say
    assert json.loads(meta)["outcome_reason"] == stop
    shown = json.loads(mast("traces", "show", "--json", tid).stdout)
    [chosen] = [s for s in shown["sources"] if s["chosen"]]
    assert chosen["inherited"] == {"outcome_reason": {"path": str(result.resolve()), "format": "autogen"}}
    text = "".join(unwrapped(mast("traces", "show", tid).stdout).split())  # a long path wraps anywhere
    assert "".join(f"outcome reason from the alternate {result.resolve()} (autogen)".split()) in text


def test_a_fact_is_taken_from_the_richest_alternate_that_has_it_and_never_over_the_winners_own():
    from mast.store.sources import inherit

    def row(path, fmt, rank, facts):
        return {"path": path, "format": fmt, "rank": rank, "steps": 5, "source_trace_id": path,
                "facts": json.dumps(facts)}
    win = row("events.jsonl", "autogen-events", 50, {"task": "what the log says", "tokens": [10, 2]})
    rs = [win, row("messages.json", "autogen", 10, {"task": "other", "outcome_reason": "from the message list",
                                                    "system": "named-by-messages"}),
          row("task_result.json", "autogen", 20, {"outcome_reason": "Text 'APPROVE' mentioned", "tokens": [99, 9]})]
    taken, where = inherit(win, rs)
    assert taken == {"outcome_reason": "Text 'APPROVE' mentioned", "system": "named-by-messages"}
    assert where == {"outcome_reason": {"path": "task_result.json", "format": "autogen"},
                     "system": {"path": "messages.json", "format": "autogen"}}
    assert inherit(win, [win]) == ({}, {})
