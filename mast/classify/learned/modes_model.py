"""A learned failure-mode model is data: one JSON document, validated on load, never executed.

The same container as the root-cause model (:mod:`mast.classify.learned.model`: format
``mast-learned-model`` version 1, the ``learned_models`` table, a tagged content-hash
id, the training digest, CV figures and library versions), with ``kind: "modes"``::

    {"format": ..., "format_version": 1, "kind": "modes", "model_id": "lm1-<16 hex>",
     "features_version": "m1", "features": [BASE + TEXT names], "taxonomy": "mast-v1",
     "scaler": {"mean": [...], "scale": [...]},           # over every feature
     "modes": {"<mode>": {"feature_set": "base" | "base+text", "weights": [...],
                          "intercept": x, "hyperparameters": {...}, "cv": {...}}},
     "training": {"gold": ..., "where": ..., "group": ..., "traces": n, "digest": "sha256:..."},
     "cv": {"macro": {...}, "not_saved": {"<mode>": "why"}}, "libraries": {...}}

Only modes whose model beat the constant baseline under CV are in ``modes``: those, and
only those, are what the classifier assesses.  A logistic model is a weight vector, so
JSON holds it exactly and loading it cannot run code (the same reasoning as for the
root-cause model).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mast.classify.learned import trace_features as TF
from mast.classify.learned import documents
from mast.classify.learned.documents import ModelError
from mast.classify.learned.model import FORMAT, FORMAT_VERSION, _floats, libraries
from mast.errors import UsageError
from mast.taxonomy import load as load_taxonomy
from mast.taxonomy import DEFAULT_TAXONOMY

KIND = "modes"
MODEL_ID_TAG = "lm1"  # learned modes, id scheme 1
_ALL = TF.BASE + TF.TEXT
_HINT = "Retrain it with `mast learn modes`."


@dataclass
class ModeModel:
    feature_set: str
    weights: np.ndarray  # over the standardised columns of its feature set
    intercept: float
    hyperparameters: dict[str, Any]
    cv: dict[str, Any]

    def probability(self, Z: np.ndarray) -> np.ndarray:
        """P(present) for standardised rows ``Z`` (all columns; the set's prefix is used)."""
        s = Z[:, :len(self.weights)] @ self.weights + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(s, -30, 30)))


@dataclass
class ModesModel:
    mean: np.ndarray
    scale: np.ndarray
    modes: dict[str, ModeModel]
    training: dict[str, Any]
    cv: dict[str, Any]
    taxonomy: str = DEFAULT_TAXONOMY
    libraries: dict[str, str] | None = None
    model_id: str = ""
    source: str = ""

    def standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND, "model_id": self.model_id,
            "features_version": TF.FEATURES_VERSION, "features": list(_ALL), "taxonomy": self.taxonomy,
            "scaler": {"mean": _floats(self.mean), "scale": _floats(self.scale)},
            "modes": {m: {"feature_set": mm.feature_set, "weights": _floats(mm.weights),
                          "intercept": float(f"{mm.intercept:.8g}"), "hyperparameters": mm.hyperparameters,
                          "cv": mm.cv} for m, mm in sorted(self.modes.items())},
            "training": self.training, "cv": self.cv, "libraries": self.libraries or libraries(),
        }

    def with_id(self) -> "ModesModel":
        """Set :attr:`model_id` from the content; predictions then use exactly what is stored."""
        doc = self.body()
        self.model_id = documents.content_id(doc, MODEL_ID_TAG)
        self.mean = np.asarray(doc["scaler"]["mean"])
        self.scale = np.asarray(doc["scaler"]["scale"])
        for m, d in doc["modes"].items():
            self.modes[m].weights = np.asarray(d["weights"])
            self.modes[m].intercept = d["intercept"]
        return self

    def dumps(self) -> str:
        return json.dumps(self.body(), indent=1, sort_keys=True) + "\n"


def _finite_list(v: Any, n: int) -> bool:
    return (isinstance(v, list) and len(v) == n
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))


