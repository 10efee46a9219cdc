"""Human review: pick the traces worth a person's time, and take their labels back.

Contract:
- :func:`sample_for_review` chooses up to ``n`` traces of the selection by a strategy of
  :data:`STRATEGIES` and records them as a **review set** (tables ``review_sets`` and
  ``review_set_traces``, migration ``m100``), in the order the review page shows them.
  Every strategy is deterministic for a given store and seed.
  - ``uncertain``: traces where the classifiers (judge, cascade, learned, rules: not
    people) disagree on a mode, or are least sure (a stated confidence near 0.5).  The
    score is, summed over modes, 1 for each mode the classifiers disagree on plus
    ``1 - 2·|confidence − 0.5|`` of the least sure label; ties go in seeded order.
  - ``stratified``: round-robin over the strata (system, mode labelled present by the
    best available classifier, or "none"), so every system and every mode seen gets a
    trace before any gets a second.
  - ``random``: the seeded order.
- A **labels file** (:data:`LABELS_FORMAT`, version :data:`LABELS_VERSION`) is what the
  review page exports: ``{"format", "version", "review_set", "reviewer", "taxonomy",
  "labels": [{"trace_id", "mode", "label", "evidence_steps", "note"}]}``.
  :func:`import_labels` checks all of it against the store before writing anything: the
  review set is in this store, the taxonomy is the set's, every trace is in the set, every
  mode in the taxonomy, every evidence step a step of its trace, no (trace, mode) twice.
  Any failure is an :class:`~mast.errors.IngestError` naming the file and the record, and
  nothing is stored.
- Labels are stored through the store's one annotation write path (so a note gets the
  same secret redaction as trace text) as annotator ``human:<reviewer>``; ``unsure`` is
  stored as ``unknown`` (not an assessment).  Their ``run_id`` is
  ``review:<set>:<reviewer>``: importing the same reviewer's file again replaces that
  reviewer's labels for the set, while other reviewers' labels are kept beside them.
- :func:`write_review_examples` turns a set's stored human labels into the judge's
  few-shot examples file (``mast labels examples``): each ``present`` label with evidence
  steps becomes an example whose source is its trace, so the judge never shows a trace
  its own label; the file is checked by the judge's loader before it is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from mast.agreement import authority_rank, latest_labels
from mast.classify.judge.examples import FORMAT as EXAMPLES_FORMAT
from mast.classify.judge.examples import FORMAT_VERSION as EXAMPLES_VERSION
from mast.classify.judge.examples import excerpt, load_examples
from mast.errors import IngestError, UsageError
from mast.labels_file import LABELS_FORMAT, is_labels_file  # noqa: F401 - re-exported: the review API names them
from mast.model import Annotation, Label
from mast.redact import redact
from mast.scope import traces_sql
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy

STRATEGIES = ("uncertain", "stratified", "random")
LABELS_VERSION = 1
REVIEW_LABELS = ("present", "absent", "unsure")
#: the first annotator rank that is a classifier, not a person (see mast.agreement)
_CLASSIFIER_RANK = authority_rank("judge")
_REVIEWER_RX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class ReviewTrace:
    position: int
    trace_id: str
    system: str
    reason: str


@dataclass
class ReviewSet:
    review_set: str
    created_at: str
    strategy: str
    seed: int
    requested: int
    taxonomy: str
    systems: list[str]
    traces: list[ReviewTrace] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportResult:
    path: str
    review_set: str
    reviewer: str
    annotator: str
    labels: int          # rows stored
    present: int
    absent: int
    unsure: int
    replaced: int        # rows of an earlier import by the same reviewer, replaced


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def seeded_order(trace_ids: Sequence[str], seed: int) -> list[str]:
    """A stable pseudo-random order: the same seed gives the same order whatever the input order."""
    return sorted(trace_ids, key=lambda t: (hashlib.sha256(f"{seed}:{t}".encode()).digest(), t))


# -- sampling ---------------------------------------------------------------------------
def sample_for_review(store, n: int, *, strategy: str = "uncertain", systems: Sequence[str] = (),
                      seed: int = 0, taxonomy: str = DEFAULT_TAXONOMY, include_reviewed: bool = False) -> ReviewSet:
    """Choose up to ``n`` traces and record them as a new review set (see the module docstring).

    Traces already in an earlier review set are left out unless ``include_reviewed``: a
    second sample goes on to traces nobody was asked about yet."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown review strategy {strategy!r}", "Known: " + ", ".join(STRATEGIES))
    if n < 1:
        raise UsageError("--for-review needs a number of traces of 1 or more")
    tax = load_taxonomy(taxonomy)
    sel, params = traces_sql(list(systems), "trace_id")
    skip = "" if include_reviewed else " WHERE trace_id NOT IN (SELECT trace_id FROM review_set_traces)"
    pool = {r[0]: r[1] for r in store.fetchall(f"SELECT trace_id, sys FROM ({sel}){skip}", params)}
    if not pool:
        where = f" of system(s) {', '.join(systems)}" if systems else ""
        if not include_reviewed and store.fetchall(f"SELECT 1 FROM ({sel}) LIMIT 1", params):
            raise UsageError(f"every trace{where} is already in a review set",
                             "Add --include-reviewed to sample them again (e.g. for a second reviewer).")
        raise UsageError(f"no traces{where} in the store to review", "Run `mast ingest PATH` first.")
    order = seeded_order(list(pool), seed)
    if strategy == "random":
        picked = [(t, "random (seeded)") for t in order[:n]]
    elif strategy == "stratified":
        picked = _stratified(store, tax.id, systems, pool, order, n)
    else:
        picked = _uncertain(store, tax.id, systems, order, n)
    rs = ReviewSet(review_set="rs-" + uuid.uuid4().hex[:12], created_at=_now().isoformat(timespec="seconds"),
                   strategy=strategy, seed=seed, requested=n, taxonomy=tax.id, systems=list(systems),
                   traces=[ReviewTrace(i, t, pool[t], why) for i, (t, why) in enumerate(picked)])
    with store.transaction():
        store.execute("INSERT INTO review_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      [rs.review_set, _now(), strategy, seed, n, tax.id, json.dumps(list(systems)),
                       json.dumps({"pool": len(pool), "include_reviewed": include_reviewed})])
        store.execute("""INSERT INTO review_set_traces SELECT ?, unnest(?::INTEGER[]), unnest(?::VARCHAR[]),
                         unnest(?::VARCHAR[])""",
                      [rs.review_set, [t.position for t in rs.traces], [t.trace_id for t in rs.traces],
                       [t.reason for t in rs.traces]])
    return rs


