"""Annotators: who labelled the selection, how far each pair agrees, and what the judge's runs cost.

Contract:
- ``agreement``: every pair of annotators (see :mod:`mast.agreement`).  Where the reference
  is a person or a community set (the figures a team calibrates its judges by), each
  mode and the macro κ carry a 95% bootstrap interval (:func:`mast.evaluate.intervals_of`,
  :data:`REPORT_BOOTSTRAP` resamples of the shared traces): ``agreement_ci[(gold, pred)]``.
- ``judge_runs``: one row per judge run (the ``runs`` table) whose labels touch the
  selection or that left unclassified traces: model, prompt version, status, traces done
  and failed, tokens and cost as recorded; the mean share of each trace's text the judge
  saw (``judge_cache.coverage``), the prompt tokens the endpoint served from its prefix
  cache (``runs.tokens_cached``, and their share of the prompt tokens) and the cache hits (traces answered from a cache row
  written before the run began), both over the run's traces whose labels are still
  stored; and the unclassified traces (``judge_failures`` of the run's model and prompt
  version written while it ran) with their reasons, up to :data:`MAX_FAILURES` listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mast.agreement import authority_rank
from mast.evaluate import interval_rows, intervals_of
from mast.report.page import Page
from mast.report.section import Section, Values

#: Kept at 500, not fewer: past ``mast.evaluate._JOINT_LIMIT`` (traces × modes × resamples)
#: a pair is resampled per mode as a multinomial, which costs nothing in the number of traces;
#: below it, the joint resample of traces.  At 100k traces (pairs of ~7,800 shared traces × 14
#: modes) 200 resamples fall under the limit and took 5.2–7.0 s for the 11 pairs against
#: 2.6–3.1 s for 500 (bench/RESULTS.md, "Coordination memory and the report at 100k").
REPORT_BOOTSTRAP = 500
MAX_FAILURES = 20
_REFERENCE_RANK = authority_rank("community:")  # human, human:*, community:*


@dataclass
class JudgeRun:
    run_id: str
    model: str | None
    prompt_version: str | None
    status: str | None
    started_at: str
    traces_done: int
    traces_failed: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    labelled_traces: int            # traces of the selection whose labels from this run are stored
    coverage: float | None          # mean share of a trace's text the judge saw
    cache_hits: int
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (trace_id, kind, reason)
    failures_total: int = 0
    #: of tokens_in, what the endpoint reported served from its prefix cache; None: not recorded
    #: (a run stored before the figure was kept)
    tokens_cached: int | None = None

    @property
    def cached_share(self) -> float | None:
        if self.tokens_cached is None or not self.tokens_in:
            return None
        return self.tokens_cached / self.tokens_in


def build(page: Page) -> Values:
    pairs = page.labels.agreement()
    refs = [p for p in pairs if authority_rank(p.gold) <= _REFERENCE_RANK and p.modes]
    rows = interval_rows(page.store, page.labels.all, [], [(p.gold, p.pred) for p in refs])  # one query for all
    cis = {}
    for p in refs:
        per_mode, macro = intervals_of(rows[(p.gold, p.pred)], [m.mode for m in p.modes], bootstrap=REPORT_BOOTSTRAP)
        cis[(p.gold, p.pred)] = {"modes": {m: v["kappa"] for m, v in per_mode.items()}, "macro": macro["kappa"]}
    return {"agreement": pairs, "agreement_ci": cis, "agreement_bootstrap": REPORT_BOOTSTRAP,
            "judge_runs": _judge_runs(page)}


def _judge_runs(page: Page) -> list[JudgeRun]:
    st = page.store
    sel, sel_params = page.traces_sql()
    rows = st.fetchall(f"""
        WITH sel AS ({sel}),
        r AS (SELECT run_id, model, json_extract_string(arguments, '$.prompt_version') AS pv, status, started_at,
                     coalesce(finished_at, now()::TIMESTAMP) AS until, traces_done, traces_failed, tokens_in,
                     tokens_out, cost_usd, tokens_cached
              FROM runs WHERE classifier = 'judge'),
        rt AS (SELECT DISTINCT a.run_id, a.trace_id FROM annotations a JOIN sel USING (trace_id)
               WHERE a.run_id IN (SELECT run_id FROM r)),
        cache AS (SELECT rt.run_id, rt.trace_id, min(c.created_at) AS first_cached,
                         avg(json_extract(c.coverage, '$.fraction')::DOUBLE) AS fraction
                  FROM rt JOIN r USING (run_id)
                  JOIN judge_cache c ON c.trace_id = rt.trace_id AND c.model = r.model AND c.prompt_version = r.pv
                                    AND c.created_at <= r.until
                  GROUP BY ALL),
        per AS (SELECT rt.run_id, count(*) AS labelled, avg(cache.fraction) AS coverage,
                       count(*) FILTER (WHERE cache.first_cached < r.started_at) AS hits
                FROM rt JOIN r USING (run_id) LEFT JOIN cache USING (run_id, trace_id) GROUP BY 1)
        SELECT r.run_id, r.model, r.pv, r.status, r.started_at, r.traces_done, r.traces_failed, r.tokens_in,
               r.tokens_out, r.cost_usd, coalesce(per.labelled, 0), per.coverage, coalesce(per.hits, 0),
               r.tokens_cached
        FROM r LEFT JOIN per USING (run_id)
        WHERE per.labelled > 0 OR r.traces_failed > 0
        ORDER BY r.started_at, r.run_id""", sel_params)
    out = []
    for r in rows:
        run = JudgeRun(r[0], r[1], r[2], r[3], r[4].strftime("%Y-%m-%d %H:%M"), int(r[5] or 0), int(r[6] or 0),
                       int(r[7] or 0), int(r[8] or 0), r[9], int(r[10]), r[11], int(r[12]),
                       tokens_cached=None if r[13] is None else int(r[13]))
        fails = st.fetchall(f"""
            WITH sel AS ({sel})
            SELECT f.trace_id, f.kind, f.reason, count(*) OVER () FROM judge_failures f JOIN sel USING (trace_id)
            JOIN runs r ON r.run_id = ?
            WHERE f.model IS NOT DISTINCT FROM r.model
              AND f.prompt_version IS NOT DISTINCT FROM json_extract_string(r.arguments, '$.prompt_version')
              AND f.created_at BETWEEN r.started_at AND coalesce(r.finished_at, now()::TIMESTAMP)
            ORDER BY f.created_at, f.trace_id LIMIT ?""", [*sel_params, run.run_id, MAX_FAILURES])
        run.failures = [(f[0], f[1], f[2]) for f in fails]
        run.failures_total = int(fails[0][3]) if fails else 0
        out.append(run)
    return out


SECTION = Section(id="annotators", title="Annotators", build=build)