def loads(text: str | bytes, source: str) -> ModesModel:
    """Parse and check a modes model; any problem is a :class:`ModelError` naming ``source``."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"model {source}: not valid JSON ({e})", _HINT) from None

    def bad(why: str) -> ModelError:
        return ModelError(f"model {source}: {why}", _HINT)

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"not a {FORMAT} document")
    if doc.get("format_version") != FORMAT_VERSION:
        raise bad(f"format version {doc.get('format_version')!r}; this mast reads {FORMAT_VERSION}")
    if doc.get("kind") != KIND:
        raise bad(f"kind {doc.get('kind')!r}, expected {KIND!r}")
    if doc.get("features_version") != TF.FEATURES_VERSION:
        raise bad(f"features version {doc.get('features_version')!r}; this mast computes version "
                  f"{TF.FEATURES_VERSION}")
    if doc.get("features") != list(_ALL):
        raise bad("its feature list differs from this mast's (same version, other columns)")
    if not isinstance(doc.get("taxonomy"), str) or not isinstance(doc.get("model_id"), str):
        raise bad("taxonomy or model_id missing")
    sc = doc.get("scaler")
    if not isinstance(sc, dict) or not all(_finite_list(sc.get(k), len(_ALL)) for k in ("mean", "scale")):
        raise bad(f"scaler.mean / scaler.scale are not {len(_ALL)} finite numbers")
    if min(sc["scale"]) <= 0:
        raise bad("scaler.scale has a value <= 0")
    modes = doc.get("modes")
    if not isinstance(modes, dict) or not modes:
        raise bad("no mode models")
    try:
        known = set(load_taxonomy(doc["taxonomy"]).mode_ids)
    except UsageError:  # an unknown taxonomy is this model's problem, reported as such
        raise bad(f"taxonomy {doc['taxonomy']!r} is not one this mast knows") from None
    out: dict[str, ModeModel] = {}
    for m, d in modes.items():
        if m not in known:
            raise bad(f"mode {m!r} is not in taxonomy {doc['taxonomy']}")
        if not isinstance(d, dict) or d.get("feature_set") not in TF.FEATURE_SETS:
            raise bad(f"mode {m}: feature_set must be one of {', '.join(TF.FEATURE_SETS)}")
        n = len(TF.FEATURE_SETS[d["feature_set"]])
        ic = d.get("intercept")
        if not _finite_list(d.get("weights"), n) or not _finite_list([ic], 1):
            raise bad(f"mode {m}: weights are not {n} finite numbers, or no finite intercept")
        if not isinstance(d.get("hyperparameters"), dict) or not isinstance(d.get("cv"), dict):
            raise bad(f"mode {m}: hyperparameters or cv missing")
        out[m] = ModeModel(d["feature_set"], np.asarray(d["weights"], dtype=np.float64), float(ic),
                           d["hyperparameters"], d["cv"])
    for k in ("training", "cv"):
        if not isinstance(doc.get(k), dict):
            raise bad(f"{k} missing")
    mm = ModesModel(np.asarray(sc["mean"], dtype=np.float64), np.asarray(sc["scale"], dtype=np.float64), out,
                    doc["training"], doc["cv"], taxonomy=doc["taxonomy"], libraries=doc.get("libraries"),
                    source=source)
    mm.with_id()
    if mm.model_id != doc["model_id"]:
        raise bad(f"content does not match its id {doc['model_id']} (edited or damaged; it hashes to {mm.model_id})")
    return mm


def save(store, model: ModesModel) -> None:
    """Store ``model`` in ``learned_models`` (kind ``modes``; a model already there under its id is replaced)."""
    documents.save(store, model_id=model.model_id, kind=KIND, features_version=TF.FEATURES_VERSION,
                   digest=model.training.get("digest"), body=model.dumps())


def load_stored(store, model_id: str) -> ModesModel:
    """A stored modes model by id or unique id prefix; ``latest`` is the newest one."""
    mid, body = documents.stored(store, KIND, model_id,
                                 none_hint="Train one with `mast learn modes` (no modes model ships with mast).")
    return loads(body, f"{mid} (store)")


def load_file(path: str | Path) -> ModesModel:
    return loads(documents.read_file(path), str(path))