def _classifier_labels(store, taxonomy: str, systems: Sequence[str]) -> tuple[str, list]:
    sql, params = latest_labels(store, taxonomy, systems=list(systems) or None)
    return f"SELECT * FROM ({sql}) WHERE rank >= {_CLASSIFIER_RANK}", params


def _uncertain(store, taxonomy: str, systems: Sequence[str], order: list[str], n: int) -> list[tuple[str, str]]:
    labels, params = _classifier_labels(store, taxonomy, systems)
    rows = store.fetchall(f"""
        WITH per AS (
            SELECT trace_id, mode, count(DISTINCT present) > 1 AS disagree, min(abs(confidence - 0.5)) AS d,
                   arg_min(confidence, abs(confidence - 0.5)) AS c
            FROM ({labels}) GROUP BY ALL)
        SELECT trace_id, count(*) FILTER (WHERE disagree),
               sum(disagree::INTEGER + coalesce(1 - 2 * d, 0)),
               list(mode ORDER BY mode) FILTER (WHERE disagree), arg_min(mode, d), arg_min(c, d)
        FROM per GROUP BY 1""", params)
    info = {r[0]: (float(r[2] or 0), int(r[1]), list(r[3] or []), r[4], r[5]) for r in rows}
    rank = {t: i for i, t in enumerate(order)}
    ranked = sorted(order, key=lambda t: (-info.get(t, (0.0,))[0], rank[t]))
    out = []
    for t in ranked[:n]:
        score, k, modes, least_mode, conf = info.get(t, (0.0, 0, [], None, None))
        parts = []
        if k:
            parts.append(f"classifiers disagree on {k} mode(s): {', '.join(modes[:5])}"
                         + (" …" if len(modes) > 5 else ""))
        if conf is not None:
            parts.append(f"least sure on {least_mode} (confidence {conf:.2f})")
        out.append((t, "; ".join(parts) if parts else ("no classifier labels" if t not in info
                                                       else "no stated confidence, no disagreement")))
    return out


