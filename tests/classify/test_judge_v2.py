"""Judge prompt v2: few-shot examples (bundled and the user's own), the swap that keeps an
example out of its own trace's prompt, redaction, cache keys, the byte-identical prefix and
the lean rendering, on real labelled traces (traces/mast-human, traces/mast-lint-community)
in a real store, and end to end against the loopback server."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.judge.examples import load_examples  # noqa: E402
from mast.classify.judge.transcript import RenderOptions, render_trace  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.errors import UsageError  # noqa: E402
from mast.model import Step  # noqa: E402
from mast.redact import REDACTED  # noqa: E402
from mast.resources import data_dir  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import load  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MAD = ROOT / "traces" / "mast-human" / "MAD_human_labelled_subset.json"
COMMUNITY = ROOT / "traces" / "mast-lint-community" / "raw_ag2_records_sample.json"
BUNDLED = data_dir("classifiers") / "judge" / "v2" / "examples.json"
MODES = load().mode_ids
SECRET = "sk-proj-" + "Z9" * 12


@pytest.fixture(scope="module")
def store_db(tmp_path_factory) -> Path:
    from mast.ingest.pipeline import ingest_paths
    db = tmp_path_factory.mktemp("v2") / "store.duckdb"
    with Store(db) as st:
        ingest_paths(st, [MAD, COMMUNITY])
    return db


def by_record(db: Path) -> dict:
    with Store(db) as st:
        return {json.loads(m).get("trace_id"): tid for tid, m in st.fetchall("SELECT trace_id, metadata FROM traces")}


def job_for(db: Path, tid: str, **kw):
    clf = create("judge", model="m", **kw)
    with Store(db) as st:
        return clf.jobs().jobs_for(st, [tid])[0]


def example(i: int, mode: str, source: str, excerpt: str | None = None, **extra) -> dict:
    return {"id": f"ex{i}", "mode": mode, "verdict": "present",
            "excerpt": excerpt or f"[4] coder message: example {i} shows {mode}\n[5] tester message: ok",
            "evidence_steps": [4], "rationale": f"because {i}", "source": {"trace_id": source, "dataset": "mine",
                                                                          "record": i}, **extra}


def write_examples(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps({"format": "mast-judge-examples", "version": 1, "taxonomy": "mast-v1",
                                "examples": items}), encoding="utf-8")
    return path


# -- the bundled file -------------------------------------------------------------------------

def test_bundled_examples_load_and_name_their_sources():
    ex = load_examples(BUNDLED, MODES, user=False)
    assert ex.examples and not ex.user
    for e in ex.examples:
        assert e.source_trace.startswith("t-") or len(e.source_trace) > 8
        assert e.source["dataset"] in ("mast-human", "mast-lint-community") and e.source["licence"]
        for s in e.evidence_steps:
            assert f"[{s}]" in e.excerpt
    notice = (BUNDLED.parent / "EXAMPLES-NOTICE.md").read_text(encoding="utf-8")
    assert "CC-BY-4.0" in notice and "Apache-2.0" in notice


def test_v2_renders_real_traces_with_examples_and_fixed_prefix_first(store_db):
    ids = by_record(store_db)
    a = job_for(store_db, ids[4], prompt="v2")            # MAD MetaGPT record 4
    b = job_for(store_db, ids["rate-limiter"], prompt="v2")
    sys_a, user_a = a.messages[0]
    sys_b, user_b = b.messages[0]
    assert sys_a["role"] == "system" and sys_a == sys_b          # byte-identical fixed part ...
    assert user_a["content"] != user_b["content"]                # ... and what varies comes after it
    for j in (a, b):
        nonce = j.messages[0][1]["content"].split("Delimiter tag for this trace: ")[1][:16]
        assert nonce not in sys_a["content"]
        assert f"BEGIN TRACE DATA {nonce}" in j.messages[0][1]["content"]
    assert "BEGIN EXAMPLE DATA 1" in sys_a["content"] and "\nExamples: " in sys_a["content"]
    assert "[0] " in user_a["content"] and "valid step numbers are 0 to" in user_a["content"]
    # v1 is still selectable and has no examples
    v1 = job_for(store_db, ids[4], prompt="v1")
    assert "Worked examples" not in v1.messages[0][0]["content"]


def test_example_from_the_judged_trace_is_swapped_for_another_of_its_mode(store_db):
    ids = by_record(store_db)
    ex = load_examples(BUNDLED, MODES, user=False)
    own = [e for e in ex.examples if e.source_trace == ids[16]]       # MAD MetaGPT record 16 is a source
    assert own, "record 16 should be the source of a bundled example"
    judged = job_for(store_db, ids[16], prompt="v2").messages[0][0]["content"]
    other = job_for(store_db, ids[4], prompt="v2").messages[0][0]["content"]
    for e in own:
        first = " ".join(e.excerpt.split()[:12])
        assert first in other and first not in judged
        alt = next(x for x in ex.examples if x.mode == e.mode and x.source_trace != ids[16])
        assert " ".join(alt.excerpt.split()[:12]) in judged


def test_user_examples_swap_and_drop(store_db, tmp_path):
    ids = by_record(store_db)
    f = write_examples(tmp_path / "mine.json", [example(1, "1.2", ids[4]), example(2, "1.2", "t-elsewhere"),
                                                example(3, "2.4", ids[4])])
    judged = job_for(store_db, ids[4], prompt="v2", examples=str(f)).messages[0][0]["content"]
    assert "example 2 shows 1.2" in judged
    assert "example 1 shows" not in judged and "example 3 shows" not in judged   # no other 2.4 example: none
    other = job_for(store_db, ids[2], prompt="v2", examples=str(f)).messages[0][0]["content"]
    assert "example 1 shows 1.2" in other and "example 3 shows 2.4" in other and "example 2" not in other


# -- user files: validation, redaction, cache keys --------------------------------------------------

@pytest.mark.parametrize("content, says", [
    ('{"format": "mast-judge-examples", "version": 1, "examples": [', "not JSON"),
    ('{"format": "other", "version": 1, "examples": []}', "not a mast-judge-examples file"),
    ('{"format": "mast-judge-examples", "version": 2, "examples": []}', "version 2 is not supported"),
])
def test_bad_examples_file_is_refused_naming_it(tmp_path, content, says):
    f = tmp_path / "bad.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as e:
        create("judge", model="m", prompt="v2", examples=str(f))
    assert str(f) in str(e.value) and says in str(e.value)


@pytest.mark.parametrize("change, says", [
    ({"mode": "9.9"}, "mode '9.9' is not in the taxonomy"),
    ({"evidence_steps": [7]}, "evidence step(s) [7] are not shown in the excerpt"),
    ({"verdict": "maybe"}, "verdict must be"),
    ({"source": {"dataset": "x"}}, "source.trace_id"),
    ({"excerpt": "[4] " + "x" * 5000}, "more than 4,000"),
])
def test_bad_example_is_refused_naming_file_and_example(tmp_path, change, says):
    f = write_examples(tmp_path / "mine.json", [example(0, "1.2", "t-a"), {**example(1, "1.3", "t-b"), **change}])
    with pytest.raises(UsageError) as e:
        load_examples(f, MODES)
    assert f"{f}, example 1 (ex1)" in str(e.value) and says in str(e.value)


def test_cli_bad_examples_file_exits_nonzero_and_stores_no_run(db, mast, tmp_path):
    shutil.copy(MAD, tmp_path / "mad.json")
    mast("ingest", tmp_path / "mad.json")
    f = write_examples(tmp_path / "mine.json", [example(0, "4.4", "t-a")])
    res = mast("classify", "--with", "judge", "-m", "m", "--base-url", "http://127.0.0.1:9", "-C", "prompt=v2",
               "-C", f"examples={f}", expect=None)
    assert res.exit_code != 0
    assert str(f) in res.stderr and "example 0 (ex0)" in res.stderr
    with Store(db) as st:
        assert st.fetchall("SELECT count(*) FROM runs WHERE classifier = 'judge'") == [(0,)]


def test_examples_need_a_prompt_that_shows_them(tmp_path):
    f = write_examples(tmp_path / "mine.json", [example(0, "1.2", "t-a")])
    with pytest.raises(UsageError, match="shows no examples"):
        create("judge", model="m", prompt="v1", examples=str(f))


def test_examples_are_redacted_like_traces(store_db, tmp_path):
    ids = by_record(store_db)
    f = write_examples(tmp_path / "mine.json", [example(0, "1.2", "t-a", excerpt=f"[4] coder message: key {SECRET}",
                                                        rationale=f"api_key={SECRET}")])
    text = job_for(store_db, ids[4], prompt="v2", examples=str(f)).messages[0][0]["content"]
    assert SECRET not in text and text.count(REDACTED) >= 2     # excerpt and rationale


def test_cache_key_follows_prompt_version_and_examples_digest(store_db, tmp_path):
    ids = by_record(store_db)
    tid = ids[4]
    f1 = write_examples(tmp_path / "a.json", [example(0, "1.2", "t-a")])
    f2 = write_examples(tmp_path / "b.json", [example(0, "1.2", "t-a", rationale="another reason")])
    k_v1 = job_for(store_db, tid, prompt="v1").key
    k_v2 = job_for(store_db, tid, prompt="v2").key
    k_a = job_for(store_db, tid, prompt="v2", examples=str(f1)).key
    k_b = job_for(store_db, tid, prompt="v2", examples=str(f2)).key
    assert len({k_v1, k_v2, k_a, k_b}) == 4
    assert job_for(store_db, tid, prompt="v2", examples=str(f1)).key == k_a      # stable
    clf = create("judge", model="m", prompt="v2", examples=str(f1))
    assert clf.arguments()["prompt_version"] == "judge-v2.1"
    assert clf.params()["examples"] == load_examples(f1, MODES).digest
    assert "examples" not in create("judge", model="m", prompt="v2").params()


# -- the lean rendering ------------------------------------------------------------------------------

def test_lean_rendering_absorbs_short_repeats_and_splits_escaped_newlines():
    code = "\n".join(["def f(x):", "    return x + 1  # the addition we keep using", "", "}", "}"] * 3)
    escaped = "{'code': '" + code.replace("\n", "\\n") + "'}"
    steps = [Step("coder", code), Step("reviewer", "see\n" + code), Step("planner", escaped)]
    std = render_trace(steps)
    lean = render_trace(steps, opts=RenderOptions(split_escaped=True, drop_blank=True, absorb_short=True))
    assert sum(map(len, lean.windows)) < sum(map(len, std.windows))
    assert lean.coverage.chars_elided == 0 and lean.coverage.fraction == 1.0
    step1 = lean.windows[0].split("[1] reviewer")[1].split("[2] planner")[0]
    assert "}" not in step1 and "lines repeated from earlier in the trace" in step1
    assert "return x + 1" not in lean.windows[0].split("[2] planner")[1]      # the escaped copy collapsed too


def test_lean_never_caps_steps_other_classifiers_point_to():
    big = "\n".join(f"row {i} unique output value {i * 7919}" for i in range(800))
    steps = [Step("a", "go"), Step("tool", big), Step("a", "done"), Step("b", "x"), Step("tool", big + " again")]
    opts = RenderOptions(max_step_chars=2000, head_chars=1200)
    free = render_trace(steps, opts=opts)
    kept = render_trace(steps, opts=opts, keep=[1])
    assert "chars of step 1 elided" in free.windows[0]
    assert "chars of step 1 elided" not in kept.windows[0] and "row 799 " in kept.windows[0]
    assert kept.coverage.fraction > free.coverage.fraction


# -- end to end: a prefix-caching server sees the shared prefix ----------------------------------------

def test_v2_run_end_to_end_and_the_prefix_is_served_from_cache(store_db, tmp_path):
    db = tmp_path / "e2e.duckdb"
    shutil.copy(store_db, db)
    ids = by_record(db)
    srv = OpenAIServer().start()
    try:
        clf = create("judge", model="m", base_url=srv.base_url, prompt="v2", concurrency=1, base_wait=0.01)
        with Store(db) as st:
            res = run(st, clf, Selection(), trace_ids=[ids[4], ids[2], ids["rate-limiter"]])
        assert res.done == 3 and res.failed == 0
        systems = [b["messages"][0]["content"] for b in srv.chat_bodies]
        assert len(set(systems)) == 1
        with Store(db) as st:
            assert st.fetchall("SELECT count(DISTINCT trace_id) FROM annotations WHERE annotator = 'judge:m'") == [(3,)]
        # the loopback server reported the shared fixed part as cached from the second request on
        fixed = len(systems[0]) // 4
        assert srv.cached_reported[0] == 0
        assert all(1024 <= c <= fixed for c in srv.cached_reported[1:])
        # ... and the judge kept what the server said: per run (runs.tokens_cached, migration m180) and per
        # cached verdict, beside the prompt tokens it is a part of
        reported = sum(srv.cached_reported)
        assert res.tokens_cached == clf.stats.tokens_cached == reported
        with Store(db) as st:
            assert st.fetchall("SELECT tokens_cached, tokens_in FROM runs WHERE run_id = ?", [res.run_id]) == \
                [(reported, res.tokens_in)]
            per_trace = st.fetchall("SELECT tokens_cached FROM judge_cache ORDER BY created_at")
        assert sorted(c for (c,) in per_trace) == sorted(srv.cached_reported)
    finally:
        srv.stop()


# -- your own examples from a reviewed labels file ------------------------------------------------------

def test_labels_file_converts_to_examples_the_judge_loads(store_db, tmp_path):
    import subprocess

    from mast.review import sample_for_review
    db = tmp_path / "review.duckdb"
    shutil.copy(store_db, db)
    with Store(db) as st:
        rs = sample_for_review(st, 2, strategy="random")
    t0, t1 = [t.trace_id for t in rs.traces][:2]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"format": "mast-review-labels", "version": 1, "review_set": rs.review_set,
                                  "reviewer": "ann", "taxonomy": "mast-v1", "labels": [
                                      {"trace_id": t0, "mode": "1.3", "label": "present", "evidence_steps": [1],
                                       "note": f"looped; token {SECRET}"},
                                      {"trace_id": t1, "mode": "3.2", "label": "present", "evidence_steps": []},
                                      {"trace_id": t1, "mode": "1.1", "label": "absent"}]}), encoding="utf-8")
    out = tmp_path / "mine.json"
    subprocess.run([sys.executable, str(ROOT / "classifiers" / "judge" / "select_examples.py"), "--from-labels",
                    str(labels), "--db", str(db), "-o", str(out)], check=True, capture_output=True)
    ex = load_examples(out, MODES)
    assert [(e.mode, e.source_trace, e.evidence_steps) for e in ex.examples] == [("1.3", t0, (1,))]
    assert SECRET not in out.read_text(encoding="utf-8")              # redacted when written
    other = next(tid for tid in by_record(db).values() if tid != t0)
    assert "BEGIN EXAMPLE DATA 1" in job_for(db, other, prompt="v2", examples=str(out)).messages[0][0]["content"]
    assert "BEGIN EXAMPLE DATA" not in job_for(db, t0, prompt="v2", examples=str(out)).messages[0][0]["content"]


# -- v2.1: the coverage floor and the short markers ------------------------------------------------------

def test_lean_cuts_the_longest_free_steps_only_down_to_the_coverage_floor():
    from dataclasses import replace

    from mast.classify.judge.jobs import LEAN_COVERAGE_FLOOR, lean

    def dump(tag: str, n: int) -> str:
        return "\n".join(f"{tag} row {i}: value {i * 7919 % 100_003} for key {tag}{i}" for i in range(n))

    big, mid, kept = dump("big", 180), dump("mid", 40), dump("kept", 180)
    # below the fixed cap (only the floor acts) and shown as one part each
    assert len(kept) < min(lean(RenderOptions()).max_step_chars, RenderOptions().part_chars)
    steps = [Step("a", "go"), Step("tool", big), Step("a", "look"), Step("b", "short note"),
             Step("tool", mid), Step("c", "ok"), Step("tool", kept), Step("a", "end")]
    opts = lean(RenderOptions())
    whole = render_trace(steps, opts=replace(opts, coverage_floor=0.0), keep=[6])
    r = render_trace(steps, opts=opts, keep=[6])
    text = r.windows[0]
    assert whole.coverage.fraction == 1.0
    assert LEAN_COVERAGE_FLOOR <= r.coverage.fraction < 1.0
    # the longest free step gave way; the shorter one and the kept step (a classifier points to it) are whole
    assert "chars of step 1 elided" in text and "big row 0:" in text and "big row 179:" in text
    assert 0 < sum(f"big row {i}:" not in text for i in range(180)) < 40      # its middle, not all of it
    assert mid in text and kept in text
    # a lower floor cuts more (now the shorter step too), and never past the floor
    lower = render_trace(steps, opts=replace(opts, coverage_floor=0.5), keep=[6])
    assert 0.5 <= lower.coverage.fraction < r.coverage.fraction
    assert "chars of step 4 elided" in lower.windows[0] and kept in lower.windows[0]
    assert len(lower.windows[0]) < len(text) < len(whole.windows[0])


def test_v2_explains_exactly_the_short_markers_the_lean_rendering_writes(store_db):
    import re as _re
    steps = [Step("a", "x" * 50 + " the same long line\n" + "y" * 60), Step("b", "other"),
             Step("a", "x" * 50 + " the same long line\n" + "y" * 60),
             Step("c", "z" * 45 + "\n" + "x" * 50 + " the same long line\n" + "y" * 60)]
    from mast.classify.judge.jobs import lean
    text = render_trace(steps, opts=lean(RenderOptions())).windows[0]
    markers = set(_re.findall(r"\(= step \d+\)|\[\.\.\. \d+ repeated lines? \.\.\.\]", text))
    assert {"(= step 0)", "[... 2 repeated lines ...]"} <= markers
    system = job_for(store_db, by_record(store_db)[4], prompt="v2").messages[0][0]["content"]
    assert '"(= step 17)"' in system and '"[... 12 repeated lines ...]"' in system
    assert "repeated from earlier in the trace" not in text and "exact repeat of step" not in text


def test_v1_cache_keys_do_not_change_with_the_render_options_v2_1_added(store_db):
    """A v1 verdict cached before v2.1 is still found: the new render options are left out of the
    key while at their defaults (the key's render part is exactly the options v1 always had)."""
    from dataclasses import fields

    from mast.classify.judge.jobs import _LATER_RENDER_FIELDS
    v1 = create("judge", model="m").params()["render"]
    assert set(v1) == {f.name for f in fields(RenderOptions)} - set(_LATER_RENDER_FIELDS)
    v2 = create("judge", model="m", prompt="v2").params()["render"]
    assert v2["short_markers"] is True and v2["coverage_floor"] > 0
