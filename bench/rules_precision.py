"""Rule precision: every detector against every labelled set, and its verdict (label or signal).

    .venv/bin/python bench/rules_precision.py [--db /tmp/mast-rules-precision.duckdb] [--rebuild]
        [--rules-dir classifiers/rules] [--json]

Store (built once, kept for reruns; ``--rebuild`` starts over): the two mode-labelled
sets of ../shared/datasets, the MAST human file (annotator ``human``) and the mast-lint
community AG2 set (annotator ``community:mast-lint``), ingested with the rules' feature
hook.  Who&When carries root causes, not mode labels, so it is not read here.

Per detector and labelled set, over the traces that set labelled for the detector's mode:
``fires`` (traces it found the mode in), ``distinct`` (how many distinct label vectors
those traces carry: the MAST human file repeats 8 vectors over 19 records, so this is
closer to the number of independent observations), ``tp``, precision with its 95%
Wilson interval, recall, and the mode's base rate in that set (the precision of a
detector that fires at random).  Every detector is run, whatever its role: signals are
measured exactly like labels (the hits are read from the run's ``rule_hits``, not from
stored annotations).

Verdict (on the human set only, the labels the issue names): ``label`` when precision is
above the base rate, otherwise ``signal``; a detector that never fires there has no
precision and is a ``signal`` too (nothing shows that it beats chance).  The ``role``
column is what the detector's header says now, so a mismatch is visible.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a clone: the package beside it

from mast.agreement import latest_labels  # noqa: E402
from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.classify.rules import load_detectors, prepare_selection, run_detectors  # noqa: E402
from mast.ingest.pipeline import expand, ingest_paths  # noqa: E402
from mast.report.labels import wilson  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import DEFAULT_TAXONOMY  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
SOURCES = [DATASETS / "mast-human" / "MAD_human_labelled_dataset.json",
           DATASETS / "mast-lint-community" / "evals" / "dogfood"]
SETS = ("human", "community:mast-lint")
DECIDING = "human"


def build(db: Path) -> None:
    with Store(db) as store:
        ingest_paths(store, expand([str(p) for p in SOURCES]), "auto", None, True, None, hooks=ingest_hooks())


def measure(store, rules_dir: str | None) -> list[dict]:
    dets = load_detectors(rules_dir)
    sql, params = latest_labels(store, DEFAULT_TAXONOMY, annotators=list(SETS))
    store.execute(f"CREATE OR REPLACE TEMP TABLE gold AS {sql}", params)
    # One signature per (set, trace): its whole label vector, to count distinct vectors.
    store.execute("""CREATE OR REPLACE TEMP TABLE gold_sig AS
                     SELECT annotator, trace_id, string_agg(mode || CASE WHEN present THEN '+' ELSE '-' END, ','
                                                             ORDER BY mode) AS sig
                     FROM temp.gold GROUP BY 1, 2""")
    ids = [r[0] for r in store.fetchall("SELECT DISTINCT trace_id FROM temp.gold ORDER BY 1")]
    prepare_selection(store, ids)
    runs = {r.name: r for r in run_detectors(store, dets)}
    out = []
    for d in dets:
        if d.prelude:
            continue
        err = runs[d.name].error
        for gold in SETS:
            n, support, fires, tp, distinct = store.fetchall("""
                WITH g AS (SELECT trace_id, present FROM temp.gold WHERE annotator = ? AND mode = ?),
                h AS (SELECT DISTINCT trace_id FROM temp.rule_hits WHERE detector = ?)
                SELECT count(*), count(*) FILTER (WHERE g.present), count(h.trace_id),
                       count(h.trace_id) FILTER (WHERE g.present),
                       count(DISTINCT s.sig) FILTER (WHERE h.trace_id IS NOT NULL)
                FROM g LEFT JOIN h USING (trace_id)
                LEFT JOIN temp.gold_sig s ON s.annotator = ? AND s.trace_id = g.trace_id""",
                                                          [gold, d.mode, d.name, gold])[0]
            precision = tp / fires if fires else None
            base = support / n if n else None
            row = {"detector": d.name, "mode": d.mode, "role": getattr(d, "role", "label"), "set": gold,
                   "n": n, "support": support, "base_rate": base, "fires": fires, "distinct": distinct, "tp": tp,
                   "precision": precision, "precision_ci": wilson(tp, fires) if fires else None,
                   "recall": tp / support if support else None, "error": err}
            if gold == DECIDING:
                row["verdict"] = "label" if precision is not None and base is not None and precision > base \
                    else "signal"
            out.append(row)
    return out


def _f(x, digits=2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| detector | mode | role now | set | n | base rate | fires (distinct) | TP | precision [95% CI] "
             "| recall | verdict |", "|---|---|---|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        ci = r["precision_ci"]
        p = _f(r["precision"]) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        lines.append(f"| {r['detector']} | {r['mode']} | {r['role']} | {r['set']} | {r['n']} | "
                     f"{r['support']}/{r['n']} = {_f(r['base_rate'])} | {r['fires']} ({r['distinct']}) | {r['tp']} | "
                     f"{p} | {_f(r['recall'])} | {r.get('verdict', '')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="/tmp/mast-rules-precision.duckdb")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--rules-dir", default=None, help="folder of detectors (default: the shipped one)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    db = Path(a.db)
    if a.rebuild and db.exists():
        db.unlink()
    if not db.exists():
        build(db)
    with Store(db) as store:
        rows = measure(store, a.rules_dir)
    print(json.dumps(rows, indent=1) if a.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
