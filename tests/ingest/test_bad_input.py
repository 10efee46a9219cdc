"""Bad input: a clear error naming file and record, exit 1, nothing half-stored.

Also re-ingest (a no-op) and a writer killed with SIGKILL in the middle of a large
ingest (the store opens, holds only whole files, and a rerun completes it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write_json
from mast.ingest.pipeline import ingest_paths
from mast.store import Store

SAMPLE_MAD = ROOT / "traces" / "mast-human" / "MAD_human_labelled_subset.json"


def _counts(db: Path) -> dict[str, int]:
    with Store(db, read_only=True) as st:
        return {t: st.fetchall(f"SELECT count(*) FROM {t}")[0][0]
                for t in ("traces", "steps", "annotations", "attributions")}


def _mad_records(n: int = 3) -> list[dict]:
    return json.loads(SAMPLE_MAD.read_text(encoding="utf-8"))[:n]


def _error_lines(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]


def test_empty_file(tmp_path, mast, db):
    f = tmp_path / "empty.json"
    f.write_bytes(b"")
    res = mast("ingest", f, expect=1)
    assert f"{f}: file is empty" in res.stderr
    g = tmp_path / "blank.jsonl"
    g.write_bytes(b"\n  \n")
    res = mast("ingest", g, expect=1)
    assert f"{g}: file is empty" in res.stderr
    assert _counts(db)["traces"] == 0


def test_truncated_json_names_the_record(tmp_path, mast, db):
    text = json.dumps(_mad_records(3), indent=2)
    cut = text.index('"trace"', text.index('"trace_id": 2,')) + 40  # inside record 1's trace
    f = tmp_path / "cut.json"
    f.write_text(text[:cut], encoding="utf-8")
    res = mast("ingest", f, expect=1)
    [line] = _error_lines(res)
    assert f"{f}, record 1: invalid JSON" in line and "truncated" in line
    assert _counts(db)["traces"] == 0


def test_wrong_top_level_type(tmp_path, mast, db):
    f = tmp_path / "string.json"
    f.write_text(json.dumps("a trace, but as one string"), encoding="utf-8")
    res = mast("ingest", "--format", "mad", f, expect=1)
    assert f"{f}: expected a JSON array of MAD records, found str" in res.stderr
    res = mast("ingest", f, expect=1)  # auto: nothing claims a bare string
    assert "no importer recognises this file" in res.stderr
    g = write_json(tmp_path / "ww.json", {"history": {"0": "x"}, "question": "q", "mistake_agent": "A",
                                          "mistake_step": "0"})
    res = mast("ingest", g, expect=1)
    assert f"{g}, record 0: field history is not a list" in res.stderr


def test_record_missing_required_fields_stores_nothing_of_the_file(tmp_path, mast, db):
    recs = _mad_records(3)
    del recs[2]["trace"]
    f = write_json(tmp_path / "mad.json", recs)
    res = mast("ingest", f, expect=1)
    assert f"{f}, record 2: missing required field(s): trace" in res.stderr
    assert _counts(db)["traces"] == 0  # records 0 and 1 were read but the file is all-or-nothing
    msgs = [{"role": "user", "content": "hi"}, {"name": "bot", "content": "no role here"}]
    g = write_json(tmp_path / "chat.json", msgs)
    res = mast("ingest", g, expect=1)
    assert f"{g}, record message 1: missing required field: role" in res.stderr


def test_binary_garbage_and_unknown_files(tmp_path, mast, db):
    rng = random.Random(7)
    f = tmp_path / "garbage.json"
    f.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    res = mast("ingest", f, expect=1)
    assert f"{f}: no importer recognises this file" in res.stderr
    g = tmp_path / "brace-garbage.json"  # looks like JSON for one byte, then is not
    g.write_bytes(b"[" + bytes(rng.randrange(256) for _ in range(4096)))
    res = mast("ingest", g, expect=1)
    assert str(g) in res.stderr and "error" in res.stderr
    h = write_json(tmp_path / "config.json", {"name": "not a trace", "version": 3})
    res = mast("ingest", h, expect=1)
    assert f"{h}: no importer recognises this file" in res.stderr
    assert "mast formats" in res.stderr or "--format" in res.stderr
    assert _counts(db)["traces"] == 0


def test_folder_mixing_good_and_bad_files(tmp_path, mast, db):
    d = tmp_path / "mixed"
    good1 = write_json(d / "a_good.json", _mad_records(2))
    bad_rec = _mad_records(3)
    bad_rec[1] = {"mas_name": "AG2"}
    bad1 = write_json(d / "b_bad_record.json", bad_rec)
    bad2 = d / "c_empty.json"
    bad2.write_bytes(b"")
    good2 = write_json(d / "sub" / "d_chat.json", [{"role": "user", "content": "hello"},
                                                  {"role": "assistant", "content": "hi"}])
    bad3 = d / "sub" / "e_noise.jsonl"
    bad3.write_text('{"role": "user", "content": "x"}\n{not json\n', encoding="utf-8")
    res = mast("ingest", d, "--keep-going", "--json", expect=1)
    out = json.loads(res.stdout)
    assert out["traces_new"] == 3 and out["files"] == 5
    assert len(out["errors"]) == 3
    assert f"{bad1}, record 1: missing required field(s): trace" in out["errors"]
    assert f"{bad2}: file is empty" in out["errors"]
    assert any(e.startswith(f"{bad3}, record line 2: invalid JSON") for e in out["errors"])
    with Store(db, read_only=True) as st:
        paths = {Path(p).name for (p,) in st.fetchall("SELECT DISTINCT source_path FROM traces")}
    assert paths == {good1.name, good2.name}
    # Without --keep-going the walk stops at the first bad file (files are read in order).
    res = mast("ingest", d, expect=1)
    assert "stopped after the first error" in res.stderr


def test_reingest_adds_nothing_even_after_touch(tmp_path, mast, db):
    f = write_json(tmp_path / "mad.json", _mad_records(3))
    first = json.loads(mast("ingest", f, "--json").stdout)
    before = _counts(db)
    assert first["traces_new"] == 3 and before["traces"] == 3
    again = json.loads(mast("ingest", f, "--json").stdout)
    assert again["traces_new"] == 0 and again["skipped_unchanged"] == 1
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = json.loads(mast("ingest", f, "--json").stdout)
    assert touched["skipped_unchanged"] == 0  # re-read because it may have changed...
    assert touched["traces_new"] == 0 and touched["traces_present"] == 3  # ...but adds nothing
    copy = write_json(tmp_path / "other" / "copy.json", _mad_records(3))
    moved = json.loads(mast("ingest", copy, "--json").stdout)
    assert moved["traces_new"] == 0 and moved["traces_present"] == 3
    assert _counts(db) == before


# -- a writer killed in the middle of a large ingest ------------------------------------------

def _make_corpus(root: Path, files: int, records: int, msgs: int) -> None:
    """``files`` folders, each an AG2 records file plus its labels file (a companion).

    Records are unique (nothing is deduplicated).  The companion's "skipped" note is
    printed only once every file before it is committed, which makes progress visible.
    """
    rng = random.Random(11)
    words = [f"w{i}" for i in range(500)]
    for fi in range(files):
        d = root / f"d{fi:03d}"
        d.mkdir()
        recs = []
        for ri in range(records):
            traj = [{"content": f"file {fi} record {ri} msg {k}: " + " ".join(rng.choices(words, k=60)),
                     "role": "user" if k % 2 == 0 else "assistant", "name": f"agent{k % 3}"}
                    for k in range(msgs)]
            recs.append({"trace_id": f"f{fi}-r{ri}", "mas_name": "AG2", "benchmark_name": "synthetic",
                         "round": "kill-test", "trace": json.dumps({"problem_statement": [f"task {fi}/{ri}"],
                                                                    "trajectory": traj})})
        (d / "gold_labels_x.json").write_text(json.dumps(
            {"labels": {r["trace_id"]: {"present": ["FM-1.1"] if i % 2 else []} for i, r in enumerate(recs)}}))
        (d / "raw_ag2_records_x.json").write_text(json.dumps(recs))


def _cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mast", "-d", str(db), *args]


def _check_whole_files(db: Path, records: int, msgs: int) -> int:
    with Store(db) as st:  # a write open replays the WAL of the killed process
        bad = st.fetchall("SELECT count(*) FROM traces t WHERE n_steps <> "
                          "(SELECT count(*) FROM steps s WHERE s.trace_id = t.trace_id)")[0][0]
        per_file = st.fetchall("SELECT source_path, count(*) FROM traces GROUP BY 1")
        orphans = st.fetchall("SELECT count(*) FROM steps WHERE trace_id NOT IN (SELECT trace_id FROM traces)")[0][0]
        short = st.fetchall("SELECT count(*) FROM traces WHERE n_steps <> ?", [msgs])[0][0]
        labels = st.fetchall("SELECT count(*) FROM annotations")[0][0]
        done = st.fetchall("SELECT count(*) FROM ingested_files")[0][0]
    assert bad == 0 and orphans == 0 and short == 0
    assert all(n == records for _, n in per_file), "a file's traces are all stored or none"
    assert labels == len(per_file) * records * 14  # and their labels with them
    assert done == len(per_file)  # a file is recorded as done exactly when its traces are stored
    return len(per_file)


def _ingest_and_kill(db: Path, corpus: Path, env: dict, marker: str) -> bool:
    """Start an ingest and SIGKILL it once ``marker`` shows; False if it finished first."""
    # Its own session, so the kill reaches parser worker processes too.
    proc = subprocess.Popen(_cli(db, "ingest", str(corpus)), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = False
    try:
        for line in proc.stderr:  # wait until files d000..d007 are committed
            if marker in line:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not killed or proc.returncode == -signal.SIGKILL
    return killed


def test_sigkill_mid_ingest_leaves_whole_files_and_rerun_completes(tmp_path):
    records, msgs = 60, 12
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # On a loaded machine the rest of the corpus may be stored between the marker and the
    # kill; then the corpus grows and the kill is tried again (the check needs a partial store).
    for attempt, files in enumerate((40, 120, 360)):
        corpus = tmp_path / f"corpus{attempt}"
        corpus.mkdir()
        _make_corpus(corpus, files, records, msgs)
        db = tmp_path / f"killed{attempt}.duckdb"
        marker = f"{corpus / 'd008' / 'gold_labels_x.json'}: skipped"
        if not _ingest_and_kill(db, corpus, env, marker):
            continue
        stored = _check_whole_files(db, records, msgs)
        if stored < files:
            break
    else:
        pytest.fail("every ingest finished before it could be interrupted")
    assert stored >= 8, f"files d000..d007 were reported committed, found {stored}"

    clean = tmp_path / "clean.duckdb"
    subprocess.run(_cli(clean, "ingest", str(corpus)), check=True, env=env, capture_output=True, timeout=600)
    want = _counts(clean)
    assert want["traces"] == files * records

    rerun = subprocess.run(_cli(db, "ingest", str(corpus), "--json"), env=env, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["traces_new"] + stored * records == files * records
    assert summary["skipped_unchanged"] == stored
    assert _check_whole_files(db, records, msgs) == files
    assert _counts(db) == want
