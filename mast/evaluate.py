"""Agreement between two annotators: mode labels (P/R/F1/kappa) and root-cause attributions.

Contract:
- Labels: which label counts and how two annotators' labels are scored is
  :mod:`mast.agreement` (the latest row per trace, mode and annotator; precision,
  recall, F1 and Cohen's kappa as scikit-learn defines them, ``None`` where undefined).
- :func:`agreement` lays ``pred`` against ``gold`` over the whole taxonomy (optionally
  one system): every mode of the taxonomy gets a row, and a mode the two did not both
  label on some trace is *not assessed* (it is not scored as "absent").  The macro
  average is the unweighted mean over the assessed modes where the metric is defined.
- Baselines beside every mode and the macro row (``ModeScore.baselines``, keys
  :data:`MODE_BASELINES`), on the same traces: ``always_present``, ``always_absent``,
  and ``random``: labels drawn present with the gold base rate, as the metrics of the
  *expected* 2×2 table (P = R = F1 = base rate, κ = 0), not of a sampled run.
- Intervals (``ModeScore.kappa_ci`` / ``f1_ci``, ``LabelAgreement.macro_ci``): 95%
  percentile intervals from :data:`BOOTSTRAP` resamples of the shared traces (seeded, so
  the same store gives the same interval): one resample of traces serves every mode and
  the macro average, so the macro interval keeps the modes' correlation.  Past
  :data:`_JOINT_LIMIT` (traces × modes × resamples) each mode is resampled on its own, as a
  multinomial over its 2×2 cells (the same distribution for that mode, at no cost in the
  number of traces), and the macro interval treats modes as independent
  (``macro_ci["method"]`` says which).  ``None`` where
  the metric is undefined in most resamples.  A resample cannot show an error the traces
  do not hold: with no disagreement the interval is [1, 1] whatever n; read it with ``traces``.
- Calibration (:attr:`LabelAgreement.calibration`): the pred's stated confidence as a
  probability that the mode is present (``confidence`` of a present label, 1 −
  ``confidence`` of an absent one; a label without confidence is counted apart) against
  the gold label, in the bins of :mod:`mast.calibration`, overall and per mode.
- :func:`attribution_agreement` compares root causes on traces both annotators
  attributed: agent accuracy (case- and punctuation-insensitive name match), step
  accuracy exact and within +/-k, with the uniform-random baseline (per trace 1/#agents,
  1/#steps and (#steps within +/-k)/#steps, averaged) over the same traces.  It also
  reports coverage and the accuracies over all gold-attributed traces, counting a
  trace pred did not attribute as wrong.  Groups: by a metadata field (e.g. ``subset``)
  or by system.  Beside them, on the same traces, the baselines of
  :mod:`mast.classify.learned.baselines` (``AttributionGroup.baselines``: uniform random,
  majority agent per system, last step, first error step), each over the ``both``
  traces and over all gold traces.  The majority agent is taken from the gold traces
  being scored (in-sample: a generous floor).  Calibration: the pred's confidence
  against agent and step hits on the ``both`` traces.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from mast.agreement import Agreement, ModeAgreement, compare_pair, latest_labels
from mast.calibration import BINS, from_bins, reliability
from mast.classify.learned import baselines as B
from mast.classify.learned.features import load_steps
from mast.errors import UsageError
from mast.scope import UNKNOWN_SYSTEM
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy


@dataclass
class ModeScore:
    mode: str
    name: str
    assessed: bool
    traces: int = 0          # traces with a label from both annotators for this mode
    support: int = 0         # gold positives
    predicted: int = 0       # pred positives
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    kappa: float | None = None
    base_rate: float | None = None   # gold positives / traces
    #: name -> {"precision", "recall", "f1", "kappa"} on the same traces (MODE_BASELINES)
    baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)
    kappa_ci: list[float | None] | None = None   # 95% bootstrap interval (see the module docstring)
    f1_ci: list[float | None] | None = None


MODE_BASELINES = ("always_present", "always_absent", "random")
BOOTSTRAP = 1000
_BOOT_CHUNK = 50
#: traces × modes × resamples above which the joint resampling gives way to one per mode
_JOINT_LIMIT = 50_000_000
_METRICS = ("precision", "recall", "f1", "kappa")


@dataclass
class LabelAgreement:
    """``mast evaluate``'s answer: one row per mode of the taxonomy."""

    gold: str
    pred: str
    taxonomy: str
    systems: list[str]
    traces: int
    modes: list[ModeScore]
    macro: dict[str, float | None]
    not_assessed: list[str]
    #: baseline name -> macro metrics over the same modes as ``macro``
    macro_baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: ``overall`` and ``modes`` (mode -> Reliability) of pred's confidence; see the module docstring
    calibration: dict[str, Any] = field(default_factory=dict)
    #: metric -> 95% bootstrap interval of the macro average (kappa, f1)
    macro_ci: dict[str, list[float | None] | None] = field(default_factory=dict)
    bootstrap: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AttributionGroup:
    group: str
    gold_traces: int          # traces the gold annotator attributed
    both: int                 # ... that pred attributed too
    coverage: float | None
    agent_accuracy: float | None
    step_accuracy: float | None
    step_accuracy_within_k: float | None
    agent_accuracy_all: float | None     # over all gold traces, missing pred = wrong
    step_accuracy_all: float | None
    random_agent: float | None           # uniform-random baseline on the `both` traces
    random_step: float | None
    random_step_within_k: float | None
    #: baseline name -> {"agent_accuracy", "step_accuracy"} on ``both``, and ``..._all`` over every gold trace
    baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: "agent" / "step" -> Reliability of pred's confidence on ``both`` (traces with a confidence)
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttributionAgreement:
    gold: str
    pred: str
    tolerance: int
    group_by: str
    overall: AttributionGroup
    groups: list[AttributionGroup] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def annotators(store) -> list[str]:
    return [r[0] for r in store.fetchall("SELECT DISTINCT annotator FROM annotations ORDER BY 1")]


