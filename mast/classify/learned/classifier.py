"""``mast classify --with learned``: the learned root-cause model applied to traces.

- ``-C model=ID`` picks the model: ``default`` (shipped with mast, trained on Who&When by
  ``classifiers/learned/train_default.py``), a ``.json`` file, or an id (or unique
  prefix, or ``latest``) in the store's ``learned_models``.  A file or the default is
  read and checked when the classifier is built, and a stored id when ``models_db`` (the
  store being classified, by default) is known then too, so a bad model stops the run
  before anything is stored.
- Annotator ``learned:attribution@<model id>``; version ``<engine>.<model id>``.
- Every selected trace that failed — outcome ``failure``, or a failure mode labelled
  present by any annotator — gets one attribution (a trace with no sign of failure gets
  none: blaming a step of a run that may have gone well would be a guess shown as a
  finding): the highest-scoring step, its agent, the model's probability as
  confidence and the top contributing features as rationale.  A trace with no steps is
  not labelled and goes in ``Output.failed``.
- It labels no failure modes (``covers`` is empty): it answers "which agent, which step".
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from mast.classify.contract import ClassifierBase, Option, Output
from mast.classify.learned import documents
from mast.classify.learned import features as F
from mast.classify.learned.model import DEFAULT_MODEL, AttributionModel, load_file, load_stored, resolve
from mast.classify.learned.ranker import group_offsets
from mast.classify.learned.train import predict
from mast.model import Attribution

ENGINE_VERSION = "1"
BATCH = 2000
MEMORY_LIMIT = "1GB"
#: batches read from the store in one pass (x BATCH traces: 100,000)
GROUP = 50


class LearnedClassifier(documents.ModelBacked, ClassifierBase):
    name = "learned"
    kind = "learned"
    model_kind = "attribution"
    engine_version = ENGINE_VERSION
    options: ClassVar[Sequence[Option]] = (
        Option("model", "Model: 'default' (shipped), a .json file, or a stored id / prefix / 'latest' "
                        "(see `mast learn attribution`)."),
        Option("models_db", "Store to read a stored model from (default: the store being classified).",
               setting="db"),
    )

    def __init__(self, model: str = DEFAULT_MODEL, models_db: str | None = None):
        self.model_ref = model
        self.models_db = models_db
        self._model: AttributionModel | None = None
        self._no_steps = 0
        self._model = (resolve(model) if model == DEFAULT_MODEL
                       else documents.open_early(model, models_db, load_file, load_stored))

    def covers(self, taxonomy) -> set[str]:
        return set()

    def arguments(self) -> dict[str, Any]:
        m = self._model
        return {"model": self.model_ref, "model_id": m.model_id if m else None,
                "features_version": F.FEATURES_VERSION,
                "trained_on": m.training if m else None}

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        if self._model is None:
            self._model = load_stored(store, self.model_ref)
        m = self._model
        # which traces failed, in one query over the whole selection
        failed = {r[0] for r in store.fetchall(
            "SELECT trace_id FROM traces t WHERE trace_id IN (SELECT unnest(?)) AND (outcome = 'failure' OR "
            "(outcome <> 'success' AND trace_id IN (SELECT trace_id FROM annotations WHERE label = 'present')))",
            [list(trace_ids)])}
        batches = [list(trace_ids[s:s + BATCH]) for s in range(0, len(trace_ids), BATCH)]
        todos = [[t for t in b if t in failed] for b in batches]
        # the buffer pool capped: the steps of a million traces spill to disk rather than stay resident
        with store.memory_limit(MEMORY_LIMIT):
            yield from self._batches(m, store, batches, todos)

    def _batches(self, m: AttributionModel, store, batches: list[list[str]],
                 todos: list[list[str]]) -> Iterator[Output]:
        # One pass over the store per group of batches, not one for the whole selection:
        # the joined steps of a million traces do not fit the capped buffer pool.
        for g in range(0, len(batches), GROUP):
            yield from self._group(m, store, batches[g:g + GROUP], todos[g:g + GROUP])

    def _group(self, m: AttributionModel, store, batches: list[list[str]],
               todos: list[list[str]]) -> Iterator[Output]:
        for batch, todo, table in zip(batches, todos, F.load_batches(store, todos)):
            out = Output(trace_ids=batch)
            scored = [t for t in todo if t in table.spans]
            for t in todo:
                if t not in table.spans:
                    out.failed[t] = "no steps: nothing to rank"
                    self._no_steps += 1
            if scored:
                X = F.dense(table)
                order = np.concatenate([np.arange(*table.spans[t]) for t in scored])
                spans, pos = [], 0
                for t in scored:
                    a, b = table.spans[t]
                    spans.append((pos, pos + b - a))
                    pos += b - a
                Xs, agents = X[order], [table.agent[r] for r in order]
                offsets = group_offsets(spans)
                preds = predict(m.ranker, m.agent_rule, Xs, agents, offsets)
                contrib = ((Xs - m.ranker.mean) / m.ranker.scale) * m.ranker.weights
                for t, p, a in zip(scored, preds, offsets[:-1]):
                    row = contrib[a + p.step]
                    top = np.argsort(-row)[:3]
                    why = ", ".join(f"{F.DENSE[j]} {row[j]:+.2f}" for j in top if row[j] > 0)
                    out.attributions.append(Attribution(
                        annotator="", agent=p.agent, step=int(table.step[table.spans[t][0] + p.step]),
                        confidence=round(p.confidence, 4), trace_id=t,
                        rationale=f"learned ranker {m.model_id}: step scored highest "
                                  f"(p={p.confidence:.2f}); top features: {why or 'none positive'}"))
            yield out

    def run_details(self) -> dict[str, Any]:
        m = self._model
        return {"model_id": m.model_id if m else None, "traces_without_steps": self._no_steps}

    def run_notes(self) -> list[str]:
        notes = []
        if self._no_steps:
            notes.append(f"{self._no_steps} trace(s) had no steps and were not attributed")
        m = self._model
        if m is not None:
            systems = ", ".join(sorted(m.training.get("by_system", {})))
            notes.append(f"root causes by learned model {m.model_id}, trained on {m.training.get('traces')} "
                         f"labelled trace(s) of {systems or 'unknown systems'}: on other systems it is a prior, "
                         "not a verdict")
        return notes
