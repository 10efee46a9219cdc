"""The file is the unit of re-ingest: a changed file replaces what its earlier version stored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mast.classify.hooks import ingest_hooks
from mast.classify.rules import RulesClassifier
from mast.classify.runner import Selection, run
from mast.ingest.pipeline import ingest_paths
from mast.store import Store


def _conv(tag: str, n: int = 4) -> dict:
    return {"messages": [{"role": "user" if k % 2 == 0 else "assistant", "name": f"agent{k % 2}",
                          "content": f"{tag}: message {k} " + "the same answer again " * (k % 2)}
                         for k in range(n)]}


def _write(path: Path, convs: list[dict], tick: int) -> None:
    path.write_text("".join(json.dumps(c) + "\n" for c in convs))
    os.utime(path, ns=(tick * 10**9, tick * 10**9))  # a new mtime even on a coarse clock


def _ids_by_task(st: Store) -> dict[str, str]:
    return {task.split(":")[0]: tid for tid, task in st.fetchall(
        "SELECT t.trace_id, s.content FROM traces t JOIN steps s ON s.trace_id = t.trace_id AND s.step = 0")}


def _counts(st: Store, table: str, ids) -> int:
    return st.fetchall(f"SELECT count(*) FROM {table} WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))",
                       [list(ids)])[0][0]


@pytest.mark.parametrize("stream", [False, True], ids=["grouped", "streamed"])
def test_changed_file_replaces_its_earlier_traces(tmp_path, monkeypatch, stream):
    if stream:  # the big-file path: staged batches published in one transaction
        from mast.ingest import pipeline
        monkeypatch.setattr(pipeline, "STREAM_BYTES", 10)
    f = tmp_path / "runs.jsonl"
    _write(f, [_conv("keep"), _conv("change"), _conv("drop")], 1_000_000)
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        first = ingest_paths(st, [f], hooks=ingest_hooks())
        assert first.traces_new == 3 and not first.errors
        before = _ids_by_task(st)
        run(st, RulesClassifier(), Selection())
        labels_before = {k: _counts(st, "annotations", [v]) for k, v in before.items()}
        assert all(labels_before.values())  # the rules labelled every trace
        assert _counts(st, "rule_step_features", before.values()) > 0

    changed = _conv("change")
    changed["messages"][-1]["content"] += " (edited)"
    _write(f, [_conv("keep"), changed, _conv("new")], 2_000_000)
    with Store(db) as st:
        second = ingest_paths(st, [f], hooks=ingest_hooks())
        assert not second.errors
        assert (second.traces_new, second.traces_present) == (2, 1)
        assert second.traces_replaced == 2  # the old "change" and "drop"
        assert second.labels_replaced == labels_before["change"] + labels_before["drop"]
        after = _ids_by_task(st)
        assert set(after) == {"keep", "change", "new"}
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 3
        assert after["keep"] == before["keep"]
        assert _counts(st, "annotations", [after["keep"]]) == labels_before["keep"]
        gone = [before["change"], before["drop"]]
        assert after["change"] != before["change"]
        for table in ("traces", "steps", "annotations", "attributions", "rule_step_features",
                      "rule_feature_traces"):
            assert _counts(st, table, gone) == 0, table
        # the new traces have features (the hook ran) but no labels yet
        assert _counts(st, "rule_feature_traces", [after["change"], after["new"]]) == 2
        assert _counts(st, "annotations", [after["change"], after["new"]]) == 0
        assert sorted(st.file_traces(str(f.resolve()))) == sorted(after.values())


def test_a_trace_another_file_also_holds_is_kept(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write(a, [_conv("shared"), _conv("only-a")], 1_000_000)
    _write(b, [_conv("shared")], 1_000_000)
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        ingest_paths(st, [a, b])
        shared = _ids_by_task(st)["shared"]
    _write(a, [_conv("only-a")], 2_000_000)
    with Store(db) as st:
        res = ingest_paths(st, [a])
        assert res.traces_replaced == 0
        assert set(_ids_by_task(st)) == {"shared", "only-a"}
        assert _ids_by_task(st)["shared"] == shared


def test_a_failed_reingest_keeps_the_old_version(tmp_path):
    f = tmp_path / "runs.jsonl"
    _write(f, [_conv("one"), _conv("two")], 1_000_000)
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        ingest_paths(st, [f])
    f.write_text(json.dumps(_conv("one")) + "\n{not json\n")
    with Store(db) as st:
        res = ingest_paths(st, [f], keep_going=True)
        assert res.errors and res.traces_replaced == 0
        assert set(_ids_by_task(st)) == {"one", "two"}
