"""Compare two selections of traces, and gate a CI job on what one selection shows.

Contract: pure functions of a :class:`mast.store.Store` (read-only use) returning named
types; counting happens in DuckDB, the statistics on the counts in a few lines here.

- **Selection** (:func:`parse_selection`): terms ``key=value`` separated by commas or
  spaces; different keys must all hold, a key given twice means either value.  Keys:
  ``system`` (``(unknown)`` for traces without one), ``version`` (the trace metadata's
  ``version`` or ``system_version``, where the source recorded one), ``since`` and
  ``until`` (``started_at`` on or after / before a date or time, UTC), ``run`` (the traces
  a classification run labelled, and only that run's labels), ``annotator`` (only that
  annotator's labels).  ``all`` (or an empty text) is every trace.
- **Exposure** of a mode: among the selected traces on which the mode was assessed, the
  share labelled present, by the best-available label (the most authoritative
  annotator's, :func:`mast.agreement.authority_rank`, as the report counts).  A mode
  nobody assessed has ``n == 0`` and no rate, never 0 %.  ``any mode``: the share of the
  traces assessed on some mode that have at least one mode present.
- **Difference** ``candidate - baseline`` with its 95 % interval by Newcombe's hybrid
  score method (from the two Wilson intervals), and the two-sided Fisher exact test of
  the 2x2 table (the hypergeometric sum over tables no likelier than the observed one,
  with scipy's relative tolerance), which holds for small counts.
- **Figures** per selection: traces, steps, tokens and cost per trace (``None`` when no
  trace recorded them), the share of inter-agent message steps
  (:data:`mast.coordination.MESSAGE_KINDS`), solved traces and the cost per solved task;
  and from the coordination analytics (:func:`mast.coordination.trace_figures_table`):
  the traces whose timing holds, their mean concurrency and serial fraction, the pooled
  coordination token share, and the traces per topology.
- **Gates** (:func:`parse_gate`, :func:`check`): ``MODE OP VALUE`` (``1.3 > 10%``),
  ``exposure OP VALUE`` (the any-mode share), ``any mode OP VALUE``, ``any mode rises``
  and ``MODE rises`` (against a baseline: higher with Fisher p < 0.05), and
  ``cost per task``, ``cost per solved task``, ``tokens per task``, ``steps per task``,
  ``message share``, ``coordination token share``, ``serial fraction`` ``OP VALUE``; ``OP`` is one of ``> >= < <=``, a value may end in
  ``%`` (a share) or start with ``$``; ``TAXONOMY:`` before a gate (``distsys-v1:DS3 > 5%``)
  reads that taxonomy's labels, so one call can gate both.  A text that is none of these is a
  :class:`GateError` naming it.  A gate that cannot be checked (a figure no trace
  recorded, a mode nobody assessed) counts as breached: CI must not pass on a blank.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from mast.agreement import authority_rank_sql, latest_labels
from mast.coordination import MESSAGE_KINDS, drop_tables, trace_figures_table
from mast.errors import UsageError
from mast.scope import UNKNOWN_SYSTEM
from mast.taxonomy import load as load_taxonomy

Z95 = 1.959963984540054
ALPHA = 0.05
_KEYS = ("system", "version", "since", "until", "run", "annotator")


class SelectionError(UsageError):
    pass


class GateError(UsageError):
    pass


# -- selections ----------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    text: str
    terms: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def traces_sql(self) -> tuple[str, list]:
        """``SELECT trace_id FROM traces`` restricted to the selection, and its parameters."""
        where, params = ["1=1"], []
        t = self.terms
        if "system" in t:
            where.append("coalesce(system, ?) IN (SELECT unnest(?))")
            params += [UNKNOWN_SYSTEM, list(t["system"])]
        if "version" in t:
            where.append("coalesce(metadata->>'version', metadata->>'system_version') IN (SELECT unnest(?))")
            params.append(list(t["version"]))
        for key, op in (("since", ">="), ("until", "<")):
            if key in t:  # several values of a bound: the widest holds ("either")
                where.append(f"started_at {op} ?")
                params.append(min(t[key]) if key == "since" else max(t[key]))
        if "run" in t:
            where.append("trace_id IN (SELECT trace_id FROM annotations WHERE run_id IN (SELECT unnest(?)))")
            params.append(list(t["run"]))
        return f"SELECT trace_id FROM traces WHERE {' AND '.join(where)}", params

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "terms": {k: list(v) for k, v in self.terms.items()}}


def parse_selection(text: str | None) -> Selection:
    """``"system=crew-v1,since=2026-11-01"`` -> :class:`Selection`; bad terms are a
    :class:`SelectionError` naming the term and the keys."""
    text = (text or "").strip()
    terms: dict[str, list[str]] = {}
    if text.lower() in ("", "all"):
        return Selection(text or "all")
    for part in (p for p in re.split(r"[,\s]+", text) if p):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value or key not in _KEYS:
            raise SelectionError(f"selection {text!r}: cannot read {part!r}",
                                 "Write terms key=value (keys: " + ", ".join(_KEYS) + "), e.g. "
                                 "system=crew-v1,since=2026-11-01 or run=ID; `all` is every trace.")
        if key in ("since", "until"):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise SelectionError(f"selection {text!r}: {key}={value!r} is not a date or time",
                                     "Use ISO 8601, e.g. since=2026-11-01 or since=2026-11-01T08:00") from None
        terms.setdefault(key, []).append(value)
    return Selection(text, {k: tuple(v) for k, v in terms.items()})


# -- statistics ------------------------------------------------------------------------

def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """95 % Wilson score interval of k out of n; None when n == 0."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """95 % interval of p2 - p1 (Newcombe 1998, method 10: hybrid score from two Wilson intervals)."""
    w1, w2 = wilson(k1, n1), wilson(k2, n2)
    if w1 is None or w2 is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p2 - p1
    return (d - math.sqrt((p2 - w2[0]) ** 2 + (w1[1] - p1) ** 2),
            d + math.sqrt((w2[1] - p2) ** 2 + (p1 - w1[0]) ** 2))


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided Fisher exact p of the table [[k1, n1-k1], [k2, n2-k2]]: the total
    probability, with all margins fixed, of the tables no likelier than the observed one."""
    if n1 <= 0 or n2 <= 0:
        return None
    col, total = k1 + k2, n1 + n2

    def logp(a: int) -> float:  # hypergeometric: a present in row 1
        return _lcomb(n1, a) + _lcomb(n2, col - a) - _lcomb(total, col)

    lo, hi = max(0, col - n2), min(col, n1)
    obs = logp(k1)
    # scipy's tolerance: tables within a relative 1e-7 of the observed count as "as likely"
    p = sum(math.exp(lp) for lp in (logp(a) for a in range(lo, hi + 1)) if lp <= obs + math.log1p(1e-7))
    return min(1.0, p)


