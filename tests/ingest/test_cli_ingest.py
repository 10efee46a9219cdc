"""`mast ingest` over the sample corpus: detection per file, golden summaries, options."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from conftest import ROOT, write_json
from mast.store import Store

TRACES = ROOT / "traces"
MINE = ("who-and-when", "mast-human", "mast-lint-community")


def _copy_samples(dst: Path) -> Path:
    for sub in MINE:
        for f in (TRACES / sub).rglob("*"):
            if f.is_file():
                target = dst / f.relative_to(TRACES)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(f.read_bytes())
    return dst


def test_ingest_whole_sample_corpus_without_errors(mast, db):
    res = mast("ingest", TRACES, "--json")
    out = json.loads(res.stdout)
    assert out["errors"] == [] and out["traces_new"] > 0
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == out["traces_new"]


def test_detection_and_golden_summary_of_labelled_samples(tmp_path, mast, db):
    corpus = _copy_samples(tmp_path / "traces")
    out = json.loads(mast("ingest", corpus, "--json").stdout)
    ww_files = sorted((corpus / "who-and-when").rglob("*.json"))
    assert out["formats"] == {"whowhen": len(ww_files), "mad": 2}
    assert [Path(c["path"]).name for c in out["skipped_companion"]] == ["gold_labels_sample.json"]

    # Expected figures, computed from the files themselves.
    ww = {f.name: json.loads(f.read_text()) for f in ww_files}
    mad = json.loads((corpus / "mast-human" / "MAD_human_labelled_subset.json").read_text())
    community = json.loads((corpus / "mast-lint-community" / "raw_ag2_records_sample.json").read_text())
    gold = json.loads((corpus / "mast-lint-community" / "gold_labels_sample.json").read_text())["labels"]
    assert out["traces_new"] == len(ww) + len(mad) + len(community)

    with Store(db, read_only=True) as st:
        per_format = dict(st.fetchall("SELECT source_format, count(*) FROM traces GROUP BY 1"))
        ww_steps = st.fetchall("SELECT sum(n_steps) FROM traces WHERE source_format = 'whowhen'")[0][0]
        ag2_steps = dict(st.fetchall(
            "SELECT json_extract_string(metadata, '$.trace_id'), n_steps FROM traces WHERE system = 'AG2'"))
        annotators = Counter(dict(st.fetchall(
            "SELECT annotator, count(DISTINCT trace_id) FROM annotations GROUP BY 1")))
        present = Counter(dict(st.fetchall(
            "SELECT mode, count(*) FROM annotations WHERE annotator = 'community:mast-lint' "
            "AND label = 'present' GROUP BY 1")))
        atts = st.fetchall("SELECT count(*), count(DISTINCT trace_id) FROM attributions WHERE annotator = 'human'")[0]
        kinds = Counter(dict(st.fetchall("SELECT kind, count(*) FROM steps GROUP BY 1")))
        systems = {r[0] for r in st.fetchall("SELECT DISTINCT system FROM traces")}
    assert per_format == {"whowhen": len(ww), "mad": len(mad) + len(community)}
    assert ww_steps == sum(len(r["history"]) for r in ww.values())
    for rec in mad + community:
        if rec["mas_name"] == "AG2":  # AG2: one step per trajectory message
            assert ag2_steps[str(rec["trace_id"])] == len(json.loads(rec["trace"])["trajectory"])
    assert annotators == {"human": len(mad), "human:annotator_1": len(mad), "human:annotator_2": len(mad),
                          "human:annotator_3": len(mad), "community:mast-lint": len(community)}
    assert present == Counter(c.removeprefix("FM-") for v in gold.values() for c in v["present"])
    assert atts == (len(ww), len(ww))
    assert {"Magentic-One", "CaptainAgent", "AG2", "ChatDev", "MetaGPT", "AppWorld"} <= systems
    assert kinds["message"] > 0 and kinds["tool_call"] > 0 and kinds["tool_result"] > 0


def test_format_and_system_options(tmp_path, mast, db):
    chat = write_json(tmp_path / "chat.json", [{"role": "user", "content": "hello"},
                                               {"role": "assistant", "name": "bot", "content": "hi"}])
    res = mast("ingest", "--format", "nope", chat, expect=1)
    assert "unknown format 'nope'" in res.stderr and "messages" in res.stderr
    out = json.loads(mast("ingest", "--format", "messages", "--default-system", "my-bot", chat, "--json").stdout)
    assert out["formats"] == {"messages": 1} and out["traces_new"] == 1
    listed = json.loads(mast("traces", "list", "--system", "my-bot", "--json").stdout)
    assert [r["n_steps"] for r in listed] == [2]
    assert json.loads(mast("traces", "list", "--system", "other", "--json").stdout) == []
    res = mast("ingest", tmp_path / "missing.json", expect=1)
    assert "no such file or folder" in res.stderr
