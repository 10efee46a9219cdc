"""The main job as a library function: ingest, classify, report.

:func:`analyze` is what ``mast analyze`` (and the quick start) runs; the CLI only
renders its events and its result.  Stages:

1. ingest the paths (:func:`mast.ingest.pipeline.ingest_paths`); a bad file stops the
   job unless ``keep_going``;
2. classify every trace with each classifier of the plan (:func:`default_plan`: the
   rules, the learned root-cause model, then the judge when a model and a way to reach
   it are configured);
3. write the report (:func:`mast.report.write_report`) from whatever the store holds,
   even when a classifier failed.

Nothing here prints: progress goes to ``on_event`` as :class:`Event` s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from mast.classify import create
from mast.classify.hooks import ingest_hooks
from mast.classify.runner import Selection, run
from mast.errors import MastError
from mast.ingest.pipeline import FileResult, expand, ingest_paths
from mast.report import ReportResult, write_report
from mast.settings import Settings
from mast.store import Store


@dataclass(frozen=True)
class Event:
    """Progress: a stage starts (``total`` set), advances (``advance``), or says something."""

    stage: str
    total: int | None = None
    advance: int = 0
    unit: str = "items"          # "bytes" for ingest
    message: str | None = None   # an error or note to show now
    error: bool = False


@dataclass
class Stage:
    stage: str
    result: str
    seconds: float
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "result": self.result, "seconds": self.seconds, "ok": self.ok}


@dataclass
class Planned:
    """One classifier run of the plan, or why it is skipped."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""


@dataclass
class AnalyzeResult:
    stages: list[Stage] = field(default_factory=list)
    report: ReportResult | None = None
    #: True when a bad file stopped the job before classify and report
    stopped: bool = False
    files_total: int = 0
    files_read: int = 0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and not self.stopped


def judge_configured(settings: Settings) -> str:
    """Why the judge cannot run with these settings ("" when it can)."""
    if not settings.judge_model:
        return "no model configured (--model or MAST_JUDGE_MODEL)"
    if not (settings.api_key or settings.base_url):
        return "no OPENAI_API_KEY and no --base-url/OPENAI_BASE_URL"
    return ""


def default_plan(settings: Settings) -> list[Planned]:
    """Rules first (the learned root-cause model reads their features, the judge their
    findings as hints), then the shipped learned model (free, offline), then the judge
    if configured."""
    return [Planned("rules"), Planned("learned"), Planned("judge", skipped=judge_configured(settings))]


def analyze(store: Store, paths: Iterable[str | os.PathLike], output: str | Path, *, settings: Settings,
            default_system: str | None = None, keep_going: bool = False, plan: list[Planned] | None = None,
            on_event: Callable[[Event], None] | None = None) -> AnalyzeResult:
    emit = on_event or (lambda e: None)
    files = expand(paths)  # a missing path fails before the store is touched
    res = AnalyzeResult(files_total=len(files))

    # 1. ingest
    t0 = time.perf_counter()
    emit(Event("ingest", total=sum(f.stat().st_size for f in files), unit="bytes"))

    def on_file(fr: FileResult, size: int) -> None:
        emit(Event("ingest", advance=size, unit="bytes", message=str(fr.error) if fr.error else None,
                   error=bool(fr.error)))

    summary = ingest_paths(store, files, "auto", default_system, keep_going, on_file,
                           hooks=ingest_hooks(settings))
    fmts = ", ".join(f"{k} ×{v}" for k, v in sorted(summary.formats.items())) or "-"
    res.files_read = len(summary.files)
    res.stages.append(Stage("ingest", f"{len(summary.files)} file(s) ({fmts}): {summary.traces_new} new trace(s), "
                                      f"{summary.traces_present} already stored, {summary.steps} step(s), "
                                      f"{len(summary.errors)} error(s)",
                            round(time.perf_counter() - t0, 2), not summary.errors))
    # A full disk or exhausted memory stops the job even with keep_going: classifying a
    # store that could not take the rest of the input would report on a silent subset.
    if summary.errors and (not keep_going or summary.aborted):
        res.stopped = True
        return res

    # 2. classify
    selection = Selection()
    ids = selection.resolve(store)
    for item in plan if plan is not None else default_plan(settings):
        label = f"classify {item.name}"
        if item.skipped:
            res.stages.append(Stage(label, f"skipped: {item.skipped}", 0.0, True))
            continue
        t0 = time.perf_counter()
        try:
            clf = create(item.name, settings=settings, **item.options)
            emit(Event(label, total=len(ids)))
            if hasattr(clf, "on_progress"):   # a classifier waiting on a service says so (the judge)
                clf.on_progress = lambda line, label=label: emit(Event(label, message=line))
            run_res = run(store, clf, selection, trace_ids=ids, on_output=lambda out, label=label: emit(
                Event(label, advance=len(out.trace_ids) or len({a.trace_id for a in out.annotations}))))
            tags = sum(run_res.present_by_mode.values())
            # As `mast classify`: nothing classified fails the stage; some unclassified is a warning.
            nothing = bool(ids) and run_res.done == 0 and bool(run_res.failures or run_res.notes)
            ok = not (run_res.errors or nothing)
            why = run_res.failure_lines(examples=1)
            result = (f"{run_res.done} trace(s) classified, {run_res.failed} failed; {tags} failure tag(s), "
                      f"{run_res.attributions} root cause(s)"
                      + (f"; ${run_res.cost_usd:.4f}" if run_res.cost_usd else "")
                      + "".join(f"; error in {k}: {v}" for k, v in run_res.errors.items())
                      + "".join(f"; {n}" for n in run_res.notes)
                      + (f"; {'' if nothing else 'warning: '}{why[0]} ({why[1].strip()})" if len(why) > 1 else ""))
            for line in why:
                emit(Event(label, message=line.strip(), error=nothing))
        except MastError as e:
            ok, result = False, f"error: {e}"
        res.stages.append(Stage(label, result, round(time.perf_counter() - t0, 2), ok))

    # 3. report
    t0 = time.perf_counter()
    emit(Event("report", total=1))
    rep = write_report(store, output)
    emit(Event("report", advance=1))
    e = rep.context.explorer
    res.report = rep
    res.stages.append(Stage("report", f"{rep.path} ({rep.bytes / 1e6:.1f} MB): {e.total_traces} trace(s), "
                                      f"{e.listed} in the explorer", round(time.perf_counter() - t0, 2), True))
    return res
