"""Detection decodes a file's head as JSON once, however many importers ask about it.

About a dozen detectors judge a file by its first JSON value or first line; for a file of
one long line (a compact OTLP request, a saved team state, a Phoenix export) each used to
decode the same 64 KB head again, which cost more than reading the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mast.ingest import detect
from mast.ingest._util import first_json, line_json

FIX = Path(__file__).resolve().parent.parent / "fixtures"

# (fixture, the importer that must take it); JSON documents are rewritten on one line
CASES = [
    ("frameworks/otel/genai_legacy.otlp.json", "otel"),
    ("frameworks/ag2x/workflow/telemetry.otlp.json", "otel"),
    ("frameworks/autogen/0.7.5/swarm/save_state.json", "autogen-state"),
    ("formats/phoenix/pxi_turn_trace.json", "phoenix"),
    ("frameworks/openai_agents/processor.jsonl", "openai-agents"),
    ("frameworks/crewai_steps/step_callback.jsonl", "crewai-steps"),
    ("formats/phoenix/otlpv1/pxi_turn_trace.otlpv1.jsonl", "phoenix"),
    ("formats/phoenix/otlpv1/pxi_turn_trace.otlp.json", "phoenix"),
    ("formats/langfuse/pages/observations-v2.pages.jsonl", "langfuse"),
]


@pytest.fixture
def decodes(monkeypatch):
    """Counts every JSON document decoded (json.loads and raw_decode alike end here)."""
    calls = []
    real = json.decoder.JSONDecoder.raw_decode

    def counting(self, s, idx=0):
        calls.append(len(s))
        return real(self, s, idx)

    monkeypatch.setattr(json.decoder.JSONDecoder, "raw_decode", counting)
    return calls


@pytest.mark.parametrize("rel,fmt", CASES, ids=[c[1] + ":" + Path(c[0]).name for c in CASES])
def test_detection_decodes_the_head_at_most_twice(tmp_path, decodes, rel, fmt):
    src = FIX / rel
    text = src.read_text(encoding="utf-8")
    if src.suffix == ".json":
        text = json.dumps(json.loads(text), separators=(",", ":"))
    path = tmp_path / src.name
    path.write_text(text, encoding="utf-8")
    decodes.clear()
    assert detect(path).name == fmt
    # once as the first JSON value, once as the first line (json.loads of it): never per importer
    assert len(decodes) <= 2, f"{len(decodes)} JSON decodes of the head of {rel}"


def test_remembered_decode_is_the_same_value_and_errors_are_raised_again():
    a, b = b'[{"x": 1}, {"x": 2}]', b'{"y": [1, 2]}'
    assert first_json(a) == {"x": 1} and first_json(a, into_array=False) == [{"x": 1}, {"x": 2}]
    assert first_json(b) == {"y": [1, 2]} and first_json(a) == {"x": 1}  # another head: decoded anew
    assert line_json(b"  {\"z\": 3}\r\n") == {"z": 3} and line_json(b'{"z": 4}') == {"z": 4}
    for _ in range(2):  # the remembered error is raised each time
        with pytest.raises(ValueError):
            first_json(b'{"cut": ')
        with pytest.raises(ValueError):
            line_json(b'{"cut": ')
