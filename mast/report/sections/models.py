"""Learned models: for every learned annotator in the report, what its model was trained
on and its cross-validated figures beside the baselines, so its labels are read with
their floor and their reach (on a system unlike its training data a model is a prior,
not a verdict)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mast.classify.learned.model import default_path
from mast.report.page import Page
from mast.report.section import Section, Values

#: Baselines shown beside a root-cause model's figures, in this order.
_BASELINES = ("last_step", "majority_agent", "first_error_step", "uniform_random", "rules")


@dataclass
class ModelInfo:
    annotator: str
    model_id: str
    kind: str
    found: bool
    gold: str | None = None
    traces: int | None = None
    by_system: dict[str, int] = field(default_factory=dict)
    #: attribution: system -> {n, agent, step, baselines: {name: (agent, step)}}
    cv: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: modes: mode -> cross-validated kappa
    modes: dict[str, float | None] = field(default_factory=dict)


def _document(page: Page, model_id: str) -> dict | None:
    """The model's document: stored in this store, or the one shipped with mast."""
    rows = page.store.fetchall("SELECT body FROM learned_models WHERE model_id = ?", [model_id])
    if rows:
        return json.loads(rows[0][0])
    shipped = json.loads(default_path().read_text(encoding="utf-8"))
    return shipped if shipped.get("model_id") == model_id else None


def _info(page: Page, annotator: str) -> ModelInfo:
    kind, _, model_id = annotator.removeprefix("learned:").partition("@")
    doc = _document(page, model_id)
    info = ModelInfo(annotator, model_id, kind, doc is not None)
    if doc is None:
        return info
    training = doc.get("training") or {}
    info.gold, info.traces = training.get("gold"), training.get("traces")
    info.by_system = dict(training.get("by_system") or {})
    if kind == "attribution":
        for system, f in sorted((doc.get("cv") or {}).items()):
            base = f.get("baselines") or {}
            info.cv[system] = {"n": f.get("n"), "agent": f.get("agent_accuracy"), "step": f.get("step_accuracy"),
                               "baselines": {b: (base[b].get("agent_accuracy"), base[b].get("step_accuracy"))
                                             for b in _BASELINES if b in base}}
    else:
        for mode, m in sorted((doc.get("modes") or {}).items()):
            info.modes[mode] = ((m.get("cv") or {}).get("kappa"))
    return info


def build(page: Page) -> Values:
    return {"models": [_info(page, a.name) for a in page.annotators if a.name.startswith("learned:")]}


SECTION = Section(id="models", title="Learned models", build=build)