def _stratified(store, taxonomy: str, systems: Sequence[str], pool: dict[str, str], order: list[str],
                n: int) -> list[tuple[str, str]]:
    labels, params = _classifier_labels(store, taxonomy, systems)
    # The best available classifier's label of each (trace, mode): the most authoritative.
    present = defaultdict(set)
    for tid, mode in store.fetchall(f"""
            SELECT trace_id, mode FROM ({labels})
            QUALIFY row_number() OVER (PARTITION BY trace_id, mode ORDER BY rank, annotator) = 1 AND present""",
                                    params):
        present[tid].add(mode)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for t in order:  # seeded order inside every stratum
        for mode in sorted(present.get(t, ())) or ["none"]:
            strata[(pool[t], mode)].append(t)
    keys = sorted(strata)
    taken: set[str] = set()
    out: list[tuple[str, str]] = []
    cursor = {k: 0 for k in keys}
    while len(out) < n and keys:
        left = []
        for k in keys:
            lst, i = strata[k], cursor[k]
            while i < len(lst) and lst[i] in taken:
                i += 1
            if i < len(lst):
                t = lst[i]
                taken.add(t)
                why = "no mode present" if k[1] == "none" else f"mode {k[1]} present"
                out.append((t, f"stratum {k[0]} · {why}"))
                i += 1
                if len(out) >= n:
                    break
            cursor[k] = i
            if i < len(lst):
                left.append(k)
        keys = left
    return out


# -- reading review sets ------------------------------------------------------------------
def review_sets(store) -> list[dict[str, Any]]:
    rows = store.fetchall("""SELECT r.review_set_id, r.created_at, r.strategy, r.seed, r.requested, r.taxonomy,
                                    r.systems, count(t.trace_id)
                             FROM review_sets r LEFT JOIN review_set_traces t USING (review_set_id)
                             GROUP BY ALL ORDER BY r.created_at, r.review_set_id""")
    return [{"review_set": r[0], "created_at": r[1].isoformat(timespec="seconds"), "strategy": r[2],
             "seed": r[3], "requested": r[4], "taxonomy": r[5], "systems": json.loads(r[6] or "[]"),
             "traces": int(r[7])} for r in rows]


def load_review_set(store, review_set: str) -> ReviewSet:
    row = store.fetchall("""SELECT review_set_id, created_at, strategy, seed, requested, taxonomy, systems
                            FROM review_sets WHERE review_set_id = ?""", [review_set])
    if not row:
        known = [r["review_set"] for r in review_sets(store)]
        raise UsageError(f"no review set {review_set!r} in this store",
                         ("Known: " + ", ".join(known[-10:])) if known
                         else "Make one with `mast sample --for-review N`.")
    r = row[0]
    traces = [ReviewTrace(int(p), t, s, why) for p, t, s, why in store.fetchall("""
        SELECT r.position, r.trace_id, coalesce(t.system, '(unknown)'), r.reason
        FROM review_set_traces r JOIN traces t USING (trace_id) WHERE r.review_set_id = ?
        ORDER BY r.position""", [review_set])]
    return ReviewSet(r[0], r[1].isoformat(timespec="seconds"), r[2], int(r[3]), int(r[4]), r[5],
                     json.loads(r[6] or "[]"), traces)


# -- labels files -------------------------------------------------------------------------
def _unclosed(raw: bytes) -> bool:
    """Whether JSON text ends with a string, object or list still open: a cut-off file."""
    depth, in_str, esc = 0, False, False
    for ch in raw.decode("utf-8", "replace"):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_str or depth > 0