def _lcomb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


# -- exposure and figures --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Exposure:
    count: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.count / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.count, self.n)

    def as_dict(self) -> dict[str, Any]:
        return {"present": self.count, "assessed": self.n, "exposure": self.rate,
                "ci": list(self.ci) if self.ci else None}


@dataclass(frozen=True, slots=True)
class Figures:
    traces: int
    steps_per_trace: float | None
    tokens_per_trace: float | None
    cost_per_trace: float | None
    message_share: float | None
    solved: int
    outcome_known: int
    cost_per_solved_task: float | None
    timed_traces: int = 0                       # traces whose timing the analytics could read
    concurrency: float | None = None            # mean over the timed traces
    serial_fraction: float | None = None        # mean over the timed traces
    coordination_token_share: float | None = None  # coordination tokens / tokens, pooled
    topologies: dict | None = None              # topology -> traces

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True)
class Side:
    selection: Selection
    figures: Figures
    modes: dict[str, Exposure]
    any_mode: Exposure


def measure(store, selection: Selection, taxonomy: str, coordination_table: str | None = None) -> Side:
    """Exposure per mode (best-available labels) and the figures of one selection.
    ``coordination_table``: the per-trace analytics of every trace, when the caller has
    them (:func:`compare` computes them once for both sides); else computed here."""
    if coordination_table is None:
        try:
            return measure(store, selection, taxonomy, trace_figures_table(store))
        finally:
            drop_tables(store)
    tax = load_taxonomy(taxonomy)
    sel_sql, sel_params = selection.traces_sql()
    labels, lab_params = _labels_sql(store, selection, taxonomy)
    rows = store.fetchall(f"""
        WITH sel AS ({sel_sql}), l AS ({labels}),
        best AS (SELECT l.* FROM l JOIN sel USING (trace_id)
                 QUALIFY row_number() OVER (PARTITION BY l.trace_id, l.mode ORDER BY l.rank, l.annotator) = 1)
        SELECT mode, count(*) FILTER (WHERE present), count(*) FROM best GROUP BY mode
        UNION ALL
        SELECT NULL, count(*) FILTER (WHERE p), count(*) FROM (SELECT bool_or(present) AS p FROM best GROUP BY trace_id)
        """, [*sel_params, *lab_params])
    by_mode = {m: Exposure(int(k), int(n)) for m, k, n in rows if m is not None}
    any_mode = next(Exposure(int(k), int(n)) for m, k, n in rows if m is None)
    modes = {m: by_mode.get(m, Exposure(0, 0)) for m in tax.mode_ids}
    f = store.fetchall(f"""
        WITH sel AS ({sel_sql}),
        t AS (SELECT t.* FROM traces t JOIN sel USING (trace_id)),
        k AS (SELECT count(*) AS steps, count(*) FILTER (WHERE s.kind IN {MESSAGE_KINDS}) AS msgs
              FROM steps s JOIN sel USING (trace_id))
        SELECT count(*), sum(n_steps), count(tokens_in) + count(tokens_out),
               sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)), count(cost_usd), sum(cost_usd),
               count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE outcome <> 'unknown'),
               any_value(k.steps), any_value(k.msgs)
        FROM t, k""", sel_params)[0]
    n, steps, n_tok, tokens, n_cost, cost, solved, known, all_steps, msgs = f
    n = int(n)
    figures = Figures(
        traces=n, steps_per_trace=(steps / n) if n else None,
        tokens_per_trace=(tokens / n) if n and n_tok else None,
        cost_per_trace=(cost / n) if n and n_cost else None,
        message_share=(msgs / all_steps) if all_steps else None,
        solved=int(solved), outcome_known=int(known),
        cost_per_solved_task=(cost / solved) if solved and n_cost else None,
        **_coordination(store, sel_sql, sel_params, coordination_table))
    return Side(selection, figures, modes, any_mode)


