"""Learned models as documents: read from a file, kept in and read from the store.

One place for what every kind of learned model (``attribution``, ``modes``) does the
same way; each kind's module parses and checks its own document (``loads``).  A model
is JSON text: loading it is parsing and checking, never running code.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from mast.errors import MastError
from mast.store import Store


class ModelError(MastError):
    """A model that cannot be used: unreadable, damaged, of another version, unknown."""


def read_file(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as e:
        raise ModelError(f"model {p}: cannot read it ({e.strerror or e})") from None


def save(store, *, model_id: str, kind: str, features_version: str, digest: str | None, body: str) -> None:
    """Keep a model document in ``learned_models`` (one already there under its id is replaced)."""
    with store.transaction():
        store.execute("DELETE FROM learned_models WHERE model_id = ?", [model_id])
        store.execute(
            "INSERT INTO learned_models (model_id, kind, features_version, training_digest, created_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [model_id, kind, features_version, digest, datetime.now(timezone.utc).replace(tzinfo=None), body])


def stored(store, kind: str, ref: str, *, none_hint: str) -> tuple[str, str]:
    """``(model id, body)`` of the stored ``kind`` model with id or unique id prefix
    ``ref``; ``latest`` is the newest one.  Unknown or ambiguous: a :class:`ModelError`."""
    if ref == "latest":
        rows = store.fetchall("SELECT model_id, body FROM learned_models WHERE kind = ? "
                              "ORDER BY created_at DESC LIMIT 1", [kind])
    else:
        rows = store.fetchall("SELECT model_id, body FROM learned_models WHERE kind = ? "
                              "AND starts_with(model_id, ?) ORDER BY model_id", [kind, ref])
    if not rows:
        known = [r[0] for r in store.fetchall("SELECT model_id FROM learned_models WHERE kind = ? "
                                              "ORDER BY created_at DESC LIMIT 5", [kind])]
        raise ModelError(f"no stored {kind} model {ref!r}", ("Stored: " + ", ".join(known)) if known else none_hint)
    if len(rows) > 1:
        raise ModelError(f"model id prefix {ref!r} is ambiguous: " + ", ".join(r[0] for r in rows))
    return rows[0][0], rows[0][1]


def is_file_ref(ref: str) -> bool:
    """Does a ``-C model=…`` name a file (rather than a stored id, prefix or ``latest``)?"""
    return ref.endswith(".json") or Path(ref).is_file()


def open_early(ref: str, models_db: str | None, from_file, from_store):
    """Read the model a classifier is built with, so a bad one stops before a run is
    recorded: a file now; a stored id now when the store exists (else None: the
    classifier looks it up in the store it classifies)."""
    if is_file_ref(ref):
        return from_file(ref)
    if models_db and Path(models_db).exists():
        with Store(models_db, read_only=True) as store:
            return from_store(store, ref)
    return None


def content_id(body: dict, tag: str) -> str:
    """A model's id: ``tag`` and a digest of its document without the id itself and the
    library versions (retraining the same data with a newer numpy gives the same id)."""
    doc = {k: v for k, v in body.items() if k not in ("model_id", "libraries")}
    return f"{tag}-{hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]}"


class ModelBacked:
    """What the learned classifiers share: a model reference (``model_ref``), the model
    once read (``_model``), and version and annotator named by the model's id."""

    #: e.g. ``attribution``: the annotator is ``learned:<kind>@<model id>``
    model_kind = ""
    engine_version = "1"
    model_ref = ""
    _model = None

    @property
    def model(self):
        return self._model

    @property
    def _ident(self) -> str:
        return self._model.model_id if self._model else self.model_ref

    @property
    def version(self) -> str:
        return f"{self.engine_version}.{self._ident}"

    @property
    def annotator(self) -> str:
        return f"learned:{self.model_kind}@{self._ident}"
