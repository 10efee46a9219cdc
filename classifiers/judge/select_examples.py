"""Choose the judge v2 few-shot examples from labelled public traces, deterministically.

Your own examples from reviewed traces: ``mast labels examples --review-set ID -o mine.json``
(from the labels stored in the store), then ``mast classify --with judge --examples mine.json``;
``--from-labels labels.json --db mast.duckdb -o mine.json`` here does the same from a labels
file not yet imported.

Run: ``python classifiers/judge/select_examples.py [--datasets DIR] [-o FILE]`` (defaults:
the ``shared/datasets`` folder beside the project checkout; ``classifiers/judge/v2/examples.json``).
The same inputs always give the same file, byte for byte.

How an example is chosen, per mode of mast-v1:
1. The sources are the MAST human-labelled MAD file (``mast-human``, CC-BY-4.0; the
   majority of three annotators, older codes mapped to the final 14 by the importer) and
   the mast-lint community AG2 runs (``mast-lint-community``, Apache-2.0; one annotator).
   Both are ingested into a temporary store, so each example records the store's own
   content-hash trace id of its source, and the rule detectors are run on them.
2. A candidate is a (trace, mode) that the human labels call present *and* where a rule
   detector (label or signal) points to steps for that mode: those steps are the
   example's evidence.  Neither data set records evidence steps, so a label with no
   step a detector can point to is not used (its mode may then have no example).
3. Candidates whose evidence steps fit the excerpt whole come first (an example whose
   evidence is cut off shows little), then by source authority (MAD majority first), the
   characters of evidence left out, the shortest excerpt, and trace id; the first ``--per-mode`` (3) are kept, so an example whose
   source is the trace being judged can be swapped for the next one of its mode.
4. The excerpt is the evidence steps (each cut to ``--step-chars`` from its start) and
   one step either side (half that), with the store's step numbers; all text is redacted
   (:func:`mast.redact.redact`) before it is written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mast.classify.judge.examples import excerpt  # noqa: E402  (after the path line: the checkout's mast)
from mast.redact import redact  # noqa: E402
from mast.store import Store  # noqa: E402

SOURCES = {
    "human": {"dataset": "mast-human", "licence": "CC-BY-4.0", "short": "MAST human annotators (majority of 3)",
              "authors": "Cemri, Pan, Yang et al., 'Why Do Multi-Agent LLM Systems Fail?' (MAD, Hugging Face mcemri/MAD)",
              "labels": "majority (>= 2 of 3) of the MAST human annotators"},
    "community:mast-lint": {"dataset": "mast-lint-community", "licence": "Apache-2.0", "short": "mast-lint gold label",
                            "authors": "Ashish Joy (github ajoy-escapingflatland/mast-lint)",
                            "labels": "one annotator (mast-lint gold labels)"},
}
AUTHORITY = list(SOURCES)


def _files(datasets: Path) -> list[Path]:
    mad = datasets / "mast-human" / "MAD_human_labelled_dataset.json"
    community = sorted((datasets / "mast-lint-community" / "evals" / "dogfood").glob("raw_ag2_records*.json"))
    missing = [p for p in [mad, *community] if not p.exists()] or ([] if community else ["raw_ag2_records*.json"])
    if missing:
        raise SystemExit(f"select_examples: missing input(s): {', '.join(map(str, missing))}")
    return [mad, *community]


def _mast(db: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "mast", "-d", str(db), *args], check=True, capture_output=True, cwd=ROOT)


def _excerpt(steps, evidence: list[int], step_chars: int, context_chars: int | None = None) -> str:
    return excerpt(steps, evidence, step_chars, context_chars)


def select(datasets: Path, per_mode: int, step_chars: int, max_evidence: int, context_chars: int = 0,
           why_chars: int = 70) -> dict:
    files = _files(datasets)
    with tempfile.TemporaryDirectory(prefix="mast-examples-") as tmp:
        db = Path(tmp) / "examples.duckdb"
        _mast(db, "ingest", *map(str, files))
        _mast(db, "classify", "--with", "rules")
        with Store(db) as st:
            rows = st.fetchall(
                "SELECT h.trace_id, h.mode, h.annotator, h.rationale, list_sort(list_distinct(flatten(list(r.evidence_steps)))),"
                " string_agg(DISTINCT r.rationale, '; ' ORDER BY r.rationale), any_value(t.metadata), any_value(t.system)"
                " FROM annotations h JOIN annotations r ON r.trace_id = h.trace_id AND r.mode = h.mode"
                " JOIN traces t ON t.trace_id = h.trace_id"
                " WHERE h.annotator IN (SELECT unnest(?)) AND h.label = 'present'"
                " AND (r.annotator = 'rules' OR starts_with(r.annotator, 'rules:'))"
                " AND r.label IN ('present', 'unknown') AND len(r.evidence_steps) > 0"
                " GROUP BY h.trace_id, h.mode, h.annotator, h.rationale", [AUTHORITY])
            traces = {t.trace_id: t for t in st.load_traces(sorted({r[0] for r in rows}))}
            modes = [m for (m,) in st.fetchall("SELECT DISTINCT mode FROM annotations ORDER BY mode")]
    cands: dict[str, list[tuple]] = {}
    for tid, mode, annotator, why, ev, rule_why, meta, system in rows:
        meta = json.loads(meta) if meta else {}
        evidence = [int(e) for e in ev][:max_evidence]
        excerpt = _excerpt(traces[tid].steps, evidence, step_chars, context_chars)
        record = meta.get("trace_id")
        src = SOURCES[annotator]
        label_note = (why or "").strip() if annotator != "human" else ""
        # Short: the fixed part of the prompt is paid on every request an endpoint does not cache.
        rationale = (f"{src['short']}"
                     + (f" ('{' '.join(label_note.split())[:why_chars]}')" if label_note else "")
                     + f"; detector: {' '.join((rule_why or '').split())[:why_chars]}")
        ex = {"id": f"{src['dataset']}/{record}/{mode}", "mode": mode, "verdict": "present", "excerpt": excerpt,
              "evidence_steps": evidence, "rationale": redact(rationale),
              "source": {"trace_id": tid, "dataset": src["dataset"], "record": record, "system": system,
                         "licence": src["licence"], "authors": src["authors"], "labels": src["labels"]}}
        steps = traces[tid].steps
        hidden = sum(max(0, len(" ".join((steps[e].content or "").split())) - step_chars) for e in evidence)
        cands.setdefault(mode, []).append((hidden > 0, AUTHORITY.index(annotator), hidden, len(excerpt), tid, ex))
    examples = []
    for mode in modes:
        for *_, ex in sorted(cands.get(mode, []), key=lambda c: c[:5])[:per_mode]:
            examples.append(ex)
    return {"format": "mast-judge-examples", "version": 1, "taxonomy": "mast-v1",
            "made_by": "classifiers/judge/select_examples.py",
            "settings": {"per_mode": per_mode, "step_chars": step_chars, "max_evidence": max_evidence,
                         "context_chars": context_chars, "why_chars": why_chars},
            "modes_without_examples": [m for m in modes if m not in cands],
            "examples": examples}


def from_labels(db: Path, labels: Path, step_chars: int, max_evidence: int) -> dict:
    """Examples from a reviewed labels file (``mast-review-labels``, checked against the store
    as ``mast ingest`` checks it): every ``present`` label with evidence steps becomes one,
    its excerpt cut from the stored trace, its note as the rationale."""
    from mast.model import Label
    from mast.review import read_labels

    with Store(db, read_only=True) as st:
        doc, anns = read_labels(st, labels)
        keep = [a for a in anns if a.label == Label.PRESENT and a.evidence_steps]
        traces = {t.trace_id: t for t in st.load_traces(sorted({a.trace_id for a in keep}))}
        systems = dict(st.fetchall("SELECT trace_id, system FROM traces WHERE trace_id IN (SELECT unnest(?))",
                                   [sorted(traces)]))
    examples = []
    for a in sorted(keep, key=lambda a: (a.mode, a.trace_id)):
        evidence = list(a.evidence_steps)[:max_evidence]
        examples.append({"id": f"{doc['review_set']}/{a.trace_id}/{a.mode}", "mode": a.mode, "verdict": "present",
                         "excerpt": _excerpt(traces[a.trace_id].steps, evidence, step_chars),
                         "evidence_steps": evidence,
                         "rationale": redact(a.rationale or f"Labelled {a.mode} by reviewer {doc['reviewer']}."),
                         "source": {"trace_id": a.trace_id, "dataset": f"review set {doc['review_set']}",
                                    "record": a.trace_id, "system": systems.get(a.trace_id),
                                    "labels": f"reviewer {doc['reviewer']}"}})
    if not examples:
        raise SystemExit(f"select_examples: {labels} has no 'present' label with evidence steps")
    return {"format": "mast-judge-examples", "version": 1, "taxonomy": doc.get("taxonomy") or "mast-v1",
            "made_by": "classifiers/judge/select_examples.py --from-labels",
            "settings": {"step_chars": step_chars, "max_evidence": max_evidence}, "examples": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "classifiers" / "judge" / "v2" / "examples.json")
    ap.add_argument("--per-mode", type=int, default=3)
    ap.add_argument("--step-chars", type=int, default=150)
    ap.add_argument("--context-chars", type=int, default=0, help="characters kept of the steps either side (0: none shown)")
    ap.add_argument("--why-chars", type=int, default=70, help="characters of a note or detector finding quoted")
    ap.add_argument("--max-evidence", type=int, default=1)
    ap.add_argument("--from-labels", type=Path, metavar="LABELS",
                    help="build the examples from your own reviewed labels file instead (needs --db)")
    ap.add_argument("--db", type=Path, help="the store the labels file was made from")
    args = ap.parse_args()
    if args.from_labels:
        if not args.db:
            ap.error("--from-labels needs --db STORE")
        doc = from_labels(args.db, args.from_labels, args.step_chars, args.max_evidence)
    else:
        doc = select(args.datasets, args.per_mode, args.step_chars, args.max_evidence, args.context_chars,
                     args.why_chars)
    args.output.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    n = {}
    for e in doc["examples"]:
        n[e["mode"]] = n.get(e["mode"], 0) + 1
    print(f"{len(doc['examples'])} examples ({', '.join(f'{m}: {k}' for m, k in n.items())}) written to "
          f"{args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