def _coordination(store, sel_sql: str, sel_params: list, table: str) -> dict[str, Any]:
    timed, conc, serial, coord, tokens = store.fetchall(f"""
        WITH sel AS ({sel_sql})
        SELECT count(c.concurrency), avg(c.concurrency), avg(c.serial_fraction),
               sum(c.coordination_tokens) FILTER (WHERE c.tokens > 0), sum(c.tokens) FILTER (WHERE c.tokens > 0)
        FROM {table} c JOIN sel USING (trace_id)""", sel_params)[0]
    topo = dict(store.fetchall(f"""
        WITH sel AS ({sel_sql})
        SELECT coalesce(c.topology, 'unknown'), count(*) FROM {table} c JOIN sel USING (trace_id)
        GROUP BY 1 ORDER BY 1""", sel_params))
    return {"timed_traces": int(timed), "concurrency": conc, "serial_fraction": serial,
            "coordination_token_share": (coord / tokens) if tokens and coord is not None else None,
            "topologies": topo}


def _labels_sql(store, selection: Selection, taxonomy: str) -> tuple[str, list]:
    """Labels that count (columns ``trace_id, mode, annotator, present, rank``): the
    latest per annotator, or, for ``run=``, that run's own."""
    runs, annotators = selection.terms.get("run"), selection.terms.get("annotator")
    if runs:
        where, params = ["taxonomy = ?", "label IN ('present', 'absent')", "run_id IN (SELECT unnest(?))"], \
            [taxonomy, list(runs)]
        if annotators:
            where.append("annotator IN (SELECT unnest(?))")
            params.append(list(annotators))
        return (f"SELECT trace_id, mode, annotator, label = 'present' AS present, {authority_rank_sql()} AS rank "
                f"FROM annotations WHERE {' AND '.join(where)}", params)
    sql, params = latest_labels(store, taxonomy, annotators=list(annotators) if annotators else None)
    return f"SELECT trace_id, mode, annotator, present, rank FROM ({sql})", params


# -- comparison ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ModeDiff:
    mode: str
    name: str
    baseline: Exposure
    candidate: Exposure

    @property
    def diff(self) -> float | None:
        b, c = self.baseline.rate, self.candidate.rate
        return None if b is None or c is None else c - b

    @property
    def ci(self) -> tuple[float, float] | None:
        return newcombe(self.baseline.count, self.baseline.n, self.candidate.count, self.candidate.n)

    @property
    def p(self) -> float | None:
        return fisher_exact(self.baseline.count, self.baseline.n, self.candidate.count, self.candidate.n)

    @property
    def rises(self) -> bool:
        """Higher in the candidate, and not by chance (Fisher p < :data:`ALPHA`)."""
        p = self.p
        return self.diff is not None and self.diff > 0 and p is not None and p < ALPHA

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "name": self.name, "baseline": self.baseline.as_dict(),
                "candidate": self.candidate.as_dict(), "diff": self.diff,
                "diff_ci": list(self.ci) if self.ci else None, "fisher_p": self.p, "rises": self.rises}


