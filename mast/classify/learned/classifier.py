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
import polars as pl

from mast.classify.contract import ClassifierBase, Option, Output
from mast.classify.learned import documents
from mast.classify.learned import features as F
from mast.classify.learned.model import DEFAULT_MODEL, AttributionModel, load_file, load_stored, resolve
from mast.classify.learned.train import choose
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
        # once for the whole selection (a check per group cost a semi-join per group, and
        # for a part of the store a copy of its feature rows)
        F.make_current(store, trace_ids)
        # the buffer pool capped: the steps of a million traces spill to disk rather than stay resident
        with store.memory_limit(MEMORY_LIMIT):
            # One pass over the store per group of batches, not one for the whole selection:
            # the feature rows of a million traces do not fit the capped buffer pool.
            for g in range(0, len(batches), GROUP):
                yield from self._group(m, store, batches[g:g + GROUP], todos[g:g + GROUP])

    def _group(self, m: AttributionModel, store, batches: list[list[str]],
               todos: list[list[str]]) -> Iterator[Output]:
        frame = F.read_batches(store, todos)
        bnum = frame.get_column("_b").to_numpy()
        bounds = np.searchsorted(bnum, np.arange(len(batches) + 1))  # rows of each batch
        first = 0  # index of the batch's first trace in the concatenated todos
        for k, (batch, todo) in enumerate(zip(batches, todos)):
            out = Output(trace_ids=batch)
            part = frame.slice(int(bounds[k]), int(bounds[k + 1] - bounds[k]))
            keys, offsets = F.spans(part)
            have = {int(i) - first for i in keys}
            for j, t in enumerate(todo):
                if j not in have:
                    out.failed[t] = "no steps: nothing to rank"
                    self._no_steps += 1
            if keys:
                out.attributions = self._attribute(m, part, offsets, [todo[int(i) - first] for i in keys])
            first += len(todo)
            yield out

    @staticmethod
    def _attribute(m: AttributionModel, part, offsets: np.ndarray, traces: list[str]) -> list[Attribution]:
        """The root cause of each trace of ``part`` (rows of ``traces``, in order)."""
        X = F.frame_dense(part)
        agent = part.get_column("agent")
        codes = agent.cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy() + 1
        rows, conf = choose(m.ranker.scores(X), offsets, codes, m.agent_rule)
        contrib = ((X[rows] - m.ranker.mean) / m.ranker.scale) * m.ranker.weights
        top = np.argsort(-contrib, axis=1, kind="stable")[:, :3].tolist()
        contrib = contrib.tolist()  # plain floats: formatting numpy scalars costs microseconds each
        agents = agent.gather(rows).to_list()
        steps = part.get_column("step").gather(rows).to_list()
        out = []
        for t, ag, st, c, row, best in zip(traces, agents, steps, conf.tolist(), contrib, top):
            why = ", ".join(f"{F.DENSE[j]} {row[j]:+.2f}" for j in best if row[j] > 0)
            out.append(Attribution(
                annotator="", agent=ag, step=int(st), confidence=round(c, 4), trace_id=t,
                rationale=f"learned ranker {m.model_id}: step scored highest "
                          f"(p={c:.2f}); top features: {why or 'none positive'}"))
        return out

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
