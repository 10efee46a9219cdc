"""Per-step rule features kept in the store: computed at ingest, on demand, and on version change."""

from __future__ import annotations

import shutil

from mast.classify import create
from mast.classify.hooks import ingest_hooks
from mast.classify.rules import (FEATURE_TABLE, FEATURE_TRACES, RulesClassifier, default_rules_dir, features_version,
                                 load_detectors)
from mast.classify.runner import Selection, run
from mast.store import Store

from rules_helpers import CASES, TASK, trace, write


def _all_traces():
    out = []
    for mode, (pos, neg) in CASES.items():
        out.append(trace(f"pos-{mode}", pos, task=TASK))
        out.append(trace(f"neg-{mode}", neg, task=TASK))
    out.append(trace("empty", [], task=None))
    return out


def features(db) -> list[tuple]:
    with Store(db) as st:
        return st.fetchall(f"SELECT * FROM {FEATURE_TABLE} ORDER BY trace_id, step")


def versions(db) -> dict[str, str]:
    with Store(db) as st:
        return dict(st.fetchall(f"SELECT trace_id, version FROM {FEATURE_TRACES}"))


def rules_rows(db) -> list[tuple]:
    with Store(db) as st:
        return st.fetchall("SELECT trace_id, mode, label, confidence, evidence_steps, rationale FROM annotations "
                           "WHERE annotator = 'rules' ORDER BY ALL")


def _no_features_store(db, traces):
    with Store(db) as st:  # written without the write hooks: no features
        with st.transaction():
            st.write_traces(traces)
    return {t.metadata["name"]: t.trace_id for t in traces}


def _current_version() -> str:
    return features_version(next(d for d in load_detectors() if d.name == "_features"))


def test_ingest_computes_features_equal_to_on_demand(db, tmp_path):
    ids = write(db, _all_traces())
    at_ingest = features(db)
    assert at_ingest, "ingest stored feature rows"
    assert len(at_ingest) == sum(len(p) + len(n) for p, n in CASES.values())
    # every trace, also the one without steps, is recorded with the current version
    assert versions(db) == {tid: _current_version() for tid in ids.values()}
    # the same traces stored without features get them on the first rules run: identical rows
    other = tmp_path / "other.duckdb"
    _no_features_store(other, _all_traces())
    assert features(other) == [] and versions(other) == {}
    with Store(other) as st:
        res = run(st, create("rules"), Selection())
    assert res.errors == {}
    assert features(other) == at_ingest
    assert versions(other) == versions(db)
    # and the rules results are the same as on the store whose features came from ingest
    with Store(db) as st:
        run(st, create("rules"), Selection())
    assert rules_rows(db) == rules_rows(other) and rules_rows(db)


def test_rules_run_reads_stored_features_and_computes_only_missing(db):
    ids = write(db, _all_traces()[:4])
    late = _all_traces()[4:]
    with Store(db) as st:
        with st.transaction():
            st.write_traces(late)  # without the write hooks: no features
        # mark one stored feature row so a recomputation would be visible
        st.execute(f"UPDATE {FEATURE_TABLE} SET nbytes = -1 WHERE trace_id = ?", [ids["pos-1.3"]])
        clf = create("rules")
        run(st, clf, Selection())
        computed = next(r for r in clf.detector_runs if r.name == "_features").findings
        kept = st.fetchall(f"SELECT min(nbytes) FROM {FEATURE_TABLE} WHERE trace_id = ?", [ids["pos-1.3"]])[0][0]
        have = {r[0] for r in st.fetchall(f"SELECT trace_id FROM {FEATURE_TRACES}")}
        all_ids = {r[0] for r in st.fetchall("SELECT trace_id FROM traces")}
    assert computed == len(late)
    assert kept == -1, "traces with current features are not recomputed"
    assert have == all_ids
    # a second run computes nothing
    with Store(db) as st:
        clf = create("rules")
        run(st, clf, Selection())
    assert next(r for r in clf.detector_runs if r.name == "_features").findings == 0


