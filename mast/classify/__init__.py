"""Classifiers: one contract for rules, learned models and LLM judges, one registry.

Contract (DESIGN.md "Contracts"):
- A classifier has ``name`` (also its annotator name prefix), ``version``, ``kind``
  (``rule`` / ``learned`` / ``judge``), ``covers(taxonomy) -> set[str]`` (the modes it can
  actually assess: a mode outside this set is "not assessed", never "absent"), and
  ``arguments() -> dict`` (everything needed to reproduce a run).
- ``classify(store, trace_ids) -> Iterator[Output]`` yields, per trace or per batch of
  traces, the annotations and attributions found, with evidence step numbers; a trace
  it could not classify is reported in ``Output.failed`` with the reason, never as a
  label.  The runner (:mod:`mast.classify.runner`) stores each yielded output in its own
  transaction, so an interrupted run keeps all finished work.

Built-ins are registered through :func:`register` exactly as a plugin would be (entry
point group ``mast.classifiers``: a factory ``(**options) -> Classifier``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

from mast.errors import UsageError
from mast.model import Annotation, Attribution


@dataclass
class Output:
    annotations: list[Annotation] = field(default_factory=list)
    attributions: list[Attribution] = field(default_factory=list)
    #: trace_id -> reason, for traces that could not be classified
    failed: dict[str, str] = field(default_factory=dict)
    #: trace ids this output covers (their previous rows are replaced)
    trace_ids: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    #: part of the classifier (e.g. a rule detector) -> reason, for parts that failed
    #: while the others ran; their modes are left "not assessed"
    errors: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Classifier(Protocol):
    name: str
    version: str
    kind: str

    def covers(self, taxonomy) -> set[str]: ...

    def arguments(self) -> dict[str, Any]: ...

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]: ...


Factory = Callable[..., Classifier]
_REGISTRY: dict[str, Factory] = {}
_BUILTINS = ["mast.classify.rules", "mast.classify.judge"]
_loaded = False


def register(name: str, factory: Factory) -> Factory:
    _REGISTRY[name] = factory
    return factory


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTINS:
        importlib.import_module(mod)
    for ep in entry_points(group="mast.classifiers"):
        register(ep.name, ep.load())


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def create(name: str, **options) -> Classifier:
    _load()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown classifier {name!r}", "Known classifiers: " + ", ".join(sorted(_REGISTRY))) from None
    return factory(**options)


def coverage(taxonomy) -> dict[str, list[str]]:
    """mode id -> names of the classifiers that can assess it."""
    _load()
    out: dict[str, list[str]] = {m: [] for m in taxonomy.mode_ids}
    for name, factory in sorted(_REGISTRY.items()):
        try:
            clf = factory()
        except Exception:
            continue
        for m in clf.covers(taxonomy):
            out.setdefault(m, []).append(name)
    return out
