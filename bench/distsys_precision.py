"""distsys-v1 detectors: precision on whatever labels say something about their modes.

    .venv/bin/python bench/distsys_precision.py [--db /tmp/mast-distsys-precision.duckdb] [--rebuild] [--json]
    .venv/bin/python bench/distsys_precision.py --speed STORE [--repeat 2]

No public set labels distsys-v1 modes, so each detector is scored against the nearest
labels that exist, and the table says which:

- MAST mode labels (the MAST human file, annotator ``human``; the mast-lint community AG2
  set, ``community:mast-lint``): 1.3 step repetition stands for DS2 livelock (agents
  looping without progress).  Over the traces that set labelled for 1.3.
- Who&When's ``mistake_reason`` texts (annotator ``human`` root causes; every record is a
  failed run): a reason that names the mode's mechanism, by a regular expression shown in
  the table - a cascade (an error or wrong output that later steps build on), a loop, an
  unhandled error, a rate limit, a retry.  Over all 184 records.

Per detector and label source: fires, TP, precision with its 95% Wilson interval, recall,
and the base rate (the precision of a detector firing at random).  Verdict: ``label``
when precision is above the base rate on at least one source, else ``signal`` (also when
it never fires: nothing shows it beats chance).  A detector with no label source at all
(straggler: no set records timestamps of parallel work) is ``unmeasured``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a clone: the package beside it
sys.path.insert(0, str(ROOT / "bench"))

from rules_precision import SOURCES, _f  # noqa: E402

from mast.agreement import latest_labels  # noqa: E402
from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.classify.rules import load_detectors, prepare_selection, run_detectors  # noqa: E402
from mast.compare import wilson  # noqa: E402
from mast.ingest.pipeline import expand, ingest_paths  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import DEFAULT_TAXONOMY  # noqa: E402

TAXONOMY = "distsys-v1"
WHOWHEN = ROOT.parent / "shared" / "datasets" / "who-and-when" / "Who&When"
MAST_PROXY = {"DS2": "1.3"}
REASONS = {
    "DS1": r"(?i)(propagat|led to|leads to|leading to|resulted in|results in|based on (the|this|an?) (wrong|incorrect|erroneous|flawed)|subsequent|downstream|without (verif|check|correct))",
    "DS2": r"(?i)(loop|repeat|repetit|again and again|stuck|circular|back and forth)",
    "DS3": r"(?i)(rate.?limit|429|too many requests|overloaded|throttl)",
    "DS5": r"(?i)(error|exception|fail|did not handle|not handle|ignor|despite)",
    "DS6": r"(?i)(retr(y|ied|ies)|re-?ran|again with the same)",
}


def build(db: Path) -> None:
    with Store(db) as store:
        ingest_paths(store, expand([str(p) for p in [*SOURCES, WHOWHEN]]), "auto", None, True, None,
                     hooks=ingest_hooks())


def _row(detector, mode, source, n, support, fires, tp) -> dict:
    return {"detector": detector, "mode": mode, "source": source, "n": n, "support": support,
            "base_rate": support / n if n else None, "fires": fires, "tp": tp,
            "precision": tp / fires if fires else None, "precision_ci": wilson(tp, fires) if fires else None,
            "recall": tp / support if support else None}


def measure(store) -> list[dict]:
    dets = load_detectors(taxonomy=TAXONOMY)
    ids = [r[0] for r in store.fetchall("SELECT trace_id FROM traces ORDER BY 1")]
    prepare_selection(store, ids)
    runs = {r.name: r for r in run_detectors(store, dets)}
    sql, params = latest_labels(store, DEFAULT_TAXONOMY, annotators=["human", "community:mast-lint"])
    store.execute(f"CREATE OR REPLACE TEMP TABLE gold AS {sql}", params)
    reasons = store.fetchall("SELECT a.trace_id, a.rationale FROM attributions a JOIN traces t USING (trace_id) "
                             "WHERE a.annotator = 'human' AND t.source_format = 'whowhen'")
    out = []
    for d in (d for d in dets if not d.prelude):
        if runs[d.name].error:
            raise SystemExit(f"{d.name}: {runs[d.name].error}")
        hits = {r[0] for r in store.fetchall("SELECT DISTINCT trace_id FROM temp.rule_hits WHERE detector = ?",
                                              [d.name])}
        all_fires = len(hits)
        rows = []
        if d.mode in MAST_PROXY:
            for gold in ("human", "community:mast-lint"):
                lab = store.fetchall("SELECT trace_id, present FROM temp.gold WHERE annotator = ? AND mode = ?",
                                     [gold, MAST_PROXY[d.mode]])
                rows.append(_row(d.name, d.mode, f"{gold} {MAST_PROXY[d.mode]}", len(lab), sum(p for _, p in lab),
                                 sum(t in hits for t, _ in lab), sum(t in hits and p for t, p in lab)))
        if d.mode in REASONS:
            rx = re.compile(REASONS[d.mode])
            pos = {t for t, why in reasons if why and rx.search(why)}
            ww = {t for t, _ in reasons}
            rows.append(_row(d.name, d.mode, "Who&When reason /" + REASONS[d.mode][4:40] + "…/", len(ww), len(pos),
                             len(hits & ww), len(hits & pos)))
        verdict = "unmeasured" if not rows else (
            "label" if any(r["precision"] is not None and r["base_rate"] is not None and r["precision"] > r["base_rate"]
                           for r in rows) else "signal")
        for r in rows or [_row(d.name, d.mode, "(no labels)", 0, 0, 0, 0)]:
            out.append({**r, "role": d.role, "verdict": verdict, "fires_all": all_fires, "traces_all": len(ids)})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| detector | mode | role now | label source | n | base rate | fires | TP | precision [95% CI] | recall "
             "| fires on all traces | verdict |", "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        ci = r["precision_ci"]
        p = _f(r["precision"]) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        lines.append(f"| {r['detector']} | {r['mode']} | {r['role']} | {r['source'].replace('|', '¦')} | {r['n']} | "
                     f"{r['support']}/{r['n']} = {_f(r['base_rate'])} | {r['fires']} | {r['tp']} | {p} | "
                     f"{_f(r['recall'])} | {r['fires_all']}/{r['traces_all']} | {r['verdict']} |")
    return "\n".join(lines)


def speed(db: Path, repeat: int) -> list[dict]:
    """Both taxonomies' detectors over every trace of a store (e.g. one built by
    bench/rules_bench.py), paired and alternating in one process; features are current."""
    import os
    import time
    rows = []
    with Store(db) as store:
        ids = [r[0] for r in store.fetchall("SELECT trace_id FROM traces")]
        steps = store.fetchall("SELECT count(*) FROM steps")[0][0]
        for k in range(repeat):
            for tax in (DEFAULT_TAXONOMY, TAXONOMY):
                prepare_selection(store, ids)
                t0 = time.perf_counter()
                runs = run_detectors(store, load_detectors(taxonomy=tax))
                total = time.perf_counter() - t0
                rows.append({"taxonomy": tax, "round": k, "traces": len(ids), "steps": steps, "seconds": round(total, 2),
                             "load": os.getloadavg()[0],
                             "detectors": {r.name: round(r.seconds, 2) for r in runs}})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="/tmp/mast-distsys-precision.duckdb")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--speed", metavar="STORE", help="time both taxonomies' detectors over this store instead")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    if a.speed:
        print(json.dumps(speed(Path(a.speed), a.repeat), indent=1))
        return 0
    db = Path(a.db)
    if a.rebuild and db.exists():
        db.unlink()
    if not db.exists():
        build(db)
    with Store(db) as store:
        rows = measure(store)
    print(json.dumps(rows, indent=1) if a.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