def _check_annotator(store, name: str, table: str) -> None:
    if not store.fetchall(f"SELECT 1 FROM {table} WHERE annotator = ? LIMIT 1", [name]):
        known = [r[0] for r in store.fetchall(f"SELECT DISTINCT annotator FROM {table} ORDER BY 1")]
        raise UsageError(f"no {table} by annotator {name!r}",
                         "Known: " + (", ".join(known) if known else "none (run `mast classify` or ingest labelled data)"))


def agreement(store, gold: str, pred: str, *, taxonomy: str = DEFAULT_TAXONOMY,
              systems: Sequence[str] = (), bootstrap: int = BOOTSTRAP, seed: int = 0) -> LabelAgreement:
    tax = load_taxonomy(taxonomy)
    _check_annotator(store, gold, "annotations")
    _check_annotator(store, pred, "annotations")
    labels, params = latest_labels(store, taxonomy, systems=list(systems) or None, annotators=[gold, pred])
    pair = compare_pair(store, labels, params, gold, pred)
    by_mode = {m.mode: m for m in pair.modes}
    scores = [_score(m.id, m.name, by_mode.get(m.id)) for m in tax.modes]
    # Labels of modes outside the taxonomy (codes of an older draft) are not scored.
    on_taxonomy = Agreement(gold, pred, pair.traces, [m for m in pair.modes if m.mode in tax.mode_ids])
    macro = {k: on_taxonomy.macro(k) for k in _METRICS}
    macro_base = {}
    for name in MODE_BASELINES:
        vals = [_baseline_table(m, name) for m in on_taxonomy.modes if m.assessed]
        macro_base[name] = {k: _clean(_mean(getattr(v, k) for v in vals)) for k in _METRICS}
    res = LabelAgreement(gold, pred, taxonomy, list(systems), pair.traces, scores, macro,
                         [s.mode for s in scores if not s.assessed], macro_base,
                         _label_calibration(store, labels, params, gold, pred))
    if bootstrap > 0:
        cis, res.macro_ci = intervals(store, labels, params, gold, pred,
                                      [s.mode for s in scores if s.assessed], bootstrap=bootstrap, seed=seed)
        for s in scores:
            if s.mode in cis:
                s.kappa_ci, s.f1_ci = cis[s.mode]["kappa"], cis[s.mode]["f1"]
        res.bootstrap = bootstrap
    return res