def test_features_version_bump_recomputes(db, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    ids = write(db, _all_traces())
    before = features(db)
    old = set(versions(db).values())
    f = rules / "_features.sql"
    f.write_text(f.read_text(encoding="utf-8").replace("-- version: ", "-- version: 9", 1), encoding="utf-8")
    clf = RulesClassifier(rules_dir=rules)
    with Store(db) as st:
        # mark a row: the recomputation must overwrite it
        st.execute(f"UPDATE {FEATURE_TABLE} SET nbytes = -1")
        res = run(st, clf, Selection())
    assert res.errors == {}
    assert next(r for r in clf.detector_runs if r.name == "_features").findings == len(ids)
    new = set(versions(db).values())
    assert len(new) == 1 and new != old and new.pop().startswith("9")
    assert features(db) == before  # same SQL body: the same rows again


def test_changed_feature_columns_rebuild_the_table(db, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    write(db, _all_traces())
    f = rules / "_features.sql"
    text = f.read_text(encoding="utf-8")
    # a rule author adds a column
    assert "    len(list_filter(ml, lambda x: starts_with(x, 'is_in_loop'))) > 0 AS reports_loop\n" in text
    f.write_text(text.replace("AS reports_loop\n", "AS reports_loop,\n    nbytes > 100 AS long_step\n"),
                 encoding="utf-8")
    clf = RulesClassifier(rules_dir=rules)
    with Store(db) as st:
        res = run(st, clf, Selection())
        cols = [r[0] for r in st.fetchall(f"DESCRIBE {FEATURE_TABLE}")]
        n = st.fetchall(f"SELECT count(*), count(long_step) FROM {FEATURE_TABLE}")[0]
    assert res.errors == {}
    assert "long_step" in cols and n[0] == n[1] > 0
    # ingest with the default folder (other columns) does not fail; the next run refreshes those traces
    ids = write(db, [trace("later", CASES["3.3"][0], task=TASK)])
    assert ids["later"] not in versions(db)


def test_staged_writes_publish_features_with_the_steps(db):
    """A big file is staged batch by batch (Store.begin_staging): its feature rows are
    staged too and published in the same transaction as its steps, or not at all."""
    traces = _all_traces()
    hooks = ingest_hooks()
    with Store(db) as st:
        st.begin_staging(hooks)
        try:
            for lo in range(0, len(traces), 5):
                with st.transaction():
                    st.write_traces(traces[lo:lo + 5], hooks)
            assert st.fetchall(f"SELECT count(*) FROM {FEATURE_TABLE}")[0][0] == 0, "nothing published yet"
            with st.transaction():
                st.publish_staging()
        finally:
            st.end_staging()
    staged = features(db)
    assert len(staged) == sum(len(p) + len(n) for p, n in CASES.values())
    assert len(versions(db)) == len(traces)


def test_abandoned_staging_leaves_no_features(db):
    hooks = ingest_hooks()
    with Store(db) as st:
        st.begin_staging(hooks)
        with st.transaction():
            st.write_traces(_all_traces(), hooks)
        st.end_staging()  # the file failed before it was published
        n = st.fetchall(f"SELECT (SELECT count(*) FROM {FEATURE_TABLE}), (SELECT count(*) FROM {FEATURE_TRACES}), "
                        "(SELECT count(*) FROM steps)")[0]
    assert n == (0, 0, 0)


def test_broken_features_file_does_not_stop_ingest_and_is_reported_by_the_run(db, tmp_path, monkeypatch):
    rules = tmp_path / "broken-rules"
    shutil.copytree(default_rules_dir(), rules)
    f = rules / "_features.sql"
    f.write_text(f.read_text(encoding="utf-8").replace("FROM feature_steps s", "FROM no_such_table s"),
                 encoding="utf-8")
    monkeypatch.setenv("MAST_RULES_DIR", str(rules))
    ids = write(db, _all_traces())
    with Store(db) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == len(ids)
        assert st.fetchall(f"SELECT count(*) FROM {FEATURE_TABLE}")[0][0] == 0
        clf = create("rules")
        res = run(st, clf, Selection())
    assert "_features" in {r.name for r in clf.detector_runs if r.error}
    assert res.errors  # every detector reports the failed prelude; nothing is labelled "absent"
    assert rules_rows(db) == []


def test_whole_store_computation_in_slices_equals_ingest(db, tmp_path, monkeypatch):
    import mast.classify.rules.features as rules_mod
    write(db, _all_traces())
    other = tmp_path / "sliced.duckdb"
    _no_features_store(other, _all_traces())
    monkeypatch.setattr(rules_mod, "WHOLE_STORE_SLICE", 3)  # many slices, traces cut across them
    with Store(other) as st:
        assert st.fetchall("SELECT max(rowid) FROM steps")[0][0] > 3 * 5
        clf = create("rules")
        res = run(st, clf, Selection())
    assert res.errors == {}
    assert next(r for r in clf.detector_runs if r.name == "_features").findings == len(_all_traces())
    assert features(other) == features(db)
    assert versions(other) == versions(db)
