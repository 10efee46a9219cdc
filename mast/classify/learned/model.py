"""A learned model is data: one JSON document, validated on load, never executed.

Format (``format: "mast-learned-model"``, ``format_version: 1``)::

    {"format": ..., "format_version": 1, "kind": "attribution", "model_id": "la1-<16 hex>",
     "features_version": "1", "features": [names, in column order], "taxonomy": "mast-v1",
     "ranker": {"weights": [...], "mean": [...], "scale": [...]},
     "agent_rule": "step" | "mass", "hyperparameters": {"l2": ...},
     "training": {"gold": ..., "where": ..., "traces": n, "by_system": {...}, "digest": "sha256:..."},
     "cv": {<system>: {...}}, "libraries": {"python": ..., "numpy": ..., "mast": ...}}

Why JSON and not pickle/joblib/skops: the model is a linear ranker (three float arrays
and a list of feature names), so a plain JSON document holds it exactly, can be read and
diffed by a person, and loading it is ``json.loads`` plus checks — it cannot run code,
whatever the file holds.  The id is a tagged content hash of everything that decides
predictions and provenance (not of the creation time), so the same training data gives
the same id.

Models live in the store table ``learned_models`` (``mast learn`` writes there) or in a
file (the shipped default, ``classifiers/learned/attribution-default.json``).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mast.classify.learned.features import DENSE, FEATURES_VERSION
from mast.classify.learned.ranker import Ranker
from mast.classify.learned import documents
from mast.classify.learned.documents import ModelError
from mast.taxonomy import DEFAULT_TAXONOMY
from mast import __version__
from mast.resources import data_dir

FORMAT = "mast-learned-model"
FORMAT_VERSION = 1
MODEL_ID_TAG = "la1"  # learned attribution, id scheme 1
AGENT_RULES = ("step", "mass")
DEFAULT_MODEL = "default"


@dataclass
class AttributionModel:
    ranker: Ranker
    agent_rule: str
    hyperparameters: dict[str, Any]
    training: dict[str, Any]
    cv: dict[str, Any]
    taxonomy: str = DEFAULT_TAXONOMY
    libraries: dict[str, str] | None = None
    model_id: str = ""
    #: where it was read from (a file, or ``store``), for messages
    source: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": "attribution",
            "model_id": self.model_id, "features_version": FEATURES_VERSION, "features": list(DENSE),
            "taxonomy": self.taxonomy,
            "ranker": {"weights": _floats(self.ranker.weights), "mean": _floats(self.ranker.mean),
                       "scale": _floats(self.ranker.scale)},
            "agent_rule": self.agent_rule, "hyperparameters": self.hyperparameters,
            "training": self.training, "cv": self.cv, "libraries": self.libraries or libraries(),
        }

    def with_id(self) -> "AttributionModel":
        """Set :attr:`model_id` from the content (floats rounded as stored)."""
        doc = self.body()
        self.model_id = documents.content_id(doc, MODEL_ID_TAG)
        # predictions must come from exactly what is stored
        self.ranker = Ranker(*(np.asarray(doc["ranker"][k]) for k in ("weights", "mean", "scale")))
        return self

    def dumps(self) -> str:
        return json.dumps(self.body(), indent=1, sort_keys=True) + "\n"


#: below this magnitude a stored float is 0: a weight that is zero in exact arithmetic (a
#: feature constant over the training set) comes out of the solver as 1e-16-sized noise
#: whose digits depend on the BLAS kernels the CPU picks, and would change the model's id
_ZERO_BELOW = 1e-9


def _floats(a: np.ndarray) -> list[float]:
    return [float(f"{x:.8g}") if abs(x) >= _ZERO_BELOW else 0.0 for x in np.asarray(a, dtype=np.float64)]


def libraries() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__, "mast": __version__}


def loads(text: str | bytes, source: str) -> AttributionModel:
    """Parse and check a model document; any problem is a :class:`ModelError` naming ``source``."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"model {source}: not valid JSON ({e})",
                         "Retrain it with `mast learn attribution`, or use the default (-C model=default).") from None

    def bad(why: str, hint: str = "Retrain it with `mast learn attribution`.") -> ModelError:
        return ModelError(f"model {source}: {why}", hint)

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"not a {FORMAT} document")
    if doc.get("format_version") != FORMAT_VERSION:
        raise bad(f"format version {doc.get('format_version')!r}; this mast reads {FORMAT_VERSION}")
    if doc.get("kind") != "attribution":
        raise bad(f"kind {doc.get('kind')!r}, expected 'attribution'")
    if doc.get("features_version") != FEATURES_VERSION:
        raise bad(f"features version {doc.get('features_version')!r}; this mast computes version {FEATURES_VERSION}")
    if doc.get("features") != list(DENSE):
        raise bad("its feature list differs from this mast's (same version, other columns)")
    if doc.get("agent_rule") not in AGENT_RULES:
        raise bad(f"agent_rule {doc.get('agent_rule')!r}, expected one of {', '.join(AGENT_RULES)}")
    if not isinstance(doc.get("taxonomy"), str) or not isinstance(doc.get("model_id"), str):
        raise bad("taxonomy or model_id missing")
    r = doc.get("ranker")
    arrays = []
    for k in ("weights", "mean", "scale"):
        v = r.get(k) if isinstance(r, dict) else None
        if (not isinstance(v, list) or len(v) != len(DENSE)
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
            raise bad(f"ranker.{k} is not {len(DENSE)} finite numbers")
        arrays.append(np.asarray(v, dtype=np.float64))
    if (arrays[2] <= 0).any():
        raise bad("ranker.scale has a value <= 0")
    for k in ("hyperparameters", "training", "cv"):
        if not isinstance(doc.get(k), dict):
            raise bad(f"{k} missing")
    m = AttributionModel(Ranker(*arrays), doc["agent_rule"], doc["hyperparameters"], doc["training"], doc["cv"],
                         taxonomy=doc["taxonomy"], libraries=doc.get("libraries"), source=source)
    m.with_id()
    if m.model_id != doc["model_id"]:
        raise bad(f"content does not match its id {doc['model_id']} (edited or damaged; it hashes to {m.model_id})")
    return m


def default_path() -> Path:
    return data_dir("classifiers") / "learned" / "attribution-default.json"


def load_file(path: str | Path) -> AttributionModel:
    return loads(documents.read_file(path), str(path))


def save(store, model: AttributionModel) -> None:
    """Store ``model`` in ``learned_models`` (a model already there under its id is replaced)."""
    documents.save(store, model_id=model.model_id, kind="attribution", features_version=FEATURES_VERSION,
                   digest=model.training.get("digest"), body=model.dumps())


def load_stored(store, model_id: str) -> AttributionModel:
    """A stored model by id or unique id prefix; ``latest`` is the newest one."""
    mid, body = documents.stored(store, "attribution", model_id, none_hint=(
        "Train one with `mast learn attribution`, or use the shipped default (-C model=default)."))
    return loads(body, f"{mid} (store)")


def resolve(model: str, store=None) -> AttributionModel:
    """``default`` (shipped), a path to a ``.json`` file, or an id in ``store``."""
    if model == DEFAULT_MODEL:
        return load_file(default_path())
    if model.endswith(".json") or Path(model).is_file():
        return load_file(model)
    if store is None:
        raise ModelError(f"model {model!r}: no store to look it up in")
    return load_stored(store, model)
