"""Phoenix's OTLP-shaped span pages (``GET /v1/projects/{id}/spans/otlpv1``) and the UI's OTLP JSON download.

tests/fixtures/formats/phoenix/otlpv1/ was written by a real Phoenix 20.26.1 server run
offline (``gen_phoenix_otlp.py``): Phoenix's own PXI test spans created through its REST
API and read back through both span routes, pages of 10 following ``next_cursor``.  So
each run is there twice, as ``<name>.otlpv1.jsonl`` and ``<name>.spans.jsonl``, and once
more as the UI's download (``pxi_turn_trace.otlp.json``).  Before, the otlpv1 pages were
refused by every importer and the download was read by ``otel`` without Phoenix's agent
naming (its agent spans became no agents).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats" / "phoenix" / "otlpv1"
RUNS = ["pxi_turn_trace", "pxi_turn_subagent_trace"]
FORMS = sorted(p.name for p in FIX.iterdir() if p.suffix in (".jsonl", ".json") and p.name not in
               ("golden.json", "versions.json"))


def _pages(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIX / name).read_text().splitlines()]


def _alone(mast, db: Path, path: Path, tmp: Path) -> tuple[list[dict], list[tuple]]:
    """Summary and steps (with times) of ``path`` ingested alone from a folder named ``px``
    (the folder names the system: every form gets the same one); the store is removed after."""
    d = tmp / "px"
    d.mkdir(exist_ok=True)
    p = d / path.name
    if p != path:
        shutil.copy(path, p)
    assert ingest(mast, p)["formats"] == {"phoenix": 1}
    with Store(db, read_only=True) as st:
        steps = st.fetchall("SELECT t.source_index, s.step, s.agent, s.kind, s.tool_name, s.status, s.target_agent, "
                            "s.tokens_in, s.tokens_out, s.started_at, s.ended_at, s.content, s.tool_args "
                            "FROM steps s JOIN traces t USING (trace_id) ORDER BY 1, 2")
    out = summarise(db), steps
    db.unlink()
    p.unlink()
    return out


@pytest.mark.parametrize("name", FORMS)
def test_detected_and_matches_golden(name, mast, db):
    assert detect(FIX / name).name == "phoenix"
    assert ingest(mast, FIX / name)["formats"] == {"phoenix": 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("run", RUNS)
def test_both_routes_and_the_original_export_are_the_same_trace(run, mast, db, tmp_path):
    # the same spans through /spans/otlpv1, through /spans, and as Phoenix's own test file:
    # every step the same, with the same agent, tool, status, tokens, time and content
    otlp = _alone(mast, db, FIX / f"{run}.otlpv1.jsonl", tmp_path)
    plain = _alone(mast, db, FIX / f"{run}.spans.jsonl", tmp_path)
    orig = _alone(mast, db, FIX.parent / f"{run}.json", tmp_path)
    assert otlp[1] == plain[1]
    assert otlp[0] == plain[0] == orig[0]
    assert [s[2:] for s in otlp[1]] == [s[2:] for s in orig[1]]


def test_the_ui_download_is_phoenix_and_the_same_trace(mast, db, tmp_path):
    path = FIX / "pxi_turn_trace.otlp.json"
    assert path.read_text().startswith('{"resource_spans":[{"scope_spans":[{"spans":[{"attributes"')
    assert detect(path).name == "phoenix"
    assert _alone(mast, db, path, tmp_path) == _alone(mast, db, FIX / "pxi_turn_trace.otlpv1.jsonl", tmp_path)


@pytest.mark.parametrize("run", RUNS)
def test_a_trace_over_several_pages_is_one_trace(run, mast, db):
    pages = _pages(f"{run}.otlpv1.jsonl")
    assert len(pages) > 1 and all(p["next_cursor"] for p in pages[:-1]) and pages[-1]["next_cursor"] is None
    assert len({s["trace_id"] for p in pages for s in p["data"]}) == 1
    ingest(mast, FIX / f"{run}.otlpv1.jsonl")
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 1


@pytest.mark.parametrize("layout", ["array", "page", "pretty-page", "spans-only"])
def test_other_layouts_of_the_same_pages(layout, mast, db, tmp_path):
    # a JSON array of the pages; one page alone on one line or pretty-printed (the trace then
    # has that page's spans only); the spans of every page as one JSON array
    pages = _pages("pxi_turn_trace.otlpv1.jsonl")
    p = tmp_path / "export.json"
    if layout == "array":
        p.write_text(json.dumps(pages, indent=1))
    elif layout == "spans-only":
        p.write_text(json.dumps([s for pg in pages for s in pg["data"]]))
    else:
        p.write_text(json.dumps(pages[0], indent=2 if layout == "pretty-page" else None))
    assert detect(p).name == "phoenix"
    got, steps = _alone(mast, db, p, tmp_path)
    want, want_steps = _alone(mast, db, FIX / "pxi_turn_trace.otlpv1.jsonl", tmp_path)
    if layout in ("array", "spans-only"):
        assert steps == want_steps
    else:
        assert len(got) == 1 and 0 < len(steps) < len(want_steps)


def test_a_first_span_longer_than_the_head_is_detected(mast, db, tmp_path):
    # Phoenix writes a span's fields alphabetically: a long prompt pushes the ids past the head
    pages = _pages("pxi_turn_trace.otlpv1.jsonl")
    first = pages[0]["data"][0]
    first["attributes"].insert(0, {"key": "input.value", "value": {"string_value": "x" * 100_000}})
    p = tmp_path / "long.json"
    p.write_text(json.dumps(pages[0]))
    assert detect(p).name == "phoenix"
    assert ingest(mast, p)["formats"] == {"phoenix": 1}


def _bad(tmp_path: Path, mutate) -> Path:
    pages = _pages("pxi_turn_trace.otlpv1.jsonl")
    mutate(pages[1]["data"][3])
    p = tmp_path / "bad.jsonl"
    p.write_text("".join(json.dumps(pg) + "\n" for pg in pages))
    return p


def _attr(span: dict, key: str) -> dict:
    return next(a for a in span["attributes"] if a["key"] == key)


@pytest.mark.parametrize("mutate,must", [
    (lambda s: s.pop("start_time_unix_nano"), "missing required field(s): start_time_unix_nano"),
    (lambda s: s.update(trace_id=None), "missing required field(s): trace_id"),
    (lambda s: s.update(start_time_unix_nano="yesterday"), "start_time_unix_nano 'yesterday' is not a time"),
    (lambda s: s.update(status={"code": 7, "message": None}), "unknown status code 7"),
    (lambda s: _attr(s, "openinference.span.kind")["value"].update(string_value="HOLOGRAM"),
     "unknown openinference.span.kind 'HOLOGRAM' (newer Phoenix version?)"),
    (lambda s: s["attributes"].append({"key": "x", "value": {"string_value": None, "hologram_value": 1}}),
     "unknown value type 'hologram_value' (newer Phoenix version?)"),
    (lambda s: s.update(attributes={"flat": "object"}), "attributes is not a list of {key, value}"),
])
def test_a_bad_span_is_refused_naming_its_page_and_place(mutate, must, mast, db, tmp_path):
    p = _bad(tmp_path, mutate)
    refused(mast, db, p, must, "line 2, data[3]", fmt="phoenix")
    assert no_traces(db)


def test_truncated_pages_are_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "pxi_turn_trace.otlp.json", mast, db, tmp_path)
    assert_truncated_refused(FIX / "pxi_turn_subagent_trace.otlpv1.jsonl", mast, db, tmp_path)


def test_protobuf_json_with_the_proto_names_is_still_otel(tmp_path):
    # MessageToDict(preserving_proto_field_name=True) of a request also opens with
    # resource_spans; it writes no nulls (and has a resource): that is otel's
    req = {"resource_spans": [{"resource": {"attributes": [{"key": "service.name", "value": {"string_value": "svc"}}]},
                               "scope_spans": [{"scope": {"name": "x"}, "spans": [{
                                   "trace_id": "ESIzRFVmd4iZqrvM3e7/AA==", "span_id": "ESIzRFVmd4g=", "name": "s",
                                   "start_time_unix_nano": "1700000000000000000"}]}]}]}
    p = tmp_path / "req.json"
    p.write_text(json.dumps(req))
    assert detect(p).name == "otel"
    bare = {"resource_spans": [{"scope_spans": [{"spans": req["resource_spans"][0]["scope_spans"][0]["spans"]}]}]}
    p.write_text(json.dumps(bare, separators=(",", ":")))
    assert detect(p).name == "otel"


def test_lookalike_pages_of_other_apis_are_not_phoenix(tmp_path):
    # the OpenAI Agents SDK's backend batch and a Langfuse observation page are {"data": [...]} too
    agents = {"data": [{"object": "trace.span", "id": "span_1", "trace_id": "trace_1", "parent_id": None,
                        "started_at": "2025-01-01T00:00:00Z", "ended_at": None, "span_data": {"type": "agent"}}]}
    p = tmp_path / "batch.json"
    p.write_text(json.dumps(agents))
    assert detect(p).name == "openai-agents"
    lf = ROOT / "tests" / "fixtures" / "formats" / "langfuse" / "pages" / "observations-v2.pages.jsonl"
    assert detect(lf).name == "langfuse"


def test_a_page_of_another_api_forced_through_phoenix_names_the_record(mast, db):
    lf = ROOT / "tests" / "fixtures" / "formats" / "langfuse" / "pages" / "observations-v1.pages.jsonl"
    refused(mast, db, lf, "line 1", "a page, but not Phoenix's (keys: data, meta)", fmt="phoenix")
