"""Your own few-shot examples: `mast labels examples` writes them from a review set's human
labels, `mast classify --with judge --examples FILE` judges with them (v2), a trace that is
itself an example has it swapped out, the cache keys on the examples' content, and a bad
file stops the run before anything is stored.

Real store in a temp dir, the CLI in-process, the judge through the official client against
the loopback OpenAI-compatible server (tests/_openai_server.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer  # noqa: E402

from mast.classify.judge.examples import load_examples  # noqa: E402
from mast.model import Step, Trace  # noqa: E402
from mast.review import sample_for_review  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import load  # noqa: E402
from tests.conftest import unwrapped  # noqa: E402

MODES = load().mode_ids
SECRET = "sk-proj-" + "Q7" * 12


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def reviewed_store(db: Path, mast) -> tuple[str, list[str]]:
    """Three traces in a review set; reviewer ann marks 1.3 on the first (with evidence and a
    note carrying a key), reviewer bob marks 1.3 on the second, and 3.2 without evidence."""
    traces = [Trace("sys", "test", "generic", "mem.json", i,
                    [Step("user", f"Task {i}: add the numbers of list {i}."),
                     Step("solver", f"The sum of list {i} is {i * 7}."),
                     Step("solver", f"The sum of list {i} is {i * 7}."),
                     Step("critic", f"Checked list {i}; done.")], task=f"sum list {i}")
              for i in range(3)]
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    with Store(db) as st:
        rs = sample_for_review(st, 3, strategy="random")
    ids = [t.trace_id for t in sorted(rs.traces, key=lambda t: t.trace_id)]
    for reviewer, labels in (
            ("ann", [{"trace_id": ids[0], "mode": "1.3", "label": "present", "evidence_steps": [2, 1],
                      "note": f"the solver repeats itself; key {SECRET}"},
                     {"trace_id": ids[0], "mode": "1.1", "label": "absent"}]),
            ("bob", [{"trace_id": ids[1], "mode": "1.3", "label": "present", "evidence_steps": [2]},
                     {"trace_id": ids[1], "mode": "3.2", "label": "present", "evidence_steps": []}])):
        path = db.parent / f"{reviewer}.json"
        path.write_text(json.dumps({"format": "mast-review-labels", "version": 1, "review_set": rs.review_set,
                                    "reviewer": reviewer, "taxonomy": "mast-v1", "labels": labels}))
        mast("labels", "import", path)
    return rs.review_set, ids


def system_of(srv: OpenAIServer, trace_text: str) -> str:
    """The system message of the request that judged the trace containing ``trace_text``."""
    return next(b["messages"][0]["content"] for b in srv.chat_bodies if trace_text in b["messages"][-1]["content"])


def test_examples_from_a_review_set_are_checked_redacted_and_swapped_for_their_own_trace(db, mast, server):
    rs, ids = reviewed_store(db, mast)
    out = db.parent / "mine.json"
    res = mast("labels", "examples", "--review-set", rs, "-o", out, "--json")
    summary = json.loads(res.stdout)
    assert (summary["examples"], summary["modes"], summary["reviewers"]) == (2, ["1.3"], ["ann", "bob"])
    assert "3.2" in summary["modes_without"]            # bob's 3.2 named no evidence step: no example
    text = out.read_text(encoding="utf-8")
    assert SECRET not in text and "[REDACTED]" in text
    ex = load_examples(out, MODES)
    assert [(e.source_trace, e.evidence_steps) for e in ex.examples] == [(ids[0], (1, 2)), (ids[1], (2,))]
    assert "[1] solver message: The sum of list" in ex.examples[0].excerpt

    base = ["classify", "--with", "judge", "-m", "m", "--base-url", server.base_url, "--examples", out,
            "-C", "concurrency=1", "--json"]
    run1 = json.loads(mast(*base).stdout)
    assert (run1["done"], run1["failed"]) == (3, 0)
    with Store(db) as st:
        (pv,), = st.fetchall("SELECT DISTINCT json_extract_string(arguments, '$.prompt_version') FROM runs "
                             "WHERE classifier = 'judge'")
    assert pv == "judge-v2.1"                            # --examples alone chose the prompt that shows them
    # each trace's prompt: never its own example; ann's (ids[0]) is first of mode 1.3, so bob's replaces it
    # for ids[0] only
    own0, own1 = ex.examples[0].excerpt, ex.examples[1].excerpt
    msgs = {tid: system_of(server, body) for tid, body in zip(ids, _task_texts(db, ids))}
    assert own0 not in msgs[ids[0]] and own1 in msgs[ids[0]]
    assert own0 in msgs[ids[1]] and own1 not in msgs[ids[1]]
    assert own0 in msgs[ids[2]]
    assert SECRET not in json.dumps(server.chat_bodies)

    # the cache keys on the examples' content: the same file again is free, an edited one is asked again
    sent = len(server.chat_bodies)
    run2 = json.loads(mast(*base).stdout)
    assert run2["judge"]["cached"] == 3 and len(server.chat_bodies) == sent
    doc = json.loads(out.read_text(encoding="utf-8"))
    doc["examples"][1]["rationale"] = "bob: the same line twice"
    out.write_text(json.dumps(doc), encoding="utf-8")
    run3 = json.loads(mast(*base).stdout)
    assert run3["judge"]["cached"] == 0 and len(server.chat_bodies) == sent + 3


def _task_texts(db: Path, ids: list[str]) -> list[str]:
    with Store(db) as st:
        tasks = dict(st.fetchall("SELECT trace_id, task FROM traces"))
    return [f"Task {tasks[t].split()[-1]}:" for t in ids]


def test_a_bad_examples_file_names_the_record_and_stores_nothing(db, mast, server):
    rs, ids = reviewed_store(db, mast)
    out = db.parent / "mine.json"
    mast("labels", "examples", "--review-set", rs, "-o", out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    doc["examples"][1]["evidence_steps"] = [9]           # hand-edited: a step the excerpt does not show
    out.write_text(json.dumps(doc), encoding="utf-8")
    res = mast("classify", "--with", "judge", "-m", "m", "--base-url", server.base_url, "--examples", out,
               expect=None)
    assert res.exit_code != 0
    msg = unwrapped(res.stderr)
    assert f"example 1 ({doc['examples'][1]['id']})" in msg and "evidence step(s) [9]" in msg
    out.write_text(out.read_text(encoding="utf-8")[:200], encoding="utf-8")   # truncated
    res = mast("classify", "--with", "judge", "-m", "m", "--base-url", server.base_url, "--examples", out,
               expect=None)
    assert res.exit_code != 0 and "not JSON" in unwrapped(res.stderr)
    with Store(db) as st:
        assert st.fetchall("SELECT count(*) FROM runs WHERE classifier = 'judge'") == [(0,)]
        assert st.fetchall("SELECT count(*) FROM annotations WHERE annotator LIKE 'judge%'") == [(0,)]
    assert server.chat_bodies == []


def test_a_review_set_without_evidence_gives_a_clear_error_and_no_file(db, mast):
    rs, _ = reviewed_store(db, mast)
    out = db.parent / "none.json"
    res = mast("labels", "examples", "--review-set", rs, "--reviewer", "nobody", "-o", out, expect=None)
    assert res.exit_code != 0
    assert "no 'present' label with evidence steps by reviewer nobody".replace(" ", "") in \
        unwrapped(res.stderr).replace(" ", "")
    assert not out.exists()
    res = mast("labels", "examples", "--review-set", "rs-000000000000", "-o", out, expect=None)
    assert res.exit_code != 0 and "no review set 'rs-000000000000'" in unwrapped(res.stderr)


def test_analyze_and_the_environment_pass_the_examples_file_to_the_judge(db, mast, monkeypatch):
    from mast.classify import create
    from mast.settings import current

    rs, _ = reviewed_store(db, mast)
    out = db.parent / "mine.json"
    mast("labels", "examples", "--review-set", rs, "-o", out)
    monkeypatch.setenv("MAST_JUDGE_EXAMPLES", str(out))
    clf = create("judge", settings=current(), model="m")
    assert (clf.prompt, clf.examples) == ("v2", str(out))
    assert clf.params()["examples"] == load_examples(out, MODES).digest      # part of the cache key
    assert "--examples FILE" in mast("analyze", "--help").stdout