def _ci(values: np.ndarray) -> list[float | None] | None:
    v = values[np.isfinite(values)]
    if not len(v) or len(v) < 0.5 * len(values):
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [round(float(lo), 4) + 0.0, round(float(hi), 4) + 0.0]


@dataclass(frozen=True)
class PairCells:
    """The 2×2 cell of every (trace, mode) two annotators both labelled, as arrays:
    ``trace`` (0-based, in trace id order), ``mode`` (ids) and ``code`` = 2·gold + pred
    (3 tp, 1 fp, 2 fn, 0 tn)."""

    trace: np.ndarray
    mode: np.ndarray
    code: np.ndarray


def interval_rows(store, labels: str, params: list, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], PairCells]:
    """(gold, pred) -> :class:`PairCells`, for all the pairs in one query (one self-join)."""
    empty = PairCells(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64))
    out = {tuple(p): empty for p in pairs}
    if not pairs:
        return out
    df = store.query(f"""
        WITH l AS ({labels}), pr AS (SELECT unnest(?::VARCHAR[]) AS gold, unnest(?::VARCHAR[]) AS pred,
                                            unnest(range(len(?::VARCHAR[]))) AS pair)
        SELECT pr.pair, (dense_rank() OVER (PARTITION BY pr.pair ORDER BY g.trace_id) - 1)::BIGINT AS t, g.mode,
               (g.present::INTEGER * 2 + p.present::INTEGER)::BIGINT AS code
        FROM pr JOIN l g ON g.annotator = pr.gold
        JOIN l p ON p.annotator = pr.pred AND p.trace_id = g.trace_id AND p.mode = g.mode""",
                     [*params, [p[0] for p in pairs], [p[1] for p in pairs], [p[0] for p in pairs]])
    for (i,), part in df.partition_by("pair", as_dict=True).items():
        out[tuple(pairs[int(i)])] = PairCells(part["t"].to_numpy(), part["mode"].to_numpy().astype(object),
                                              part["code"].to_numpy())
    return out


def intervals(store, labels: str, params: list, gold: str, pred: str, modes: Sequence[str], *,
              bootstrap: int = BOOTSTRAP, seed: int = 0) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Bootstrap intervals of κ and F1 of ``pred`` against ``gold`` (see :func:`intervals_of`)."""
    return intervals_of(interval_rows(store, labels, params, [(gold, pred)])[(gold, pred)], modes,
                        bootstrap=bootstrap, seed=seed)


def intervals_of(cells: PairCells, modes: Sequence[str], *, bootstrap: int = BOOTSTRAP,
                 seed: int = 0) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Bootstrap intervals of κ and F1 per mode and of their macro averages over ``modes``.

    Every resample draws the shared traces with replacement; a mode's 2×2 table in a
    resample counts each of its traces as often as the trace was drawn (the same draw for
    every mode)."""
    keep = np.isin(cells.mode, list(modes))
    seen = set(cells.mode[keep].tolist())
    modes = [m for m in modes if m in seen]
    if not modes:
        return {}, {"kappa": None, "f1": None}
    mix = {m: j for j, m in enumerate(modes)}
    mode_ix = np.array([mix[m] for m in cells.mode[keep].tolist()], dtype=np.int64)
    trace_ix = np.unique(cells.trace[keep], return_inverse=True)[1].ravel()
    code = cells.code[keep]
    n_t = int(trace_ix.max()) + 1
    if n_t * len(modes) * bootstrap > _JOINT_LIMIT:
        return _intervals_per_mode(mode_ix, code, modes, bootstrap, seed)
    M = np.zeros((n_t, 4 * len(modes)), dtype=np.float64)
    M[trace_ix, 4 * mode_ix + code] = 1.0
    rng = np.random.default_rng(seed)
    kap, f1 = [], []
    for start in range(0, bootstrap, _BOOT_CHUNK):
        b = min(_BOOT_CHUNK, bootstrap - start)
        draws = rng.integers(0, n_t, size=(b, n_t)) + (np.arange(b)[:, None] * n_t)
        C = np.bincount(draws.ravel(), minlength=b * n_t).reshape(b, n_t).astype(np.float64)
        k, f = _table_metrics((C @ M).reshape(b, len(modes), 4))
        kap.append(k)
        f1.append(f)
    K, F = np.vstack(kap), np.vstack(f1)
    out = {m: {"kappa": _ci(K[:, j]), "f1": _ci(F[:, j])} for m, j in mix.items()}
    with warnings.catch_warnings():  # an all-NaN resample: the interval then says None
        warnings.simplefilter("ignore")
        macro = {"kappa": _ci(np.nanmean(K, axis=1)), "f1": _ci(np.nanmean(F, axis=1)), "method": "joint"}
    return out, macro


