"""Redaction in the store: every stored string field (identifiers too) before storage, the
count per trace, and no change at all to the fixtures but their planted secrets."""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import ROOT, write_json  # noqa: E402
from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.errors import MastError  # noqa: E402
from mast.ingest.finish import name_system  # noqa: E402
from mast.ingest.pipeline import _importer, expand, ingest_paths  # noqa: E402
from mast.redact import REDACTED  # noqa: E402
from mast.settings import Settings  # noqa: E402
from mast.store import Store  # noqa: E402

_rng = random.Random(7)


def _rand(n: int) -> str:
    return "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(n))


# made up, and built from pieces (no file holds a string a secret scanner would flag)
GH = "ghp" + "_" + _rand(36)
STRIPE = "sk" + "_live_" + _rand(24)
GOOGLE = "AI" + "za" + _rand(35)
NPM = "npm" + "_" + _rand(36)
JWT = "ey" + "J" + _rand(20) + ".ey" + "J" + _rand(30) + "." + _rand(40)
SLACK = "xo" + "xb-" + _rand(12) + "-" + _rand(20)
PASS = "Pw" + _rand(12)
SECRETS = [GH, STRIPE, GOOGLE, NPM, JWT, SLACK, PASS]


def _chat_file(tmp_path: Path) -> Path:
    """A generic message list with a secret in every field a file can set."""
    chat = {
        "system": f"crew-{GH}",                                    # traces.system
        "framework": f"fw {SLACK}",                                # traces.framework
        "task": f"deploy with postgres://app:{PASS}@db/prod",      # traces.task
        "messages": [
            {"role": "user", "name": f"planner-{STRIPE}", "content": "start", "service.name": f"svc-{GOOGLE}"},
            {"role": "assistant", "name": "coder", "content": f"token {JWT}",
             "tool_calls": [{"id": f"call-{NPM}", "type": "function",
                             "function": {"name": f"run_{GH}", "arguments": json.dumps({"key": STRIPE})}}]},
            {"role": "tool", "tool_call_id": f"call-{NPM}", "content": "ok"},
        ],
    }
    # and one in the file name (traces.source_path)
    return write_json(tmp_path / f"run-{GOOGLE}.json", chat)


def _ingest(db: Path, paths, keep_going=False):
    with Store(db) as st:
        return ingest_paths(st, paths, keep_going=keep_going, workers=0, hooks=ingest_hooks(Settings(db=str(db))))


def _write_path(monkeypatch, how: str) -> None:
    """Choose a write path: every batch binds the chain only for columns holding a hint
    ("hint-checked", the default); "whole-chain" binds it for every column, as it once did."""
    from mast.store import insert
    if how == "whole-chain":
        whole = insert.insert_sql
        monkeypatch.setattr(insert, "insert_sql", lambda table, scanned, *seq: whole(table, None, *seq))


@pytest.fixture(params=["hint-checked", "whole-chain"])
def precheck(request, monkeypatch):
    _write_path(monkeypatch, request.param)
    return request.param


def test_every_stored_string_is_redacted_identifiers_included(tmp_path, db, mast, precheck):
    summary = _ingest(db, [_chat_file(tmp_path)])
    assert summary.traces_new == 1 and not summary.errors
    with Store(db, read_only=True) as st:
        dumped = st.fetchall("SELECT (SELECT list(t::VARCHAR) FROM traces t)::VARCHAR, "
                             "(SELECT list(s::VARCHAR) FROM steps s)::VARCHAR, "
                             "(SELECT list(f::VARCHAR) FROM rule_step_features f)::VARCHAR, "
                             # what an artefact says of its run (task, system) is kept for its alternates
                             "(SELECT list(r.facts) FROM run_sources r)::VARCHAR")[0]
        [(tid,)] = st.fetchall("SELECT trace_id FROM traces")
        [trace] = st.load_traces([tid])
        counts = st.redaction_counts([tid])
    for table in dumped:
        for s in SECRETS:
            assert s not in table
    assert trace.system == f"crew-{REDACTED}" and trace.framework == f"fw {REDACTED}"
    assert trace.source_path.endswith(f"run-{REDACTED}.json")
    assert trace.task == f"deploy with postgres://app:{REDACTED}@db/prod"
    agents = [s.agent for s in trace.steps]
    assert f"planner-{REDACTED}" in agents
    call = next(s for s in trace.steps if s.tool_name)
    assert call.tool_name == f"run_{REDACTED}" and call.span_id == f"call-{REDACTED}"
    assert trace.steps[0].attributes["service.name"] == f"svc-{REDACTED}"
    # one marker per secret stored: system, framework (also copied into metadata), path,
    # task; agent, service.name; JWT; tool name, args, call id; the tool result's call id
    # and the tool name the importer copies onto it
    assert counts == {tid: 13}

    shown = json.loads(mast("traces", "show", tid[:12], "--json").stdout)
    assert shown["trace"]["redactions"] == 13
    text = mast("traces", "show", tid[:12]).stdout
    assert "redacted: 13" in text and not any(s in text for s in SECRETS)


