"""The judge against human labels in one job: ingest a human-labelled file (the MAST human
file by default in the docs), run the rules (the judge's hints, and a reference row), run
the judge once per prompt version, and score each against the humans with
:func:`mast.evaluate.agreement` (κ and F1 per mode with bootstrap intervals, beside the
constant and random baselines on the same traces).

Contract:
- :func:`evaluate_judge` works in the store it is given, which should be the evaluation's
  own: the traces it scores are every trace there with labels from ``gold``.  A rerun is
  free for what the judge cache already holds (its key includes the prompt version).
- Each prompt's labels are scored right after its run and before the next prompt runs.
  Before a prompt runs, the judge annotator's earlier labels on those traces are removed,
  so a trace this prompt could not classify is *not scored* for it rather than scored
  with another prompt's verdict (``PromptResult.unclassified`` counts them).
- Nothing here calls a model unless ``model`` is given; the CLI asks for an explicit
  ``--real-model`` as well, since the run costs money.
- The MAST human file repeats 8 label vectors over its 19 records (its MANIFEST):
  :attr:`JudgeEvaluation.distinct_gold_vectors` says how many independent label vectors
  the scored traces hold, which is the n an interval should be read against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from mast.classify import create
from mast.classify.hooks import ingest_hooks
from mast.classify.runner import Selection, run
from mast.errors import UsageError
from mast.evaluate import BOOTSTRAP, LabelAgreement, ModeScore, agreement
from mast.ingest.pipeline import ingest_paths
from mast.settings import Settings
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy


@dataclass
class PromptResult:
    prompt: str                    # the folder (v1, v2)
    prompt_version: str            # its meta.json version (judge-v1, judge-v2.1)
    annotator: str
    run_id: str
    traces: int
    done: int
    unclassified: int
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    cost_usd: float
    agreement: LabelAgreement
    failure_kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class JudgeEvaluation:
    dataset: str
    gold: str
    model: str
    base_url: str | None
    traces: int
    distinct_gold_vectors: int
    rules: LabelAgreement | None
    prompts: list[PromptResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_judge(store, dataset: str | Path, *, model: str, prompts: Sequence[str] = ("v1", "v2"),
                   gold: str = "human", settings: Settings | None = None, judge_options: dict[str, Any] | None = None,
                   where: str | None = None, sample: int | None = None, bootstrap: int = BOOTSTRAP,
                   taxonomy: str = DEFAULT_TAXONOMY,
                   on_progress: Callable[[str], None] | None = None) -> JudgeEvaluation:
    say = on_progress or (lambda _msg: None)
    if not model:
        raise UsageError("no judge model given", "Pass --model NAME or set MAST_JUDGE_MODEL.")
    if not prompts:
        raise UsageError("no prompt version given")
    # Check every prompt (and examples file) before anything is ingested or sent.
    opts = dict(judge_options or {})
    judges = [create("judge", settings=settings, model=model, prompt=p, taxonomy=taxonomy, **opts) for p in prompts]
    say(f"ingesting {dataset}")
    ingest_paths(store, [dataset], hooks=ingest_hooks(settings))
    labelled = {r[0] for r in store.fetchall("SELECT DISTINCT trace_id FROM annotations WHERE annotator = ? "
                                            "AND taxonomy = ?", [gold, taxonomy])}
    if not labelled:
        raise UsageError(f"{dataset}: no labels from annotator {gold!r} in taxonomy {taxonomy} after ingesting it",
                         "Give a human-labelled file (the MAST human file: MAD_human_labelled_dataset.json).")
    chosen = Selection(where=where, sample=sample).resolve(store)
    ids = sorted(t for t in chosen if t in labelled)
    if not ids:
        raise UsageError("no human-labelled trace matches the selection (--where / --sample)")
    vectors = store.fetchall(
        "SELECT count(DISTINCT v) FROM (SELECT trace_id, string_agg(mode || '=' || label, ',' ORDER BY mode) AS v "
        "FROM annotations WHERE annotator = ? AND taxonomy = ? AND trace_id IN (SELECT unnest(?)) GROUP BY 1)",
        [gold, taxonomy, ids])[0][0]
    say(f"rules on {len(ids)} trace(s)")
    run(store, create("rules", settings=settings), Selection(trace_ids=tuple(ids)))
    rules = agreement(store, gold, "rules", taxonomy=taxonomy, bootstrap=bootstrap)
    results = []
    for p, clf in zip(prompts, judges):
        store.execute("DELETE FROM annotations WHERE annotator = ? AND trace_id IN (SELECT unnest(?))",
                      [clf.annotator, ids])
        say(f"judge {model}, prompt {p}, on {len(ids)} trace(s)")
        if hasattr(clf, "on_progress"):
            clf.on_progress = say
        res = run(store, clf, Selection(trace_ids=tuple(ids)))
        scored = agreement(store, gold, clf.annotator, taxonomy=taxonomy, bootstrap=bootstrap) if res.done else \
            _empty(gold, clf.annotator, taxonomy)
        results.append(PromptResult(p, clf.arguments()["prompt_version"], clf.annotator, res.run_id, res.traces,
                                    res.done, res.failed, res.tokens_in, res.tokens_out, res.tokens_cached,
                                    res.cost_usd, scored, res.failure_kinds()))
    return JudgeEvaluation(str(dataset), gold, model, judges[0].base_url, len(ids), int(vectors), rules, results)


def _empty(gold: str, pred: str, taxonomy: str) -> LabelAgreement:
    """The agreement of a run that labelled nothing: every mode not assessed."""
    tax = load_taxonomy(taxonomy)
    return LabelAgreement(gold, pred, taxonomy, [], 0, [ModeScore(m.id, m.name, False) for m in tax.modes],
                          {"precision": None, "recall": None, "f1": None, "kappa": None}, list(tax.mode_ids))
