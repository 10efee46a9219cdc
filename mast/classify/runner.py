"""Run a classifier over a selection of traces and record the run.

- One row in ``runs`` per run: classifier, version, arguments, taxonomy, model, counts,
  tokens, cost, status.
- ``action="replace"`` (default) deletes every earlier row of the run's annotators
  (:func:`annotator_names`) for the traces it classified, whatever version of the
  classifier wrote them and for every mode (so a mode a new version no longer labels
  keeps no stale row), in the same transaction as the new rows; a trace the run failed
  on keeps what it had.  ``append`` keeps both.
- Each :class:`mast.classify.Output` is committed on its own: Ctrl-C loses nothing
  finished.  The run row names its process (pid, host), so a row a killed process left
  ``running`` is marked ``interrupted`` when the store is next opened for writing;
  Ctrl-C marks it ``interrupted`` at once.
- :meth:`RunResult.failure_lines` counts why traces were left unclassified, with the first
  examples: what the CLI and ``mast analyze`` print.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from mast.classify.contract import Classifier, Output
from mast.store import Store
from mast.store.process import current as current_process
from mast.taxonomy import DEFAULT_TAXONOMY


@dataclass(frozen=True)
class Selection:
    """Which traces to classify.  ``where`` is a SQL condition over the traces table."""

    systems: tuple[str, ...] = ()
    where: str | None = None
    sample: int | None = None
    trace_ids: tuple[str, ...] | None = None

    def resolve(self, store: Store) -> list[str]:
        sql = "SELECT trace_id FROM traces WHERE 1=1"
        params: list = []
        if self.systems:
            sql += " AND system IN (SELECT unnest(?))"
            params.append(list(self.systems))
        if self.where:
            sql += f" AND (\n{store.where_sql(self.where)}\n)"
        if self.trace_ids:
            sql += " AND trace_id IN (SELECT unnest(?))"
            params.append(list(self.trace_ids))
        # A sample must be the same on every rerun so that resuming makes sense.
        sql += " ORDER BY hash(trace_id), trace_id" if self.sample else " ORDER BY trace_id"
        if self.sample:
            sql += f" LIMIT {int(self.sample)}"
        return [r[0] for r in store.fetchall(sql, params)]


@dataclass
class RunResult:
    run_id: str
    traces: int
    done: int
    failed: int
    annotations: int
    attributions: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    failures: dict[str, str]
    status: str
    #: classifier parts (e.g. rule detectors) that failed while the others ran
    errors: dict[str, str] = field(default_factory=dict)
    #: mode -> traces labelled present by this run
    present_by_mode: dict[str, int] = field(default_factory=dict)
    #: of tokens_in, prompt tokens the endpoint served from its prefix cache
    tokens_cached: int = 0
    classifier: str = ""
    version: str = ""
    #: what the classifier adds about the run (:meth:`Classifier.run_details`)
    details: dict[str, Any] = field(default_factory=dict)
    #: warnings for the user (:meth:`Classifier.run_notes`)
    notes: list[str] = field(default_factory=list)

    @property
    def unclassified(self) -> int:
        """Traces of the selection with no result from this run (failed or never started)."""
        return max(0, self.traces - self.done)

    def failure_kinds(self) -> dict[str, int]:
        """``{kind: traces}`` of the failures (a reason reads "kind: detail")."""
        kinds: dict[str, int] = {}
        for reason in self.failures.values():
            kind = reason.split(":", 1)[0] if ":" in reason else "failed"
            kinds[kind] = kinds.get(kind, 0) + 1
        return dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))

    def failure_lines(self, examples: int = 3) -> list[str]:
        """"35 unclassified: 35 call_failed", then the first ``examples`` distinct reasons."""
        if not self.failures:
            return []
        kinds = ", ".join(f"{n} {k}" for k, n in self.failure_kinds().items())
        unstarted = self.unclassified - len(self.failures)
        lines = [f"{self.unclassified} unclassified: {kinds}" + (f", {unstarted} not started" if unstarted > 0 else "")]
        seen: dict[str, str] = {}
        for tid, reason in self.failures.items():
            seen.setdefault(reason, tid)
        for reason, tid in list(seen.items())[:examples]:
            same = sum(1 for r in self.failures.values() if r == reason)
            lines.append(f"  e.g. {tid}: {reason}" + (f" (and {same - 1} more like it)" if same > 1 else ""))
        if len(seen) > examples:
            lines.append(f"  … and {len(seen) - examples} other reason(s) (--json lists every trace's)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The run summary ``mast classify --json`` prints."""
        return {"run_id": self.run_id, "classifier": self.classifier, "version": self.version,
                "status": self.status, "traces": self.traces, "done": self.done, "failed": self.failed,
                "annotations": self.annotations, "attributions": self.attributions,
                "present_by_mode": self.present_by_mode, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "tokens_cached": self.tokens_cached, "cost_usd": self.cost_usd,
                "failures": self.failures,
                "failure_kinds": self.failure_kinds(),
                "errors": self.errors, **self.details}


