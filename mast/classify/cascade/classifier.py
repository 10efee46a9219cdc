"""``mast classify --with cascade``: learned models label every trace, the judge only the
ones they are least sure of, plus a random check sample that measures the learned tier.

Contract of :meth:`CascadeClassifier.classify`:

- Judge calls: at most ``judge_share`` x the traces with steps (and, with ``budget``,
  no more than the budget pays for; with a budget alone the budget is the only cap).
  ``check_share`` of those calls go to the **check sample**: traces drawn uniformly at
  random (:func:`.check.seeded_order`, ``seed``), judged first.  Their judge labels are
  never used to train or to choose traces, so the learned tier's agreement with the
  judge measured on them is an unbiased estimate for a trace drawn at random.
- The rest go in rounds of ``retrain_every``: the first round is random (no model yet);
  later rounds take the traces whose :func:`.tier.uncertainty` under the current model
  is highest (``pick=random``: a random sample again, the baseline to compare with).  After each round the learned tier is retrained on every judged trace
  outside the check sample (distillation) and the model is stored in
  ``learned_models`` (kind ``modes``, ``training.gold`` the judge's annotator), so every
  version a run used is kept and can be applied later with ``--with learned-modes``.
- The judge is the ordinary judge classifier, run through :func:`mast.classify.runner.run`:
  each round is a ``judge`` run of its own, its labels stored under ``judge:<model>``
  with its cache, retries and failures (a rerun of the same cascade costs nothing).
- Labels: annotator ``cascade:<model>``, every mode of the taxonomy for every trace with
  steps.  A judged trace carries the judge's labels and root cause, the rationale
  starting ``judge tier (check sample)``, ``judge tier (random)`` (the first round) or
  ``judge tier (uncertain)``; every other
  trace (including one the judge failed on or the budget left out) carries the final
  model's labels, the rationale starting ``learned tier``.  A trace without steps is in
  ``Output.failed``.  The cascade's Outputs carry the judge's tokens and cost, so the
  cascade run says what it cost (its judge runs record the same spend: do not add them).
- :meth:`run_details` (``"cascade"``): traces, judge calls by kind, the share saved, cost,
  the models, and the agreement on the check sample (per mode and macro kappa with a
  bootstrap interval, :func:`.check.agreement`) of the final model, over the whole
  sample and over the part of it the learned tier would itself have labelled.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from mast.classify.cascade import check as CK
from mast.classify.cascade.tier import Tier, features, uncertainty
from mast.classify.contract import ClassifierBase, Option, Output, flag
from mast.classify.judge import JudgeClassifier
from mast.classify.learned.modes_classifier import LearnedModesClassifier
from mast.classify.learned.modes_model import save as save_model
from mast.classify.runner import Selection, run
from mast.errors import UsageError
from mast.model import Annotation, Attribution, Label
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy

VERSION = "1.0"
#: fewest judged traces outside the check sample the learned tier is trained on
MIN_TRAIN = 20
#: traces whose judge cost is estimated to size a budget
BUDGET_SAMPLE = 100

# The judge options a cascade passes on unchanged.
_JUDGE_OPTIONS = ("model", "base_url", "api_key", "concurrency", "timeout", "max_retries", "prompt", "hints",
                  "prices", "base_wait", "max_wait")


class CascadeClassifier(ClassifierBase):
    name = "cascade"
    kind = "cascade"
    version = VERSION
    options: ClassVar[Sequence[Option]] = (
        Option("model", "Judge model (the tier that teaches).", setting="judge_model"),
        Option("base_url", "OpenAI-compatible endpoint.", setting="base_url"),
        Option("api_key", "API key; never stored.", setting="api_key"),
        Option("judge_share", "Largest share of the traces sent to the judge, check sample included "
                              "(default 0.15; 1 with a budget alone).", parse=float),
        Option("budget", "USD: send no more traces to the judge than this pays for.", parse=float),
        Option("check_share", "Share of the judge calls spent on the random check sample that measures "
                              "the learned tier (default 0.2).", parse=float),
        Option("retrain_every", "Retrain the learned tier after this many judged traces (default 250).", parse=int),
        Option("seed", "Seed of the check sample and the first round.", parse=int),
        Option("pick", "How judged traces are chosen after the first round: 'uncertain' (least sure first, "
                       "the default) or 'random' (the baseline a sampled judge gives)."),
        Option("concurrency", "Judge requests in flight.", parse=int),
        Option("timeout", "Seconds per judge request.", parse=float),
        Option("max_retries", "Retries per judge request.", parse=int),
        Option("prompt", "Judge prompt version."),
        Option("hints", "Show the rules' findings to the judge.", parse=flag),
        Option("prices", "Extra price table (JSON).", setting="judge_prices"),
        Option("taxonomy", "Taxonomy id."),
        Option("base_wait", "First retry wait, seconds.", parse=float),
        Option("max_wait", "Longest retry wait, seconds.", parse=float),
    )

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 judge_share: float | None = None, budget: float | None = None, check_share: float = 0.2,
                 retrain_every: int = 250, seed: int = 0, pick: str = "uncertain", concurrency: int | None = 8,
                 timeout: float | None = 120.0, max_retries: int | None = 4, prompt: str = "v1",
                 hints: bool = True, prices: str | None = None, taxonomy: str = DEFAULT_TAXONOMY,
                 base_wait: float = 0.5, max_wait: float = 60.0):
        if judge_share is not None and not 0 < judge_share <= 1:
            raise UsageError(f"judge_share={judge_share}: expected a share in (0, 1]", "For example: -C judge_share=0.15")
        if not 0 < check_share < 1:
            raise UsageError(f"check_share={check_share}: expected a share in (0, 1)", "For example: -C check_share=0.2")
        if pick not in ("uncertain", "random"):
            raise UsageError(f"pick={pick!r}: expected 'uncertain' or 'random'")
        if retrain_every < 1:
            raise UsageError("retrain_every must be 1 or more")
        self.judge_share = judge_share if judge_share is not None else (1.0 if budget is not None else 0.15)
        self.budget = budget
        self.check_share = check_share
        self.retrain_every = int(retrain_every)
        self.seed = int(seed)
        self.pick = pick
        self.taxonomy_id = taxonomy
        given = dict(model=model, base_url=base_url, api_key=api_key, concurrency=concurrency, timeout=timeout,
                     max_retries=max_retries, prompt=prompt, hints=hints, prices=prices, base_wait=base_wait,
                     max_wait=max_wait)
        self.judge = JudgeClassifier(taxonomy=taxonomy, **{k: given[k] for k in _JUDGE_OPTIONS})
        self._details: dict[str, Any] = {}
        self._notes: list[str] = []

    # -- the Classifier contract ------------------------------------------------------
    @property
    def annotator(self) -> str:
        return f"cascade:{self.judge.model}" if self.judge.model else "cascade"

    def covers(self, taxonomy) -> set[str]:
        return set(taxonomy.mode_ids)

    def arguments(self) -> dict[str, Any]:
        return {**self.judge.arguments(), "judge_share": self.judge_share, "budget": self.budget,
                "check_share": self.check_share, "retrain_every": self.retrain_every, "seed": self.seed, "pick": self.pick,
                "learned": {"engine": VERSION, "C": 1.0, "features": "base+text"}}

    def run_details(self) -> dict[str, Any]:
        return {"cascade": self._details} if self._details else {}

    def run_notes(self) -> list[str]:
        return list(self._notes)

    def estimate(self, store, trace_ids: Sequence[str]):
        """The judge's estimate for as many traces as the cascade would send (a random sample of them)."""
        order = CK.seeded_order(list(trace_ids), self.seed)
        return self.judge.estimate(store, order[:self._calls(store, order)])

    def _calls(self, store, order: Sequence[str]) -> int:
        n_calls = int(self.judge_share * len(order))
        if self.budget is not None:
            est = self.judge.estimate(store, order[:BUDGET_SAMPLE])
            if est.cost_usd is None:
                raise UsageError(f"-C budget needs a price for model {self.judge.model!r}",
                                 "Add it to a price table and point MAST_JUDGE_PRICES at it.")
            per = est.cost_usd / max(1, est.to_send)
            if per > 0:
                n_calls = min(n_calls, int(self.budget / per))
        return n_calls

    # -- the run ---------------------------------------------------------------------------
    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        if not self.judge.model:
            raise UsageError("no judge model given", "Pass --model NAME or set MAST_JUDGE_MODEL.")
        modes = load_taxonomy(self.taxonomy_id).mode_ids
        ids, X, no_steps = features(store, list(trace_ids))
        order = CK.seeded_order(ids, self.seed)
        n_calls = min(len(ids), self._calls(store, order))
        n_check = int(round(self.check_share * n_calls))
        if n_calls - n_check < MIN_TRAIN or n_check < 1:
            raise UsageError(
                f"{n_calls} judge call(s) for {len(ids)} trace(s) with steps ({n_check} for the check sample): too "
                f"few to train the learned tier (it needs {MIN_TRAIN} judged traces outside the check sample)",
                "Raise -C judge_share or -C budget, or classify more traces.")
        if no_steps:
            yield Output(failed={t: "no steps: nothing to score" for t in no_steps}, trace_ids=list(no_steps))
        tier = Tier(ids, X, modes, self.taxonomy_id)
        run_state = _State(modes)
        self._details = run_state.details
        check = order[:n_check]
        yield from self._judge_round(store, check, "check sample", run_state)
        checked = [t for t in check if t in run_state.labels]
        held_out = set(check)
        pool = list(order[n_check:])
        left = n_calls - n_check
        rounds = 0
        while left > 0 and pool and not run_state.budget_stopped:
            size = min(self.retrain_every, left, len(pool))
            if tier.model is None or self.pick == "random":
                pick = pool[:size]  # a random sample: the order is a seeded hash
            else:
                u = uncertainty(tier.proba(pool))
                top = np.argsort(-u, kind="stable")[:size]
                pick = [pool[i] for i in sorted(top)]
            chosen = set(pick)
            pool = [t for t in pool if t not in chosen]
            left -= len(pick)
            yield from self._judge_round(store, pick, "uncertain" if tier.model and self.pick == "uncertain"
                                         else "random", run_state)
            train = [t for t in run_state.labels if t not in held_out]
            if len(train) >= MIN_TRAIN:
                rounds += 1
                model = tier.fit(train, np.vstack([run_state.labels[t] for t in train]),
                                 {"gold": self.judge.annotator, "where": None, "group": None,
                                  "by": f"cascade {VERSION}, round {rounds}", "seed": self.seed})
                save_model(store, model)
                run_state.models.append({"model_id": model.model_id, "trained_on": len(train)})
        if tier.model is None:
            raise UsageError(f"the judge labelled only {len(run_state.labels) - len(checked)} trace(s) outside "
                             f"the check sample: too few to train the learned tier (needs {MIN_TRAIN})",
                             "See the judge's failures (`judge_failures` table) or raise -C budget.")
        judged = set(run_state.labels)
        rest = [t for t in ids if t not in judged]
        yield from self._learned(store, tier.model.model_id, rest)
        self._finish(tier, checked, rest, run_state, n_calls)

    def _judge_round(self, store, batch: list[str], why: str, st: "_State") -> Iterator[Output]:
        if not batch:
            return
        got: dict[str, list[Annotation]] = {}
        roots: dict[str, list[Attribution]] = {}

        def collect(out: Output) -> None:
            for a in out.annotations:
                got.setdefault(a.trace_id, []).append(a)
            for a in out.attributions:
                roots.setdefault(a.trace_id, []).append(a)

        if self.budget is not None:
            self.judge.budget = max(0.0, self.budget - st.cost)
        res = run(store, self.judge, Selection(), taxonomy=self.taxonomy_id, trace_ids=batch, on_output=collect)
        js = self.judge.stats
        st.judge_runs.append(res.run_id)
        st.cost += res.cost_usd
        st.add_judge(js, why)
        st.budget_stopped = st.budget_stopped or js.budget_stopped
        out = Output(tokens_in=res.tokens_in, tokens_out=res.tokens_out, cost_usd=res.cost_usd)
        for t in batch:
            anns = got.get(t)
            if not anns:
                continue  # failed or not started: the learned tier labels it at the end
            by_mode = {a.mode: a for a in anns}
            st.labels[t] = np.asarray([int(by_mode[m].label == Label.PRESENT) for m in st.modes])
            out.trace_ids.append(t)
            out.annotations += [Annotation(mode=a.mode, label=a.label, annotator="", taxonomy=a.taxonomy,
                                           confidence=a.confidence, evidence_steps=list(a.evidence_steps),
                                           rationale=f"judge tier ({why}): {a.rationale or ''}".strip(),
                                           trace_id=t) for a in anns]
            out.attributions += [Attribution(annotator="", agent=a.agent, step=a.step, confidence=a.confidence,
                                             rationale=f"judge tier ({why}): {a.rationale or ''}".strip(),
                                             trace_id=t) for a in roots.get(t, [])]
        yield out

    def _learned(self, store, model_id: str, rest: list[str]) -> Iterator[Output]:
        # The stored model applied by the learned-modes classifier: the cascade's labels are
        # exactly what `--with learned-modes -C model=ID` gives for the same traces.
        learned = LearnedModesClassifier(model=model_id)
        for out in learned.classify(store, rest):
            for a in out.annotations:
                a.rationale = f"learned tier: {a.rationale}"
            yield out

    def _finish(self, tier: Tier, checked: list[str], rest: list[str], st: "_State", n_calls: int) -> None:
        n = len(tier.trace_ids)
        d = st.details
        d.update(traces=n, judge_calls_planned=n_calls, judged=len(st.labels), learned_labelled=len(rest),
                 saved_share=round(1 - st.calls / n, 4) if n else None, cost_usd=round(st.cost, 6),
                 check_sample=len(checked), final_model=tier.model.model_id if tier.model else None)
        if checked:
            Y = np.vstack([st.labels[t] for t in checked])
            P = tier.proba(checked)
            d["agreement"] = CK.agreement(Y, (P >= 0.5).astype(int), st.modes, seed=self.seed)
            # the part of the sample the learned tier would have labelled itself: no less sure
            # than the least sure trace it did label
            if rest:
                cut = float(uncertainty(tier.proba(rest)).max())
                keep = uncertainty(P) <= cut + 1e-12
                d["agreement_where_learned_labels"] = CK.agreement(Y[keep], (P[keep] >= 0.5).astype(int), st.modes,
                                                                   seed=self.seed)
            macro = d["agreement"]["macro"]
            lo, hi = macro["kappa_ci"]
            floor = min((e["agreement_ci"][0], m) for m, e in d["agreement"]["modes"].items())
            self._notes.append(
                f"cascade: judge called on {st.calls} of {n} trace(s) ({d['saved_share']:.1%} saved, "
                f"${st.cost:.4f}); learned tier vs judge on the random check sample of {len(checked)}: macro kappa "
                f"{macro['kappa']} (95% CI {lo}..{hi}) over {len(macro['modes'])} mode(s); raw agreement per mode "
                f">= {floor[0]:.1%} (Wilson 95% lower bound, lowest on {floor[1]})")
        if st.budget_stopped:
            self._notes.append("budget reached: the learned tier labelled the traces the judge did not get to")
        if st.failed:
            self._notes.append(f"{st.failed} trace(s) the judge could not classify were labelled by the learned "
                               "tier (see the judge_failures table)")


class _State:
    """What a cascade run has gathered so far (the run summary is :attr:`details`)."""

    def __init__(self, modes: Sequence[str]):
        self.modes = list(modes)
        self.labels: dict[str, np.ndarray] = {}
        self.cost = 0.0
        self.calls = 0
        self.failed = 0
        self.budget_stopped = False
        self.judge_runs: list[str] = []
        self.models: list[dict[str, Any]] = []
        self.by_kind: dict[str, dict[str, int]] = {}
        self.details: dict[str, Any] = {"judge_runs": self.judge_runs, "models": self.models,
                                        "judge_calls": self.by_kind}

    def add_judge(self, js, why: str) -> None:
        k = self.by_kind.setdefault(why, {"traces": 0, "judged": 0, "cached": 0, "failed": 0, "skipped_budget": 0})
        sent = js.judged + js.cached + js.failed
        k["traces"] += sent
        k["judged"] += js.judged
        k["cached"] += js.cached
        k["failed"] += js.failed
        k["skipped_budget"] += js.skipped_budget
        self.calls += sent
        self.failed += js.failed