@dataclass(frozen=True)
class Comparison:
    taxonomy: str
    baseline: Side
    candidate: Side
    modes: list[ModeDiff]
    any_mode: ModeDiff

    def as_dict(self) -> dict[str, Any]:
        return {"taxonomy": self.taxonomy,
                "baseline": {**self.baseline.selection.as_dict(), "figures": self.baseline.figures.as_dict()},
                "candidate": {**self.candidate.selection.as_dict(), "figures": self.candidate.figures.as_dict()},
                "modes": [m.as_dict() for m in self.modes], "any_mode": self.any_mode.as_dict()}


def compare(store, baseline: Selection, candidate: Selection, taxonomy: str,
            coordination_table: str | None = None) -> Comparison:
    if coordination_table is None:
        try:
            return compare(store, baseline, candidate, taxonomy, trace_figures_table(store))  # once, for both sides
        finally:
            drop_tables(store)
    tax = load_taxonomy(taxonomy)
    b = measure(store, baseline, taxonomy, coordination_table)
    c = measure(store, candidate, taxonomy, coordination_table)
    modes = [ModeDiff(m.id, m.name, b.modes[m.id], c.modes[m.id]) for m in tax.modes]
    return Comparison(taxonomy, b, c, modes, ModeDiff("any", "any mode", b.any_mode, c.any_mode))


# -- gates ---------------------------------------------------------------------------

_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}
_FIGURES = {"cost per task": "cost_per_trace", "cost per solved task": "cost_per_solved_task",
            "tokens per task": "tokens_per_trace", "steps per task": "steps_per_trace",
            "message share": "message_share", "coordination token share": "coordination_token_share",
            "serial fraction": "serial_fraction"}
_SHARES = ("message share", "coordination token share", "serial fraction")
_GATE_RX = re.compile(r"^\s*(?P<subject>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>\$?\s*[0-9]*\.?[0-9]+)\s*(?P<pct>%?)\s*$")
_RISES_RX = re.compile(r"^\s*(?P<subject>.+?)\s+rises\s*$", re.I)


@dataclass(frozen=True)
class Gate:
    text: str
    subject: str          # a mode id, "any mode", "exposure", or a figure name
    op: str | None        # None for "rises"
    value: float | None
    taxonomy: str = ""    # whose modes and labels the gate reads

    @property
    def needs_baseline(self) -> bool:
        return self.op is None


def parse_gate(text: str, taxonomy: str) -> Gate:
    """One ``--fail-on`` expression; a :class:`GateError` naming it when it is none of the forms.
    ``TAXONOMY:EXPR`` (``distsys-v1:DS3 > 5%``) reads that taxonomy's labels instead of ``taxonomy``'s."""
    head, sep, rest = text.partition(":")
    if sep and re.fullmatch(r"\s*[a-z][a-z0-9-]*-v[0-9]+\s*", head):
        try:
            load_taxonomy(head.strip())
        except UsageError:
            raise GateError(f"--fail-on {text!r}: no taxonomy {head.strip()!r}", "See `mast taxonomy`.") from None
        g = parse_gate(rest, head.strip())
        return Gate(text, g.subject, g.op, g.value, g.taxonomy)
    return _parse_gate(text, taxonomy)


def _parse_gate(text: str, taxonomy: str) -> Gate:
    mode_ids = load_taxonomy(taxonomy).mode_ids
    hint = ("Forms: 'MODE > 10%' (a mode of " + taxonomy + "; TAXONOMY:MODE for another), 'exposure > 30%', "
            "'any mode > 20%', "
            "'any mode rises', 'MODE rises', '" + "', '".join(f"{k} > N" for k in _FIGURES) + "'.")
    m = _RISES_RX.match(text)
    if m:
        subject = m.group("subject").strip().lower()
        if subject == "any mode" or subject.upper() in map(str.upper, mode_ids):
            return Gate(text, _mode_id(subject, mode_ids), None, None, taxonomy)
        raise GateError(f"--fail-on {text!r}: {m.group('subject')!r} is not a mode of {taxonomy} or 'any mode'", hint)
    m = _GATE_RX.match(text)
    if not m:
        raise GateError(f"--fail-on {text!r}: cannot read it", hint)
    subject = " ".join(m.group("subject").lower().split())
    value = float(m.group("value").replace("$", "").strip()) / (100 if m.group("pct") else 1)
    share = subject in ("any mode", "exposure", *_SHARES) or subject.upper() in map(str.upper, mode_ids)
    if share and not m.group("pct") and value > 1:
        raise GateError(f"--fail-on {text!r}: a share is between 0 and 1, or a percentage like 10%", hint)
    if subject in ("any mode", "exposure") or subject in _FIGURES:
        return Gate(text, subject, m.group("op"), value, taxonomy)
    if subject.upper() in map(str.upper, mode_ids):
        return Gate(text, _mode_id(subject, mode_ids), m.group("op"), value, taxonomy)
    raise GateError(f"--fail-on {text!r}: {m.group('subject')!r} is not a mode of {taxonomy} or a known figure", hint)


