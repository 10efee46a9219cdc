"""The one contract every classifier (rules, learned, judge) fulfils.

A classifier is a class with:

- ``name`` (also its annotator name, unless it has an ``annotator`` property),
  ``version`` and ``kind`` (``rule`` / ``learned`` / ``judge``); optionally
  ``annotators``, every annotator name its outputs use (default: ``(annotator,)``; the
  rules add ``rules:signal``), so that a rerun replaces the rows of all of them;
- ``options``: the :class:`Option` s its constructor takes.  The CLI's ``-C key=value``
  and Python callers (``create("judge", model=...)``) both go through them, so the CLI
  never names a classifier or one of its options;
- ``covers(taxonomy) -> set[str]``: the modes it can actually assess (a mode outside
  this set is "not assessed", never "absent");
- ``arguments() -> dict``: everything needed to reproduce a run;
- ``classify(store, trace_ids) -> Iterator[Output]``: per trace or per batch, the
  annotations and attributions found, with evidence step numbers; a trace it could not
  classify goes in ``Output.failed`` with the reason, never as a label.  The runner
  (:mod:`mast.classify.runner`) stores each output in its own transaction;
- ``estimate(store, trace_ids) -> Estimate | None``: what a run would cost before
  anything is spent (``None``: nothing to estimate, the run is free);
- ``run_details() -> dict`` and ``run_notes() -> list[str]``, read after a run: extra
  figures for the run summary (cache hits, per-detector timings) and warnings for the
  user (a budget reached).

:class:`ClassifierBase` gives the optional parts their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Protocol, Sequence, runtime_checkable

from mast.errors import UsageError
from mast.model import Annotation, Attribution
from mast.settings import ENV


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
    #: of ``tokens_in``, the prompt tokens the endpoint said it served from its prefix cache
    #: (``usage.prompt_tokens_details.cached_tokens``; 0 when it says nothing)
    tokens_cached: int = 0
    #: part of the classifier (e.g. a rule detector) -> reason, for parts that failed
    #: while the others ran; their modes are left "not assessed"
    errors: dict[str, str] = field(default_factory=dict)


def flag(text: str) -> bool:
    """``parse`` for on/off options: true/false, yes/no, 1/0 (an empty value is true)."""
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on", ""):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Option:
    """One constructor argument of a classifier, settable as ``-C name=value``."""

    name: str
    help: str
    #: turns the text of ``-C name=value`` into the value (int, float, a flag, ...)
    parse: Callable[[str], Any] = str
    #: repeatable: ``-C name=a -C name=b`` or ``-C name=a,b`` give a list
    multiple: bool = False
    #: a :class:`mast.settings.Settings` field that supplies the value when none is given
    setting: str | None = None

    def describe(self) -> str:
        """The help text with what the declaration adds: repeatable, its environment variable."""
        extra = (" Repeatable, or comma-separated." if self.multiple else "") + \
            (f" Default: {ENV[self.setting]}." if self.setting else "")
        return self.help + extra

    def convert(self, value: Any) -> Any:
        if self.multiple:
            items = value if isinstance(value, (list, tuple)) else [value]
            out: list[Any] = []
            for v in items:
                out.extend(self._one(p) for p in (v.split(",") if isinstance(v, str) else [v]) if p != "")
            return out
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise UsageError(f"option {self.name!r} takes one value, got {len(value)}")
            value = value[0]
        return self._one(value)

    def _one(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except (TypeError, ValueError) as e:
            raise UsageError(f"option {self.name}={value!r}: {e}") from None


class Estimate(Protocol):
    def as_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@runtime_checkable
class Classifier(Protocol):
    name: str
    version: str
    kind: str
    options: ClassVar[Sequence[Option]]

    def covers(self, taxonomy) -> set[str]: ...

    def arguments(self) -> dict[str, Any]: ...

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]: ...

    def estimate(self, store, trace_ids: Sequence[str]) -> Estimate | None: ...

    def run_details(self) -> dict[str, Any]: ...

    def run_notes(self) -> list[str]: ...


class ClassifierBase:
    """Defaults for the optional parts of the contract."""

    name: str = ""
    version: str = ""
    kind: str = ""
    options: ClassVar[Sequence[Option]] = ()

    @property
    def annotator(self) -> str:
        return self.name

    @property
    def annotators(self) -> tuple[str, ...]:
        return (self.annotator,)

    def estimate(self, store, trace_ids: Sequence[str]) -> Estimate | None:
        return None

    def run_details(self) -> dict[str, Any]:
        return {}

    def run_notes(self) -> list[str]:
        return []
