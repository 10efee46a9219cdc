"""OTLP exports with unknown span times (issue 12 item 11).

Some trace tools write ``"startTimeUnixNano": "0"`` for a time they do not know, and
proto3 JSON leaves a zero field out altogether.  The input is the real OTLP fixture
(``frameworks/otel/genai_legacy.otlp.json``, from ``generators/gen_otel.py``) with the
times of some spans blanked that way: derived, hand-edited.
"""

from __future__ import annotations

import json

from conftest import ROOT
from mast.store import Store

SRC = ROOT / "tests" / "fixtures" / "frameworks" / "otel" / "genai_legacy.otlp.json"


def _spans(d: dict) -> list[dict]:
    return [s for rs in d["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def _ingest(tmp_path, mast, db, edit):
    d = json.loads(SRC.read_text())
    edit(_spans(d))
    f = tmp_path / "export.otlp.json"
    f.write_text(json.dumps(d))
    out = json.loads(mast("ingest", f, "--json").stdout)
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT kind, started_at FROM steps ORDER BY step")
    return out, rows


def test_zero_start_times_are_missing_values_not_a_refusal(tmp_path, mast, db):
    ref_db = tmp_path / "ref.duckdb"
    ref = json.loads(mast("--db", ref_db, "ingest", SRC, "--json").stdout)
    with Store(ref_db, read_only=True) as st:
        ref_kinds = [k for (k,) in st.fetchall("SELECT kind FROM steps ORDER BY step")]

    def blank(spans):
        for s in spans[1::2]:  # every other span: "0" here, left out there
            if spans.index(s) % 4 == 1:
                s["startTimeUnixNano"] = "0"
            else:
                s.pop("startTimeUnixNano")
    out, rows = _ingest(tmp_path, mast, db, blank)
    assert out["errors"] == [] and out["traces_new"] == ref["traces_new"] == 1
    assert sorted(k for k, _ in rows) == sorted(ref_kinds)  # nothing dropped
    assert any(t is None for _, t in rows) and any(t is not None for _, t in rows)
    with Store(db, read_only=True) as st:
        [(started,)] = st.fetchall("SELECT started_at FROM traces")
    assert started is not None and started.year > 1970  # the known times still give the start


def test_an_export_with_no_times_at_all_is_read(tmp_path, mast, db):
    def blank(spans):
        for s in spans:
            s["startTimeUnixNano"] = "0"
            s["endTimeUnixNano"] = "0"
    out, rows = _ingest(tmp_path, mast, db, blank)
    assert out["errors"] == [] and out["traces_new"] == 1
    assert rows and all(t is None for _, t in rows)
