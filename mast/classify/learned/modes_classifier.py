"""``mast classify --with learned-modes``: the learned failure-mode models applied to traces.

- ``-C model=ID`` picks the model: an id (or unique prefix, or ``latest``, the default)
  in the store's ``learned_models``, or a ``.json`` file.  No modes model ships with
  mast (the labelled sets are too small for one to be worth shipping): train one with
  ``mast learn modes``.  A file is read and checked when the classifier is built, a
  stored id when ``models_db`` is known then too, so a bad model stops the run before
  anything is stored.
- Annotator ``learned:modes@<model id>``; version ``<engine>.<model id>``.
- ``covers`` is exactly the modes the model holds (those that beat the constant baseline
  under CV); every other mode stays "not assessed".  Without a loaded model it covers
  nothing.
- Every selected trace with steps gets one annotation per covered mode: ``present``
  when P(present) >= 0.5, else ``absent``, with the probability of the label given as
  confidence, and as evidence the steps where the rule flags that pushed the
  probability up fired (at most :data:`MAX_EVIDENCE`).  A trace with no steps is not
  labelled and goes in ``Output.failed``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from mast.classify.contract import ClassifierBase, Option, Output
from mast.classify.learned import documents
from mast.classify.learned import trace_features as TF
from mast.classify.learned.modes_model import ModesModel, load_file, load_stored
from mast.model import Annotation, Label
from mast.taxonomy import DEFAULT_TAXONOMY

ENGINE_VERSION = "1"
BATCH = 2000
MAX_EVIDENCE = 8
_FEATURES = TF.BASE + TF.TEXT
_N_BASE = len(TF.BASE)


class LearnedModesClassifier(documents.ModelBacked, ClassifierBase):
    name = "learned-modes"
    kind = "learned"
    model_kind = "modes"
    engine_version = ENGINE_VERSION
    options: ClassVar[Sequence[Option]] = (
        Option("model", "Model: a stored id / prefix / 'latest' (see `mast learn modes`), or a .json file."),
        Option("models_db", "Store to read a stored model from (default: the store being classified).",
               setting="db"),
    )

    def __init__(self, model: str = "latest", models_db: str | None = None):
        self.model_ref = model
        self._model: ModesModel | None = None
        self._no_steps = 0
        self._model = documents.open_early(model, models_db, load_file, load_stored)

    def covers(self, taxonomy) -> set[str]:
        if self._model is None or self._model.taxonomy != taxonomy.id:
            return set()
        return set(self._model.modes)

    def arguments(self) -> dict[str, Any]:
        m = self._model
        return {"model": self.model_ref, "model_id": m.model_id if m else None,
                "features_version": TF.FEATURES_VERSION, "modes": sorted(m.modes) if m else None,
                "trained_on": m.training if m else None}

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        if self._model is None:
            self._model = load_stored(store, self.model_ref)
        m = self._model
        for start in range(0, len(trace_ids), BATCH):
            batch = list(trace_ids[start:start + BATCH])
            table = TF.load(store, batch)
            out = Output(trace_ids=batch)
            for t in table.no_steps:
                out.failed[t] = "no steps: nothing to score"
                self._no_steps += 1
            if table.trace_ids:
                Z = m.standardise(table.X)
                for mode, mm in sorted(m.modes.items()):
                    p = mm.probability(Z)
                    contrib = Z[:, :len(mm.weights)] * mm.weights
                    for r, tid in enumerate(table.trace_ids):
                        out.annotations.append(self._annotation(tid, mode, float(p[r]), contrib[r], table.fired[tid]))
            yield out

    def _annotation(self, tid: str, mode: str, p: float, contrib: np.ndarray,
                    fired: dict[str, list[int]]) -> Annotation:
        present = p >= 0.5
        # contributions pushing towards the label given; rule flags, summed over their aggregates
        sign = 1.0 if present else -1.0
        by_flag: dict[str, float] = {}
        for j, c in enumerate(contrib[:_N_BASE]):
            f = TF.flag_of(_FEATURES[j])
            if f is not None:
                by_flag[f] = by_flag.get(f, 0.0) + sign * float(c)
        text = sign * float(contrib[_N_BASE:].sum())
        top = sorted((j for j in range(min(_N_BASE, len(contrib))) if sign * contrib[j] > 0),
                     key=lambda j: -sign * contrib[j])[:3]
        why = ", ".join(f"{_FEATURES[j]} {sign * contrib[j]:+.2f}" for j in top)
        if len(contrib) > _N_BASE and text > 0:
            why += f"{', ' if why else ''}text (hashed words) {text:+.2f}"
        evidence: list[int] = []
        if present:
            for f, c in sorted(by_flag.items(), key=lambda kv: -kv[1]):
                if c <= 0 or f not in fired:
                    continue
                evidence.extend(s for s in fired[f] if s not in evidence)
                if len(evidence) >= MAX_EVIDENCE:
                    break
        m = self._model
        return Annotation(
            mode=mode, label=Label.PRESENT if present else Label.ABSENT, annotator="",
            taxonomy=m.taxonomy if m else DEFAULT_TAXONOMY, confidence=round(p if present else 1.0 - p, 4),
            evidence_steps=sorted(evidence[:MAX_EVIDENCE]), trace_id=tid,
            rationale=f"learned mode model {m.model_id if m else ''}: P(present)={p:.2f}; "
                      f"top features: {why or 'none'}")

    def run_details(self) -> dict[str, Any]:
        m = self._model
        return {"model_id": m.model_id if m else None, "modes": sorted(m.modes) if m else [],
                "traces_without_steps": self._no_steps}

    def run_notes(self) -> list[str]:
        notes = []
        if self._no_steps:
            notes.append(f"{self._no_steps} trace(s) had no steps and were not labelled")
        m = self._model
        if m is not None:
            notes.append(f"modes {', '.join(sorted(m.modes))} by learned model {m.model_id}, trained on "
                         f"{m.training.get('traces')} trace(s) labelled by {m.training.get('gold')}; other modes "
                         "are not assessed; on systems unlike its training data it is a prior, not a verdict")
        return notes
