"""`mast formats` shows an example of every format; an unreadable file names the closest importer."""

from __future__ import annotations

import json

import pytest

from conftest import unwrapped
from fw_golden import no_traces
from mast import ingest


def test_every_importer_lists_an_example(mast):
    rows = json.loads(mast("formats", "--json").stdout)
    assert [r["name"] for r in rows] == [i.name for i in ingest.importers()]
    missing = [r["name"] for r in rows if not r.get("example")]
    assert not missing, missing
    human = mast("formats").stdout
    for r in rows:
        assert r["name"] in human


@pytest.mark.parametrize("doc,closest,why", [
    # a tau-bench task list: task ids, but no trajectory and no reward
    ([{"task_id": 1, "instruction": "Cancel the flight", "actions": []}], "trajectory", "no traj or reward"),
    # Langfuse observations listed without the ids that make them a tree
    ({"trace": {"id": "t1"}, "observations": [{"id": "o1", "type": "SPAN"}]}, "langfuse", "parentObservationId"),
    # a message list whose messages lost their content
    ([{"role": "user"}, {"role": "assistant"}], "messages", "no content or tool_calls"),
    # OTLP-ish spans with ids but none of the shapes
    ([{"traceId": "ab" * 16, "spanId": "cd" * 8}], "otel", "span ids, but neither"),
])
def test_unknown_file_gets_the_closest_importers_reason(doc, closest, why, mast, db, tmp_path):
    p = tmp_path / "nearly.json"
    p.write_text(json.dumps(doc))
    res = mast("ingest", p, expect=1)
    text = unwrapped(res.stderr)
    assert "no importer recognises this file" in text
    assert f"closest: {closest} (" in text and why in text
    assert no_traces(db)


def test_unrelated_json_names_no_closest_importer(mast, db, tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"theme": "dark", "font_size": 12}))
    text = unwrapped(mast("ingest", p, expect=1).stderr)
    assert "no importer recognises this file" in text and "closest" not in text


def test_phoenix_spans_forced_through_otel_say_what_they_are(mast, db, tmp_path):
    span = {"name": "turn", "context": {"trace_id": "t", "span_id": "s"}, "span_kind": "AGENT", "parent_id": None,
            "start_time": "2026-07-23T00:00:02+00:00", "attributes": {}}
    p = tmp_path / "spans.json"
    p.write_text(json.dumps([span]))
    text = unwrapped(mast("ingest", "--format", "otel", p, expect=1).stderr)
    assert "context but no kind" in text and "Phoenix" in text
    assert "expected resourceSpans" not in text  # the old, misleading message