def _now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def annotator_name(clf: Classifier) -> str:
    # Plugins written before ClassifierBase may lack the property: their name is their annotator.
    return getattr(clf, "annotator", None) or clf.name


def annotator_names(clf: Classifier) -> list[str]:
    """Every annotator the classifier's outputs use (its own first): a rerun replaces them all."""
    main = annotator_name(clf)
    return list(dict.fromkeys([main, *(getattr(clf, "annotators", None) or ())]))


def run(store: Store, clf: Classifier, selection: Selection, *, taxonomy: str = DEFAULT_TAXONOMY,
        action: str = "replace", on_output: Callable[[Output], None] | None = None,
        trace_ids: Sequence[str] | None = None) -> RunResult:
    # A classifier built for one taxonomy (rules, judge: ``taxonomy_id``) labels that one,
    # whatever the caller passed: the run row and the rows it replaces follow its labels.
    taxonomy = getattr(clf, "taxonomy_id", None) or taxonomy
    ids = list(trace_ids) if trace_ids is not None else selection.resolve(store)
    run_id = f"{clf.name}-{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    args = clf.arguments()
    pid, host, started = current_process()
    store.execute(
        "INSERT INTO runs (run_id, classifier, version, arguments, taxonomy, model, started_at, status, "
        "pid, host, process_started) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
        [run_id, clf.name, clf.version, json.dumps({**args, "selection": selection.__dict__ | {"trace_ids": None}},
                                                     default=str),
         taxonomy, args.get("model"), _now(), pid, host, started])
    res = RunResult(run_id, len(ids), 0, 0, 0, 0, 0, 0, 0.0, {}, "running", classifier=clf.name,
                    version=clf.version)
    annotator = annotator_name(clf)
    annotators = annotator_names(clf)
    try:
        for out in clf.classify(store, ids):
            for a in out.annotations:
                a.run_id, a.annotator = run_id, a.annotator or annotator
            for a in out.attributions:
                a.run_id, a.annotator = run_id, a.annotator or annotator
            with store.transaction():
                covered = out.trace_ids or sorted({a.trace_id for a in out.annotations} |
                                                  {a.trace_id for a in out.attributions})
                # every earlier row of these annotators on the traces classified, whatever
                # version wrote it (rows of a mode this version no longer labels included):
                # a row an older version left would still count as that annotator's latest
                replaced = [t for t in covered if t not in out.failed]
                # -- of this run's taxonomy only: a run of another taxonomy by the same
                # annotator (rules for distsys-v1) never removes these labels; root causes
                # carry no taxonomy, so only a run of the default taxonomy replaces them.
                if action == "replace" and replaced:
                    store.execute("DELETE FROM annotations WHERE annotator IN (SELECT unnest(?)) "
                                  "AND trace_id IN (SELECT unnest(?)) AND taxonomy = ?", [annotators, replaced, taxonomy])
                    if taxonomy == DEFAULT_TAXONOMY:
                        store.execute("DELETE FROM attributions WHERE annotator IN (SELECT unnest(?)) "
                                      "AND trace_id IN (SELECT unnest(?))", [annotators, replaced])
                res.annotations += store.write_annotations(out.annotations)
                res.attributions += store.write_attributions(out.attributions)
                res.failed += len(out.failed)
                res.done += len(set(covered) - set(out.failed))
                res.failures.update(out.failed)
                res.errors.update(out.errors)
                res.tokens_in += out.tokens_in
                res.tokens_out += out.tokens_out
                res.tokens_cached += out.tokens_cached
                res.cost_usd += out.cost_usd
                store.execute(
                    "UPDATE runs SET traces_done = ?, traces_failed = ?, tokens_in = ?, tokens_out = ?, cost_usd = ?, "
                    "tokens_cached = ? WHERE run_id = ?",
                    [res.done, res.failed, res.tokens_in, res.tokens_out, res.cost_usd, res.tokens_cached, run_id])
            if on_output:
                on_output(out)
        res.status = "finished"
    except KeyboardInterrupt:
        res.status = "interrupted"
        raise
    except Exception:
        res.status = "failed"
        raise
    finally:
        store.execute("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?", [_now(), res.status, run_id])
    if res.annotations:
        res.present_by_mode = dict(store.fetchall(
            "SELECT mode, count(*) FILTER (WHERE label = 'present') FROM annotations WHERE run_id = ? "
            "GROUP BY mode ORDER BY mode", [run_id]))
    res.details = clf.run_details()
    res.notes = clf.run_notes()
    return res
