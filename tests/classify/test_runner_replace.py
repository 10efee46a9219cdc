"""`--action replace`: a run replaces every earlier row of its annotators on the traces it
classified, whatever version of the classifier wrote them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mast.agreement import latest_labels  # noqa: E402
from mast.classify.contract import ClassifierBase, Output  # noqa: E402
from mast.classify.rules import default_rules_dir  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Annotation, Label  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import DEFAULT_TAXONOMY  # noqa: E402
from rules_helpers import CASES, TASK, trace, write  # noqa: E402


def _rules_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """The shipped rules (``old``), and a newer version of them (``new``) in which the 3.3
    label detector became a signal and the 2.1 detector's version was bumped."""
    old, new = tmp_path / "rules-old", tmp_path / "rules-new"
    shutil.copytree(default_rules_dir(), old)
    shutil.copytree(default_rules_dir(), new)
    f = new / "incorrect_verification.sql"
    text = f.read_text(encoding="utf-8")
    assert "-- role: signal" not in text  # the shipped detector labels 3.3
    f.write_text(text.replace("-- version:", "-- role: signal\n-- version:", 1), encoding="utf-8")
    g = new / "conversation_reset.sql"
    g.write_text(g.read_text(encoding="utf-8").replace("-- version: 1", "-- version: 9", 1), encoding="utf-8")
    return old, new


def _rows(db, sql, params=()):
    with Store(db, read_only=True) as st:
        return st.fetchall(sql, list(params))


def test_a_new_rules_version_replaces_the_old_versions_rows(db, mast, tmp_path):
    ids = write(db, [trace("pos", CASES["3.3"][0], task=TASK), trace("neg", CASES["3.3"][1], task=TASK),
                     trace("other", CASES["3.3"][0], task=TASK)])
    old, new = _rules_dirs(tmp_path)
    first = json.loads(mast("classify", "--with", "rules", "-C", f"rules_dir={old}", "--json").stdout)
    assert first["present_by_mode"]["3.3"] == 2
    pos = ids["pos"]
    assert _rows(db, "SELECT label FROM annotations WHERE annotator = 'rules' AND mode = '3.3' AND trace_id = ?",
                 [pos]) == [("present",)]
    before_other = _rows(db, "SELECT mode, label, run_id FROM annotations WHERE trace_id = ? ORDER BY mode, label",
                         [ids["other"]])

    second = json.loads(mast("classify", "--with", "rules", "-C", f"rules_dir={new}", "--where",
                             f"trace_id <> '{ids['other']}'", "--json").stdout)
    assert second["version"] != first["version"] and second["traces"] == 2

    # 3.3 is now only a signal: no `rules` label of the older version is left to count
    assert _rows(db, "SELECT count(*) FROM annotations WHERE annotator = 'rules' AND mode = '3.3' "
                     "AND trace_id IN (?, ?)", [pos, ids["neg"]]) == [(0,)]
    assert _rows(db, "SELECT label FROM annotations WHERE annotator = 'rules:signal' AND mode = '3.3' "
                     "AND trace_id = ?", [pos]) == [("unknown",)]
    # the latest label per annotator, as evaluate and the report read it, no longer says present
    with Store(db, read_only=True) as st:
        sql, params = latest_labels(st, DEFAULT_TAXONOMY, annotators=["rules"])
        latest = st.fetchall(f"SELECT present FROM ({sql}) WHERE mode = '3.3' AND trace_id = ?", [*params, pos])
    assert latest == []
    # every row of the two classified traces is from the new run: none doubled, none stale
    runs = _rows(db, "SELECT DISTINCT run_id FROM annotations WHERE trace_id IN (?, ?) "
                     "AND annotator IN ('rules', 'rules:signal')", [pos, ids["neg"]])
    assert runs == [(second["run_id"],)]
    assert _rows(db, "SELECT count(*) FROM attributions WHERE annotator = 'rules' AND trace_id IN (?, ?) "
                     "AND run_id <> ?", [pos, ids["neg"], second["run_id"]]) == [(0,)]
    # a trace outside the new run's selection keeps what the old version wrote
    assert _rows(db, "SELECT mode, label, run_id FROM annotations WHERE trace_id = ? ORDER BY mode, label",
                 [ids["other"]]) == before_other


def test_append_keeps_the_old_versions_rows(db, mast, tmp_path):
    ids = write(db, [trace("pos", CASES["3.3"][0], task=TASK)])
    old, new = _rules_dirs(tmp_path)
    mast("classify", "--with", "rules", "-C", f"rules_dir={old}", "--json")
    mast("classify", "--with", "rules", "-C", f"rules_dir={new}", "--action", "append", "--json")
    assert _rows(db, "SELECT count(DISTINCT run_id) FROM annotations WHERE trace_id = ? AND annotator = 'rules'",
                 [ids["pos"]]) == [(2,)]


class _Labeller(ClassifierBase):
    """A classifier of one mode, as a plugin would write one: version ``version``; the
    traces named in ``fail`` are reported as not classified."""

    name = "labeller"
    kind = "rule"

    def __init__(self, version: str, label: Label, fail: Sequence[str] = ()):
        self.version, self.label, self.fail = version, label, set(fail)

    def covers(self, taxonomy) -> set[str]:
        return {"1.1"}

    def arguments(self) -> dict:
        return {}

    def classify(self, store, trace_ids):
        out = Output(trace_ids=list(trace_ids))
        for t in trace_ids:
            if t in self.fail:
                out.failed[t] = "could not read it"
            else:
                out.annotations.append(Annotation(mode="1.1", label=self.label, annotator="", trace_id=t))
        yield out


def test_a_trace_the_new_run_failed_on_keeps_its_earlier_rows(db):
    ids = write(db, [trace("a", CASES["3.3"][0], task=TASK), trace("b", CASES["3.3"][1], task=TASK)])
    a, b = ids["a"], ids["b"]
    with Store(db) as st:
        first = run(st, _Labeller("1", Label.PRESENT), Selection())
        second = run(st, _Labeller("2", Label.ABSENT, fail=[b]), Selection())
        assert second.failed == 1
        rows = st.fetchall("SELECT trace_id, label, run_id FROM annotations WHERE annotator = 'labeller' "
                           "ORDER BY trace_id = ?", [b])
    # a: replaced by the new version; b: the new run has nothing to say, the old label stays
    assert rows == [(a, "absent", second.run_id), (b, "present", first.run_id)]