def test_report_and_judge_prompt_hold_no_secret(tmp_path, db, mast):
    _ingest(db, [_chat_file(tmp_path)])
    out = tmp_path / "r.html"
    mast("report", "-o", out)
    html = out.read_text(encoding="utf-8")
    assert "crew-" in html and not any(s in html for s in SECRETS)

    # The prompt: from raw steps too (a caller that never stored them), names and task included.
    from mast.classify.judge.transcript import render_trace
    from mast.model import Step, StepKind
    steps = [Step(agent=f"a-{GH}", content="hi", kind=StepKind.TOOL_CALL, tool_name=f"t_{NPM}",
                  target_agent=f"b-{STRIPE}", status=f"error {SLACK}")]
    r = render_trace(steps, task=f"use {GOOGLE}")
    prompt = "\n".join(r.windows) + " ".join(r.agents) + (r.task or "")
    assert "a-" in prompt and not any(s in prompt for s in SECRETS)


# Secrets planted in the committed fixtures (and how the catalogue leaves them): nothing
# else in them may change when stored.
PLANTED = {
    "sk-mastfixture-ag2-key-1234567890abcdef": REDACTED,  # the AG2 generator's fake OpenAI key
    "mastfixturebearertoken0123456789": REDACTED,                  # and its Authorization header
    # AppWorld's made-up account passwords and access token, in the MAD traces, where they
    # are assigned (a bare mention in prose, "the access token %oxCE]q", has no shape to
    # catch: the catalogue's known limit)
    **{f'"password": "{p}"': f'"password": "{REDACTED}"'
       for p in ("_@+7@Ei", "FgP]brO", "YUtGXre", "eF@$eFT", "o1nzdVD", "tHH!E]U", "%oxCE]q")},
    **{f"access_token={q}%oxCE]q{q}": f"access_token={q}{REDACTED}{q}" for q in "'\""},
}


