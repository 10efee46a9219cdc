"""Langfuse observation pages: ``GET /api/public/observations`` (v1) and ``GET /api/public/v2/observations``.

tests/fixtures/formats/langfuse/pages/ holds the observations of the four committed
Langfuse trace exports (the same runs) as the two list endpoints answer them, pages of 10
newest first, one page per line (``gen_langfuse_pages.py``, by Langfuse's public-API
schema, each page parsed by the Langfuse SDK's own response types).  Before, both were
refused ("observations without their trace").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats" / "langfuse"
PAGES = FIX / "pages"
FORMS = ["observations-v1.pages.jsonl", "observations-v2.pages.jsonl"]
#: What a trace made of observations can know, and the trace object's own fields it cannot:
#: v1 observations carry nothing of their trace; v2's trace_context group carries its name.
SAME = ("agents", "tool_pairs", "unpaired_tool_calls", "handoffs", "termination", "termination_last", "tokens",
        "outcome", "outcome_reason")


def _pages(name: str) -> list[dict]:
    return [json.loads(line) for line in (PAGES / name).read_text().splitlines()]


def _by_run(db: Path) -> dict[str, dict]:
    """Summary per Langfuse trace id, with the error steps counted."""
    out = {}
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT metadata->>'langfuse_trace_id', trace_id FROM traces "
                           "ORDER BY source_path, source_index")
        errors = dict(st.fetchall("SELECT trace_id, count(*) FILTER (WHERE kind = 'error' OR status = 'error') "
                                  "FROM steps GROUP BY 1"))
    for (lf_id, tid), summary in zip(rows, summarise(db)):
        out[lf_id] = dict(summary, errors=errors.get(tid, 0))
    return out


@pytest.mark.parametrize("name", FORMS)
def test_detected_and_matches_golden(name, mast, db):
    assert detect(PAGES / name).name == "langfuse"
    out = ingest(mast, PAGES / name)
    assert out["formats"] == {"langfuse": 1} and out["traces_new"] == 4
    check(PAGES, name, summarise(db))


@pytest.mark.parametrize("name", FORMS)
def test_pages_give_the_runs_the_trace_exports_give(name, mast, db, tmp_path):
    # the same four runs: agents, handoffs, tool calls and results, tokens and errors agree;
    # the steps are the same but for the task message only the trace object holds
    for f in sorted(FIX.glob("*.trace.json")):
        ingest(mast, f)
    want = _by_run(db)
    db.unlink()
    ingest(mast, PAGES / name)
    got = _by_run(db)
    assert sorted(got) == sorted(want)
    traces = {json.loads(f.read_text())["trace"]["id"]: json.loads(f.read_text())["trace"]
              for f in FIX.glob("*.trace.json")}
    for lf_id, w in want.items():
        g = got[lf_id]
        assert {k: g[k] for k in SAME + ("errors",)} == {k: w[k] for k in SAME + ("errors",)}, lf_id
        kinds = dict(w["kinds"])
        if traces[lf_id]["input"] is not None and g["kinds"].get("message") != kinds.get("message"):
            kinds.pop("message")  # the task came from the trace's input, which no observation has
            assert {k: v for k, v in g["kinds"].items() if k != "message"} == kinds, lf_id
        else:
            assert g["kinds"] == kinds, lf_id
        if name.startswith("observations-v2"):
            assert g["system"] == w["system"], lf_id  # traceName, copied onto each observation


def test_a_trace_over_several_pages_is_one_trace(mast, db):
    pages = _pages("observations-v2.pages.jsonl")
    seen: dict[str, set[int]] = {}
    for n, page in enumerate(pages):
        for o in page["data"]:
            seen.setdefault(o["traceId"], set()).add(n)
    assert any(len(v) > 1 for v in seen.values()), "the fixture must split a trace over pages"
    assert [bool(p["meta"].get("cursor")) for p in pages] == [True] * (len(pages) - 1) + [False]
    ingest(mast, PAGES / "observations-v2.pages.jsonl")
    with Store(db, read_only=True) as st:
        got = dict(st.fetchall("SELECT metadata->>'langfuse_trace_id', n_steps FROM traces"))
    assert sorted(got) == sorted(seen)


@pytest.mark.parametrize("layout", ["array", "one-page", "pretty-page"])
def test_other_layouts_of_the_pages(layout, mast, db, tmp_path):
    pages = _pages("observations-v1.pages.jsonl")
    p = tmp_path / "export.json"
    if layout == "array":
        p.write_text(json.dumps(pages, indent=1))
    else:
        p.write_text(json.dumps(pages[0], indent=2 if layout == "pretty-page" else None))
    assert detect(p).name == "langfuse"
    ingest(mast, p)
    want = {o["traceId"] for pg in (pages if layout == "array" else pages[:1]) for o in pg["data"]}
    with Store(db, read_only=True) as st:
        assert {r[0] for r in st.fetchall("SELECT metadata->>'langfuse_trace_id' FROM traces")} == want


def _bad(tmp_path: Path, mutate, name: str = "observations-v1.pages.jsonl") -> Path:
    pages = _pages(name)
    mutate(pages[1]["data"][3])
    p = tmp_path / "bad.jsonl"
    p.write_text("".join(json.dumps(pg) + "\n" for pg in pages))
    return p


@pytest.mark.parametrize("mutate,must", [
    (lambda o: o.pop("startTime"), "missing required field(s): startTime"),
    (lambda o: o.update(traceId=None), "observation without a traceId"),
    (lambda o: o.update(type="HOLOGRAM"), "unknown observation type 'HOLOGRAM' (newer Langfuse version?)"),
    (lambda o: o.update(level="LOUD"), "unknown level 'LOUD'"),
    (lambda o: o.update(startTime="yesterday"), "startTime 'yesterday' is not a time"),
])
def test_a_bad_observation_is_refused_naming_its_page_and_place(mutate, must, mast, db, tmp_path):
    refused(mast, db, _bad(tmp_path, mutate), must, "line 2, data[3]", fmt="langfuse")
    assert no_traces(db)


def test_truncated_pages_are_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(PAGES / "observations-v2.pages.jsonl", mast, db, tmp_path)


def _trace_page(with_observations: bool) -> dict:
    # GET /api/public/traces: trace objects, observations as ids (or left out by `fields`)
    data = []
    for f in sorted(FIX.glob("*.trace.json")):
        d = json.loads(f.read_text())
        t = {k: v for k, v in d["trace"].items() if k != "observations"}
        if with_observations:
            t["observations"] = [o["id"] for o in d["observations"]]
        data.append(t)
    return {"data": data, "meta": {"page": 1, "limit": 50, "totalItems": len(data), "totalPages": 1}}


@pytest.mark.parametrize("with_observations,what", [(True, "observations are ids only"),
                                                     (False, "traces without their observations")])
def test_a_page_of_the_trace_list_is_told_what_to_fetch(with_observations, what, mast, db, tmp_path):
    p = tmp_path / "traces.json"
    p.write_text(json.dumps(_trace_page(with_observations), indent=1))
    refused(mast, db, p, f"closest: langfuse (a page of GET /api/public/traces: {what}",
            "GET /api/public/traces/{id}", "GET /api/public/observations")


def test_an_observation_whose_input_is_longer_than_the_head_is_detected(mast, db, tmp_path):
    # (the core fields come first, as both endpoints write them; a run's history as input)
    page = _pages("observations-v2.pages.jsonl")[0]
    page["data"][0]["input"] = "a long prompt " * 10_000
    p = tmp_path / "long.json"
    p.write_text(json.dumps(page))
    assert p.read_text().index('"input"') < 1000 and p.stat().st_size > 100_000
    assert detect(p).name == "langfuse"
    assert ingest(mast, p)["formats"] == {"langfuse": 1}


def test_truncated_metadata_of_v2_is_read_without_its_attributes(mast, db, tmp_path):
    # v2 cuts metadata values over 200 characters unless expandMetadata names the key: the
    # span attributes Langfuse kept are then not JSON; the observation is read without them
    pages = _pages("observations-v2.pages.jsonl")
    for pg in pages:
        for o in pg["data"]:
            if isinstance((o.get("metadata") or {}).get("attributes"), dict):
                o["metadata"]["attributes"] = json.dumps(o["metadata"]["attributes"])[:200]
    p = tmp_path / "cut.jsonl"
    p.write_text("".join(json.dumps(pg) + "\n" for pg in pages))
    out = ingest(mast, p)
    assert out["formats"] == {"langfuse": 1} and out["traces_new"] == 4


def test_an_openai_agents_batch_is_not_taken_for_a_page(tmp_path):
    batch = {"data": [{"object": "trace.span", "id": "span_1", "trace_id": "trace_1", "parent_id": None,
                       "started_at": "2025-01-01T00:00:00Z", "ended_at": None, "span_data": {"type": "agent"}}]}
    p = tmp_path / "batch.json"
    p.write_text(json.dumps(batch))
    assert detect(p).name == "openai-agents"


def test_an_observation_repeated_by_shifted_pages_is_one_step(mast, db, tmp_path):
    # offset pages fetched while a run was still being written: the next page starts one
    # item early and repeats the last observation of the page before
    pages = _pages("observations-v1.pages.jsonl")
    pages[1]["data"].insert(0, pages[0]["data"][-1])
    p = tmp_path / "shifted.jsonl"
    p.write_text("".join(json.dumps(pg) + "\n" for pg in pages))
    def runs() -> list[dict]:  # (the folder names the system: not what is compared)
        return [{k: v for k, v in t.items() if not k.startswith("system")} for t in summarise(db)]
    ingest(mast, p)
    got = runs()
    db.unlink()
    ingest(mast, PAGES / "observations-v1.pages.jsonl")
    assert got == runs()


def test_a_page_of_another_api_forced_through_langfuse_says_so(mast, db):
    # Phoenix's otlpv1 page is {"data": [...]} too
    px = ROOT / "tests" / "fixtures" / "formats" / "phoenix" / "otlpv1" / "pxi_turn_trace.otlpv1.jsonl"
    refused(mast, db, px, "line 1, data[0]", "not a Langfuse observation", fmt="langfuse")
