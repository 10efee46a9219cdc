"""What classifiers keep in step with the traces at ingest: write hooks for the store.

:func:`ingest_hooks` is what an ingest passes to
:func:`mast.ingest.pipeline.ingest_paths` so that classifier-side derived rows (today:
the rules' per-step features) are computed in the transaction that stores the steps.
Not re-exported by :mod:`mast.classify`: it imports the store (duckdb, pyarrow), which
``mast --help`` should not pay for.
"""

from __future__ import annotations

from mast.classify.rules import FeatureHook, default_rules_dir
from mast.settings import Settings
from mast.store import WriteHook


def ingest_hooks(settings: Settings | None = None) -> list[WriteHook]:
    """The write hooks an ingest runs (rules folder from ``settings``, default the environment's)."""
    return [FeatureHook(default_rules_dir(settings))]