def read_labels(store, path: str | Path) -> tuple[dict[str, Any], list[Annotation]]:
    """Parse and check a labels file against the store; the document and the rows to store.

    Raises :class:`IngestError` (file and record named) on the first problem found.
    """
    path = str(path)

    def bad(record, msg, hint=None):
        return IngestError(path, record, msg, hint)

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise bad(None, f"cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise bad(None, "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        what = "truncated (it ends inside an object, list or string)" if _unclosed(raw) else "not valid JSON"
        raise bad(None, f"{what}: {e.msg} at line {e.lineno}, column {e.colno}",
                  "Export the labels again from the review page.") from None
    if not isinstance(doc, dict) or doc.get("format") != LABELS_FORMAT:
        raise bad(None, f"not a {LABELS_FORMAT} file (no \"format\": \"{LABELS_FORMAT}\")")
    version = doc.get("version")
    if version != LABELS_VERSION:
        raise bad(None, f"labels file version {version!r}; this mast reads version {LABELS_VERSION}",
                  "Upgrade mast to read a newer labels file." if isinstance(version, int) and version > 1 else None)
    rs_id = doc.get("review_set")
    if not isinstance(rs_id, str) or not store.fetchall("SELECT 1 FROM review_sets WHERE review_set_id = ?", [rs_id]):
        raise bad(None, f"review set {rs_id!r} is not in this store ({getattr(store, 'path', '')})",
                  "Import it into the store the review set was sampled from (`mast -d STORE ingest FILE`).")
    rs = load_review_set(store, rs_id)
    reviewer = doc.get("reviewer")
    if not isinstance(reviewer, str) or not _REVIEWER_RX.match(reviewer):
        raise bad(None, f"reviewer {reviewer!r} is not a name (letters, digits and _ . @ -, up to 64)")
    if doc.get("taxonomy") != rs.taxonomy:
        raise bad(None, f"taxonomy {doc.get('taxonomy')!r} is not the review set's ({rs.taxonomy!r})")
    labels = doc.get("labels")
    if not isinstance(labels, list):
        raise bad(None, "\"labels\" is not a list")
    modes = set(load_taxonomy(rs.taxonomy).mode_ids)
    n_steps = dict(store.fetchall("SELECT trace_id, n_steps FROM traces WHERE trace_id IN "
                                  "(SELECT trace_id FROM review_set_traces WHERE review_set_id = ?)", [rs_id]))
    annotator = f"human:{reviewer}"
    run_id = f"review:{rs_id}:{reviewer}"
    seen: dict[tuple[str, str], int] = {}
    rows: list[Annotation] = []
    for i, rec in enumerate(labels):
        where = f"labels[{i}]"
        if not isinstance(rec, dict):
            raise bad(where, "not an object")
        extra = set(rec) - {"trace_id", "mode", "label", "evidence_steps", "note"}
        if extra:
            raise bad(where, f"unknown field(s): {', '.join(sorted(extra))}")
        tid, mode, label = rec.get("trace_id"), rec.get("mode"), rec.get("label")
        if not isinstance(tid, str) or tid not in n_steps:
            raise bad(where, f"trace {tid!r} is not in review set {rs_id}")
        where = f"labels[{i}] (trace {tid[:15]}, mode {mode})"
        if mode not in modes:
            raise bad(where, f"mode {mode!r} is not in taxonomy {rs.taxonomy}")
        if label not in REVIEW_LABELS:
            raise bad(where, f"label {label!r} is not one of {', '.join(REVIEW_LABELS)}")
        if (tid, mode) in seen:
            raise bad(where, f"trace and mode already labelled in labels[{seen[(tid, mode)]}]",
                      "A file holds one label per trace and mode; fix the duplicate by hand or export again.")
        seen[(tid, mode)] = i
        ev = rec.get("evidence_steps", []) or []
        if not isinstance(ev, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in ev):
            raise bad(where, "evidence_steps is not a list of step numbers")
        out_of_range = [s for s in ev if not 0 <= s < n_steps[tid]]
        if out_of_range:
            raise bad(where, f"evidence step(s) {', '.join(map(str, out_of_range))} out of range: "
                             f"the trace has steps 0–{n_steps[tid] - 1}")
        note = rec.get("note")
        if note is not None and not isinstance(note, str):
            raise bad(where, "note is not text")
        rows.append(Annotation(mode=mode, label=Label.UNKNOWN if label == "unsure" else Label(label),
                               annotator=annotator, taxonomy=rs.taxonomy, run_id=run_id,
                               evidence_steps=sorted(set(ev)), rationale=note or None, trace_id=tid))
    return doc, rows


def import_labels(store, path: str | Path) -> ImportResult:
    """Check a labels file (:func:`read_labels`) and store it in one transaction."""
    doc, rows = read_labels(store, path)
    run_id = f"review:{doc['review_set']}:{doc['reviewer']}"
    with store.transaction():
        replaced = store.fetchall("SELECT count(*) FROM annotations WHERE run_id = ?", [run_id])[0][0]
        store.execute("DELETE FROM annotations WHERE run_id = ?", [run_id])
        store.write_annotations(rows)
    count = {k: sum(1 for a in rows if a.label == k) for k in Label}
    return ImportResult(str(path), doc["review_set"], doc["reviewer"], f"human:{doc['reviewer']}", len(rows),
                        count[Label.PRESENT], count[Label.ABSENT], count[Label.UNKNOWN], int(replaced))


# -- the judge's few-shot examples from reviewed traces ----------------------------------------
@dataclass
class ExamplesResult:
    path: str
    review_set: str
    reviewers: list[str]
    examples: int
    modes: list[str]                 # modes with at least one example
    modes_without: list[str]         # modes of the taxonomy with none (no present label with evidence)


def examples_from_review(store, review_set: str, *, reviewer: str | None = None, step_chars: int = 220,
                         max_evidence: int = 2) -> dict[str, Any]:
    """A ``mast-judge-examples`` document from the human labels of a review set: every
    ``present`` label with evidence steps (of ``reviewer``, or of every reviewer) becomes
    one example, its excerpt cut from the stored trace around the first ``max_evidence``
    evidence steps and its note the rationale; ordered by mode, trace and reviewer (the judge
    shows the first of a mode whose source is not the trace it judges)."""
    rs = load_review_set(store, review_set)
    rows = store.fetchall(
        "SELECT trace_id, mode, annotator, evidence_steps, rationale FROM annotations "
        "WHERE starts_with(run_id, ?) AND label = 'present' AND len(evidence_steps) > 0 "
        "AND (?::VARCHAR IS NULL OR annotator = ?) ORDER BY mode, trace_id, annotator",
        [f"review:{review_set}:", reviewer, f"human:{reviewer}"])
    if not rows:
        who = f" by reviewer {reviewer}" if reviewer else ""
        raise UsageError(f"review set {review_set} has no 'present' label with evidence steps{who}",
                         "An example shows the steps that show a mode: mark them on the review page, then "
                         "import the labels file again.")
    steps = {t.trace_id: t.steps for t in store.load_traces(sorted({r[0] for r in rows}))}
    systems = dict(store.fetchall("SELECT trace_id, system FROM traces WHERE trace_id IN (SELECT unnest(?))",
                                  [sorted(steps)]))
    examples = []
    for tid, mode, annotator, ev, note in rows:
        name = annotator.split(":", 1)[1] if ":" in annotator else annotator
        evidence = sorted(int(e) for e in ev)[:max_evidence]
        why = " ".join((note or "").split()) or f"Labelled {mode} present by reviewer {name}."
        examples.append({"id": f"{review_set}/{name}/{tid}/{mode}", "mode": mode, "verdict": "present",
                         "excerpt": excerpt(steps[tid], evidence, step_chars), "evidence_steps": evidence,
                         "rationale": redact(why) or "",
                         "source": {"trace_id": tid, "dataset": f"review set {review_set}", "record": tid,
                                    "system": systems.get(tid), "labels": f"reviewer {name}"}})
    return {"format": EXAMPLES_FORMAT, "version": EXAMPLES_VERSION, "taxonomy": rs.taxonomy,
            "made_by": f"mast labels examples --review-set {review_set}" + (f" --reviewer {reviewer}" if reviewer else ""),
            "settings": {"step_chars": step_chars, "max_evidence": max_evidence}, "examples": examples}


def write_review_examples(store, review_set: str, path: str | Path, **kw: Any) -> ExamplesResult:
    """:func:`examples_from_review`, written to ``path`` only once the judge's own loader has
    accepted it (a file this writes is always one ``-C examples=`` / ``--examples`` takes)."""
    doc = examples_from_review(store, review_set, **kw)
    mode_ids = load_taxonomy(doc["taxonomy"]).mode_ids
    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    try:
        load_examples(tmp, mode_ids)
    except UsageError:
        tmp.unlink()
        raise
    tmp.replace(p)
    modes = sorted({e["mode"] for e in doc["examples"]}, key=mode_ids.index)
    return ExamplesResult(str(p), review_set, sorted({e["source"]["labels"].split(" ", 1)[1] for e in doc["examples"]}),
                          len(doc["examples"]), modes, [m for m in mode_ids if m not in modes])
