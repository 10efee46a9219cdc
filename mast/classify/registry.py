"""The classifier registry: built-ins in one table, plugins by entry point.

A built-in is one line in :data:`BUILTINS` (name -> ``module:Class``); its module is
imported when first asked for, so ``mast --help`` never imports openai or scikit-learn.
A plugin is an entry point in the group ``mast.classifiers`` naming a class (or a
factory with an ``options`` attribute) that fulfils :mod:`mast.classify.contract`.
A built-in that fails to import is an error, never silently missing.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

from mast.classify.contract import Classifier, Option
from mast.errors import UsageError
from mast.plugins import entry_points
from mast.settings import Settings

Factory = Callable[..., Classifier]

#: name -> "module:attribute", the built-in classifiers.
BUILTINS: dict[str, str] = {
    "rules": "mast.classify.rules:RulesClassifier",
    "judge": "mast.classify.judge:JudgeClassifier",
    "learned": "mast.classify.learned:LearnedClassifier",
    "learned-modes": "mast.classify.learned.modes_classifier:LearnedModesClassifier",
    "cascade": "mast.classify.cascade:CascadeClassifier",
}

_REGISTRY: dict[str, Factory] = {}
_loaded = False


def register(name: str, factory: Factory) -> Factory:
    """Register a classifier under ``name`` (a plugin, or a test's own classifier)."""
    _REGISTRY[name] = factory
    return factory


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for name, target in BUILTINS.items():
        mod, attr = target.split(":")
        _REGISTRY.setdefault(name, getattr(importlib.import_module(mod), attr))
    for ep in entry_points(group="mast.classifiers"):
        _REGISTRY.setdefault(ep.name, ep.load())
    _loaded = True


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def factory(name: str) -> Factory:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown classifier {name!r}", "Known classifiers: " + ", ".join(sorted(_REGISTRY))) from None


def options_of(name: str) -> Sequence[Option]:
    return tuple(getattr(factory(name), "options", ()))


def create(name: str, *, settings: Settings | None = None, **given: Any) -> Classifier:
    """Build classifier ``name`` from its options.

    ``given`` holds typed values (from Python) or text (from ``-C key=value``); an option
    not given takes its :class:`~mast.settings.Settings` field when ``settings`` is
    passed, else the classifier's own default.  An option the classifier does not
    declare is an error naming the ones it has.
    """
    fac = factory(name)
    declared = {o.name: o for o in options_of(name)}
    given = {k.replace("-", "_"): v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UsageError(f"classifier {name!r} has no option {', '.join(unknown)}",
                         f"Options of {name}: " + (", ".join(declared) or "none") + " (see `mast classifiers`).")
    kwargs = {k: declared[k].convert(v) for k, v in given.items()}
    if settings is not None:
        for o in declared.values():
            if o.name not in kwargs and o.setting and getattr(settings, o.setting) is not None:
                kwargs[o.name] = getattr(settings, o.setting)
    return fac(**kwargs)


def parse_assignments(pairs: Sequence[str]) -> dict[str, Any]:
    """``["budget=5", "only=a", "only=b"]`` -> ``{"budget": "5", "only": ["a", "b"]}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"-C {pair!r}: expected key=value", "For example: -C budget=5")
        if key in out:
            prev = out[key]
            out[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[key] = value
    return out


def coverage(taxonomy) -> dict[str, list[str]]:
    """mode id -> names of the classifiers that can assess it (each built with its defaults)."""
    _load()
    out: dict[str, list[str]] = {m: [] for m in taxonomy.mode_ids}
    for name, fac in sorted(_REGISTRY.items()):
        for m in fac().covers(taxonomy):
            out.setdefault(m, []).append(name)
    return out