def _table_metrics(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """κ and F1 of 2×2 tables ``t[..., (tn, fp, fn, tp)]``; NaN where undefined."""
    tn, fp, fn, tp = t[..., 0], t[..., 1], t[..., 2], t[..., 3]
    n = tn + fp + fn + tp
    with np.errstate(invalid="ignore", divide="ignore"):
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
        k = (po - pe) / (1 - pe)
        k[pe >= 1 - 1e-12] = np.nan
        f = 2 * tp / (2 * tp + fp + fn)
    return k, f


def _intervals_per_mode(mode_ix: np.ndarray, code: np.ndarray, modes: Sequence[str], bootstrap: int,
                        seed: int) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Many shared traces: each mode's resampled 2×2 table drawn at once as a multinomial
    over its four cells (the same distribution as drawing its traces, at no cost in n);
    the macro interval then treats the modes as independent (``method`` says so)."""
    counts = np.bincount(4 * mode_ix + code, minlength=4 * len(modes)).reshape(len(modes), 4).astype(np.float64)
    tables = dict(zip(modes, counts))
    rng = np.random.default_rng(seed)
    out, ks, fs = {}, [], []
    for m in modes:
        n = int(tables[m].sum())
        k, f = _table_metrics(rng.multinomial(n, tables[m] / n, size=bootstrap).astype(np.float64))
        out[m] = {"kappa": _ci(k), "f1": _ci(f)}
        ks.append(k)
        fs.append(f)
    with warnings.catch_warnings():  # an all-NaN resample: the interval then says None
        warnings.simplefilter("ignore")
        macro = {"kappa": _ci(np.nanmean(np.vstack(ks), axis=0)), "f1": _ci(np.nanmean(np.vstack(fs), axis=0)),
                 "method": "independent modes"}
    return out, macro


def _mean(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def _baseline_table(m: ModeAgreement, name: str) -> ModeAgreement:
    """The 2×2 table a baseline gets on ``m``'s traces (the random one in expectation)."""
    n, pos = m.n, m.support
    neg = n - pos
    if name == "always_present":
        return ModeAgreement(m.gold, name, m.mode, n, pos, neg, 0, 0)
    if name == "always_absent":
        return ModeAgreement(m.gold, name, m.mode, n, 0, 0, pos, neg)
    p = pos / n if n else 0.0
    # expected counts (floats): the metrics of the expected table
    return ModeAgreement(m.gold, name, m.mode, n, pos * p, neg * p, pos * (1 - p), neg * (1 - p))  # type: ignore[arg-type]


def _clean(x: float | None) -> float | None:
    return None if x is None else round(x, 12) + 0.0  # the expected table's κ is 0 up to rounding (and never -0)


def _label_calibration(store, labels: str, params: list, gold: str, pred: str) -> dict[str, Any]:
    rows = store.fetchall(f"""
        WITH l AS ({labels}),
        j AS (SELECT p.mode, CASE WHEN p.present THEN p.confidence ELSE 1 - p.confidence END AS pp,
                     g.present::INT AS y
              FROM l g JOIN l p ON g.trace_id = p.trace_id AND g.mode = p.mode
              WHERE g.annotator = ? AND p.annotator = ?)
        SELECT mode, least({BINS - 1}, greatest(0, floor(pp * {BINS})))::INT AS b, count(*), sum(pp), sum(y),
               sum((pp - y) * (pp - y))
        FROM j WHERE pp IS NOT NULL GROUP BY ALL ORDER BY 1, 2""", [*params, gold, pred])
    missing = store.fetchall(f"""
        WITH l AS ({labels})
        SELECT count(*) FROM l g JOIN l p ON g.trace_id = p.trace_id AND g.mode = p.mode
        WHERE g.annotator = ? AND p.annotator = ? AND p.confidence IS NULL""", [*params, gold, pred])[0][0]
    per: dict[str, list] = {}
    total = [[0, 0.0, 0.0, 0.0] for _ in range(BINS)]
    for mode, b, n, sp, sy, se in rows:
        acc = per.setdefault(mode, [[0, 0.0, 0.0, 0.0] for _ in range(BINS)])
        for a in (acc[b], total[b]):
            a[0] += int(n)
            a[1] += float(sp)
            a[2] += float(sy)
            a[3] += float(se)
    event = "mode present"
    return {"event": event, "without_confidence": int(missing),
            "overall": from_bins([tuple(a) for a in total], event=event).to_dict(),
            "modes": {m: from_bins([tuple(a) for a in acc], event=event).to_dict() for m, acc in per.items()}}


def _score(mode: str, name: str, m: ModeAgreement | None) -> ModeScore:
    if m is None:
        return ModeScore(mode, name, assessed=False)
    base = {b: {k: _clean(getattr(_baseline_table(m, b), k)) for k in _METRICS} for b in MODE_BASELINES}
    return ModeScore(mode, name, True, m.n, m.support, m.predicted, m.tp, m.fp, m.fn, m.tn,
                     m.precision, m.recall, m.f1, m.kappa, m.support / m.n if m.n else None, base)


def attribution_agreement(store, gold: str = "human", pred: str = "rules", *, tolerance: int = 1,
                          group_by: str = "subset") -> AttributionAgreement:
    """Root-cause agreement; ``group_by`` is a metadata field, or ``system``."""
    if tolerance < 0:
        raise UsageError("--tolerance must be 0 or more")
    _check_annotator(store, gold, "attributions")
    _check_annotator(store, pred, "attributions")
    if group_by == "system":
        grp = f"coalesce(t.system, '{UNKNOWN_SYSTEM}')"
    else:
        grp = "coalesce(json_extract_string(t.metadata, '$.' || ?), '(none)')"
    sql = f"""
        WITH latest AS (
            SELECT trace_id, annotator, agent, step, confidence FROM (
                SELECT *, row_number() OVER (PARTITION BY trace_id, annotator
                                             ORDER BY created_at DESC, run_id DESC NULLS LAST) AS rn
                FROM attributions WHERE annotator IN (?, ?)
            ) WHERE rn = 1
        ),
        agents AS (
            SELECT trace_id, count(DISTINCT agent) AS n_agents FROM steps
            WHERE trace_id IN (SELECT trace_id FROM latest) AND agent IS NOT NULL GROUP BY trace_id
        )
        SELECT {grp} AS grp, g.trace_id,
               g.agent AS g_agent, g.step AS g_step, p.agent AS p_agent, p.step AS p_step,
               t.n_steps, coalesce(a.n_agents, 0) AS n_agents, p.trace_id IS NOT NULL AS has_pred,
               p.confidence AS p_conf, coalesce(t.system, '{UNKNOWN_SYSTEM}') AS system
        FROM latest g JOIN traces t USING (trace_id)
        LEFT JOIN latest p ON p.trace_id = g.trace_id AND p.annotator = ?
        LEFT JOIN agents a ON a.trace_id = g.trace_id
        WHERE g.annotator = ?
        ORDER BY 1, 2"""
    params = [gold, pred] + ([] if group_by == "system" else [group_by]) + [pred, gold]
    rows = store.fetchall(sql, params)
    base = _baseline_hits(store, rows)
    groups: dict[str, list[tuple]] = {}
    for r in rows:
        groups.setdefault(r[0], []).append(r)
    out = [_score_group(name, rs, tolerance, base) for name, rs in sorted(groups.items())]
    return AttributionAgreement(gold, pred, tolerance, group_by, _score_group("all", rows, tolerance, base), out)


def _baseline_hits(store, rows: list[tuple]) -> dict[str, dict[str, tuple[float, float]]]:
    """trace_id -> baseline -> (agent hit, step hit) on every gold trace of ``rows``;
    the majority agent from all of them (in-sample)."""
    gold = [B.Gold(r[1], r[10], r[2], r[3]) for r in rows]
    table = load_steps(store, [g.trace_id for g in gold])
    idx = list(range(len(gold)))
    out: dict[str, dict[str, tuple[float, float]]] = {g.trace_id: {} for g in gold}
    for name, (ag, st) in B.score(table, gold, idx, idx).items():
        for i, g in enumerate(gold):
            out[g.trace_id][name] = (float(ag[i]), float(st[i]))
    return out


def _score_group(name: str, rows: list[tuple], k: int,
                 base: dict[str, dict[str, tuple[float, float]]]) -> AttributionGroup:
    n_gold = len(rows)
    both = [r for r in rows if r[8]]
    agent_hits = [bool(r[2]) and B.norm_agent(r[2]) == B.norm_agent(r[4]) for r in both]
    step_hits = [r[3] is not None and r[5] is not None and r[3] == r[5] for r in both]
    near_hits = [r[3] is not None and r[5] is not None and abs(r[3] - r[5]) <= k for r in both]

    def frac(xs, n) -> float | None:
        return sum(xs) / n if n else None

    def rnd_agent(r):
        return 1.0 / r[7] if r[7] else 0.0

    def rnd_step(r):
        return 1.0 / r[6] if r[6] else 0.0

    def rnd_near(r):
        n, g = r[6], r[3]
        if not n or g is None:
            return 0.0
        lo, hi = max(0, g - k), min(n - 1, g + k)
        return max(0, hi - lo + 1) / n

    return AttributionGroup(
        group=name, gold_traces=n_gold, both=len(both), coverage=frac([1] * len(both), n_gold),
        agent_accuracy=frac(agent_hits, len(both)), step_accuracy=frac(step_hits, len(both)),
        step_accuracy_within_k=frac(near_hits, len(both)),
        agent_accuracy_all=frac(agent_hits, n_gold), step_accuracy_all=frac(step_hits, n_gold),
        random_agent=frac([rnd_agent(r) for r in both], len(both)),
        random_step=frac([rnd_step(r) for r in both], len(both)),
        random_step_within_k=frac([rnd_near(r) for r in both], len(both)),
        baselines={b: {"agent_accuracy": frac([base[r[1]][b][0] for r in both], len(both)),
                       "step_accuracy": frac([base[r[1]][b][1] for r in both], len(both)),
                       "agent_accuracy_all": frac([base[r[1]][b][0] for r in rows], n_gold),
                       "step_accuracy_all": frac([base[r[1]][b][1] for r in rows], n_gold)}
                   for b in B.NAMES},
        calibration={
            "agent": reliability([(r[9], h) for r, h in zip(both, agent_hits) if r[9] is not None],
                                 event="root-cause agent is gold").to_dict(),
            "step": reliability([(r[9], h) for r, h in zip(both, step_hits) if r[9] is not None],
                                event="root-cause step is gold").to_dict(),
            "without_confidence": sum(1 for r in both if r[9] is None)})