def _mode_id(subject: str, mode_ids: Sequence[str]) -> str:
    return next((i for i in mode_ids if i.upper() == subject.upper()), subject)


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    breached: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"expression": self.gate.text, "breached": self.breached, "reason": self.reason}


def check(store, gates: Sequence[Gate], candidate: Selection, taxonomy: str,
          baseline: Selection | None = None) -> list[GateResult]:
    """Every gate against the candidate selection (and the baseline, for 'rises')."""
    if any(g.needs_baseline for g in gates) and baseline is None:
        bad = next(g for g in gates if g.needs_baseline)
        raise GateError(f"--fail-on {bad.text!r} compares with a baseline", "Give --baseline SEL.")
    views: dict[str, tuple[Comparison | None, Side]] = {}
    table = trace_figures_table(store)  # once, whatever the number of taxonomies
    try:
        for tid in dict.fromkeys(g.taxonomy or taxonomy for g in gates):
            if baseline is not None:
                comp = compare(store, baseline, candidate, tid, table)
                views[tid] = (comp, comp.candidate)
            else:
                views[tid] = (None, measure(store, candidate, tid, table))
    finally:
        drop_tables(store)
    out = []
    for g in gates:
        comp, side = views[g.taxonomy or taxonomy]
        tax = load_taxonomy(g.taxonomy or taxonomy)
        if g.op is None:
            diffs = comp.modes if g.subject == "any mode" else [d for d in comp.modes if d.mode == g.subject]
            risen = [d for d in diffs if d.rises]
            reason = "; ".join(f"{d.mode} {d.name} rose from {_pct(d.baseline.rate)} to {_pct(d.candidate.rate)} "
                               f"({d.baseline.count}/{d.baseline.n} -> {d.candidate.count}/{d.candidate.n}, "
                               f"Fisher p={d.p:.3g})" for d in risen) or "no significant rise"
            out.append(GateResult(g, bool(risen), f"{g.text}: {reason}"))
            continue
        if g.subject in _FIGURES:
            v = getattr(side.figures, _FIGURES[g.subject])
            shown = "not recorded" if v is None else (_pct(v) if g.subject in _SHARES else f"{v:.4g}")
            # a gate that cannot be checked fails: CI must not pass on a figure nobody recorded
            hit = v is None or _OPS[g.op](v, g.value)
            out.append(GateResult(g, hit, f"{g.text}: {g.subject} is {shown} over {side.figures.traces} trace(s)"))
            continue
        if g.subject == "any mode":
            if not any(e.n for e in side.modes.values()):
                out.append(GateResult(g, True, f"{g.text}: no mode was assessed on these traces (cannot be checked)"))
                continue
            hits = [(m, e) for m, e in side.modes.items() if e.rate is not None and _OPS[g.op](e.rate, g.value)]
            reason = "; ".join(f"{m} {tax.mode(m).name} is {_pct(e.rate)} ({e.count}/{e.n})" for m, e in hits)
            out.append(GateResult(g, bool(hits), f"{g.text}: {reason or 'no mode is'}"))
            continue
        e = side.any_mode if g.subject == "exposure" else side.modes[g.subject]
        label = "exposure (any mode)" if g.subject == "exposure" else f"{g.subject} {tax.mode(g.subject).name}"
        if e.rate is None:
            out.append(GateResult(g, True, f"{g.text}: {label} was not assessed on these traces (cannot be checked)"))
            continue
        out.append(GateResult(g, _OPS[g.op](e.rate, g.value), f"{g.text}: {label} is {_pct(e.rate)} ({e.count}/{e.n})"))
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"