def _planted_out(v):
    if isinstance(v, str):
        for secret, shown in PLANTED.items():
            v = v.replace(secret, shown)
        return v
    if isinstance(v, dict):
        return {_planted_out(k): _planted_out(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_planted_out(x) for x in v]
    return v


_TEXT = ("agent", "role", "content", "tool_name", "tool_args", "target_agent", "status", "span_id", "parent_span_id")


def test_fixtures_change_only_where_secrets_were_planted(db):
    files = expand([ROOT / "tests" / "fixtures", ROOT / "traces"])
    raw = {}
    for f in files:
        try:
            imp, _ = _importer(f, "auto")
            traces = list(imp.read(f)) if imp else []
        except MastError:  # not a trace file (golden outputs, notes), or a deliberately bad one
            continue
        for t in traces:
            name_system(f, t, None)  # what ingest adds to every trace (system name, outcome reason)
            raw.setdefault(t.finalise().trace_id, t)
    assert len(raw) >= 75  # every framework, format and data set the project ships
    summary = _ingest(db, files, keep_going=True)
    with Store(db, read_only=True) as st:
        # One trace per run: an artefact whose run is stored from a richer one is an alternate.
        alternates = {r[0] for r in st.fetchall(
            "SELECT source_trace_id FROM run_sources WHERE source_trace_id <> stored_trace_id")}
        assert alternates and alternates <= set(raw)
        raw = {k: v for k, v in raw.items() if k not in alternates}
        stored = {t.trace_id: t for t in st.load_traces(list(raw))}
        counts = st.redaction_counts(list(raw))
    assert set(stored) == set(raw), summary.errors
    changed = 0
    for tid, r in raw.items():
        s = stored[tid]
        # what the run's trace took from an alternate artefact of its run is not this file's
        # (run_sources.inherited): compared as the alternate's, not as this artefact's
        took = (s.metadata or {}).pop("inherited", {})
        if "outcome_reason" in took:
            s.metadata.pop("outcome_reason")
        if s.metadata.get("system_from") == "artefact" and "system" in took:
            s.metadata["system_from"] = r.metadata.get("system_from")
        mine = lambda f, v, w: w if f in took else v  # noqa: E731
        assert (mine("system", s.system, r.system), s.framework, mine("task", s.task, r.task), s.source_path) == tuple(
            _planted_out(x) for x in (r.system, r.framework, r.task, str(Path(r.source_path)))), tid
        assert (s.metadata or None) == (_planted_out(json.loads(json.dumps(r.metadata))) or None), tid
        assert len(s.steps) == len(r.steps)
        for i, (a, b) in enumerate(zip(s.steps, r.steps)):
            for k in _TEXT:
                assert getattr(a, k) == _planted_out(getattr(b, k)), (tid, i, k)
            # (an empty dict is stored as NULL: the encoding's choice, not redaction's)
            assert (a.attributes or None) == (_planted_out(json.loads(json.dumps(b.attributes))) or None), (tid, i)
        # the count kept is one per planted secret in the trace's fields and steps
        fields = [r.system, r.framework, r.task, r.source_path, json.dumps(r.metadata)]
        fields += [json.dumps(b.attributes) if b.attributes else None for b in r.steps]
        fields += [getattr(b, k) for b in r.steps for k in _TEXT]
        assert counts[tid] == sum(f.count(secret) for f in fields if f for secret in PLANTED), tid
        changed += counts[tid] > 0
    assert changed >= 2  # the planted ones were found


def _dump(db: Path) -> list:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT (SELECT list(t::VARCHAR ORDER BY trace_id) FROM (SELECT * EXCLUDE (ingested_at) "
                           "FROM traces) t)::VARCHAR, (SELECT list(s::VARCHAR ORDER BY trace_id, step) FROM steps s)"
                           "::VARCHAR, (SELECT list(f::VARCHAR ORDER BY trace_id, step) FROM rule_step_features f)"
                           "::VARCHAR")


def test_skipping_the_chain_stores_what_the_whole_chain_stores(tmp_path, monkeypatch):
    # A secret in every field, hints in some columns only ("token" in a message, a key
    # name in arguments), and none at all: the columns skipped must be the ones the chain
    # would have left unchanged, with the same redaction counts.
    files = [_chat_file(tmp_path),
             write_json(tmp_path / "some.json", {"messages": [
                 {"role": "user", "content": "count the tokens please"},
                 {"role": "assistant", "name": "coder", "content": "ok", "tool_calls": [{
                     "id": "c1", "type": "function",
                     "function": {"name": "lookup", "arguments": json.dumps({"api_key": STRIPE, "q": 1})}}]}]}),
             write_json(tmp_path / "none.json", {"messages": [{"role": "user", "content": "hello"},
                                                              {"role": "assistant", "content": "hi"}]})]
    dumps = []
    for how in ("hint-checked", "whole-chain"):
        with monkeypatch.context() as m:
            _write_path(m, how)
            db = tmp_path / f"{how}.duckdb"
            for f in files:  # one batch each: a batch's columns are checked together
                assert not _ingest(db, [f]).errors
        dumps.append(_dump(db))
    assert dumps[0] == dumps[1]
    assert STRIPE not in dumps[0][0][1] and GH not in dumps[0][0][1] and REDACTED in dumps[0][0][1]


def test_a_batch_of_megabytes_is_hint_checked_to_its_last_row(tmp_path, monkeypatch):
    # Big batches are hint-checked too (they once took the chain for every column not NULL
    # throughout): one secret, in the last of ~8,000 steps (far past DuckDB's first vector
    # of rows) and in a column no other value has a hint in, is still redacted and counted.
    msgs = [{"role": "user" if i % 2 else "assistant", "name": f"agent{i % 3}", "content": f"step {i} " + "x" * 150}
            for i in range(8000)]
    msgs[-1]["name"] = f"planner-{GH}"
    f = tmp_path / "big.jsonl"  # one message a line: one trace for the file
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    assert f.stat().st_size > 1_000_000
    dumps = []
    for how in ("hint-checked", "whole-chain"):
        with monkeypatch.context() as m:
            _write_path(m, how)
            db = tmp_path / f"{how}.duckdb"
            assert not _ingest(db, [f]).errors
            with Store(db, read_only=True) as st:
                [(tid,)] = st.fetchall("SELECT trace_id FROM traces")
                assert st.redaction_counts([tid]) == {tid: 1}
                assert st.fetchall("SELECT count(*) FROM steps WHERE agent = ?", [f"planner-{REDACTED}"]) == [(1,)]
        dumps.append(_dump(db))
    assert dumps[0] == dumps[1]
    assert GH not in dumps[0][0][1]


@pytest.mark.parametrize("field", ["agent", "tool_name", "target_agent", "content", "status"])
def test_store_write_path_redacts_each_step_field(db, field):
    from mast.model import Outcome, Step, StepKind, Trace
    step = Step(agent="a", content="c", kind=StepKind.MESSAGE, role="assistant")
    setattr(step, field, f"x {GH} y")
    t = Trace(system="s", framework=None, source_format="test", source_path="p", source_index=0,
              task="t", outcome=Outcome.UNKNOWN, steps=[step])
    with Store(db) as st:
        with st.transaction():
            st.write_traces([t])
        [got] = st.load_traces([t.trace_id])
        assert getattr(got.steps[0], field) == f"x {REDACTED} y"
        assert st.redaction_counts([t.trace_id]) == {t.trace_id: 1}


def test_a_store_from_before_the_counts_reads_as_zero(db):
    from mast.model import Outcome, Step, StepKind, Trace
    t = Trace(system="s", framework=None, source_format="test", source_path="p", source_index=0, task=f"t {GH}",
              outcome=Outcome.UNKNOWN, steps=[Step(agent="a", content="c", kind=StepKind.MESSAGE)])
    with Store(db) as st:
        with st.transaction():
            st.write_traces([t])
        # as a store written before m050 looks (read-only opens never migrate)
        st.execute("ALTER TABLE steps DROP COLUMN redactions")
        st.execute("ALTER TABLE traces DROP COLUMN redactions")
        st.execute("DELETE FROM _migrations WHERE name = 'm050_redaction_counts'")
    with Store(db, read_only=True) as st:
        assert st.redaction_counts([t.trace_id]) == {t.trace_id: 0}
    with Store(db) as st:  # a write open migrates; the rows stored before count 0
        assert st.redaction_counts([t.trace_id]) == {t.trace_id: 0}


def test_run_key_alone_spares_the_metadata_the_chain_and_a_real_secret_beside_it_is_redacted(tmp_path):
    """Every keyed trace's metadata says ``"run_key":``, which the hint check does not count
    (mast.store.insert._CHECKED_AS); a secret in the same metadata is still found."""
    sdk = ROOT / "tests" / "fixtures" / "frameworks" / "openai_agents" / "processor.jsonl"
    plain = tmp_path / "plain" / "processor.jsonl"
    plain.parent.mkdir()
    plain.write_bytes(sdk.read_bytes())
    lines = sdk.read_text().splitlines()
    first = json.loads(lines[0])
    assert first["object"] == "trace"
    first["metadata"] = {"deploy": f"api_key={STRIPE}"}
    secret = tmp_path / "secret" / "processor.jsonl"
    secret.parent.mkdir()
    secret.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    by_file = {}
    for p in (plain, secret):  # one store each: the two files are one run
        with Store(tmp_path / f"{p.parent.name}.duckdb") as st:
            assert not any(f.error for f in ingest_paths(st, [p]).files)
            by_file[p.parent.name] = st.fetchall("SELECT metadata, redactions FROM traces")
    assert all('"run_key":' in md for rows in by_file.values() for md, _ in rows)
    assert by_file["plain"] and all(n == 0 for _, n in by_file["plain"])
    hit = [md for md, n in by_file["secret"] if n]
    assert len(hit) == 1 and STRIPE not in hit[0] and REDACTED in hit[0]


def test_no_run_key_kind_is_a_value_the_chain_would_change():
    """Why the check may skip ``"run_key":``: the value after it starts with its kind, which
    no pass of the catalogue changes, whatever the id after the colon."""
    import re as _re

    from mast.redact import redact
    src = (ROOT / "mast" / "ingest" / "identity.py").read_text()
    kinds = set(_re.findall(r'"([a-z0-9-]+):" \+', src))
    assert len(kinds) >= 10, kinds  # every key is "<kind>:<the framework's ids>"
    for kind in kinds:
        for rid in (_rand(40), "resp_" + _rand(48), f"{_rand(8)}-{_rand(4)}-{_rand(12)}"):
            text = json.dumps({"run_key": f"{kind}:{rid}", "run_key_kind": kind})
            assert redact(text) == text, kind
