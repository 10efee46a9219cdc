"""The detector run and its results, in temporary tables of the store's connection.

One run: :func:`prepare_selection` (the selected traces, and the views detectors read),
:func:`run_detectors` (preludes, the feature pass, then every detector's rows into
``temp.rule_hits``), :func:`build_results` (present/absent rows and root causes), then
:func:`read_chunk` per output.  They are functions so that the benchmark can time
each part.

Per run: every detector's rows become ``present`` annotations with evidence; for every
selected trace and every mode whose detectors all ran, a trace with no finding gets an
``absent`` annotation ("looked, found nothing"), so a mode no detector covers, or whose
detector failed, stays "not assessed".  A detector that fails (bad SQL, wrong columns,
a mode other than its header's) is reported by name in :attr:`Output.errors` and the
others still run.

Signals: the rows of a detector whose header says ``-- role: signal`` are not labels.
Per (trace, mode) they become one ``unknown`` annotation by annotator ``rules:signal``
(:func:`mast.model.signal_annotator`) with the evidence steps and the rationale:
stored, so the judge's hints and the report read them like any finding, and
``unknown``, so nothing counts them as an assessment (exposure, agreement,
``mast evaluate``).  A signal detector's mode is not among ``ok_modes`` unless a label
detector covers it too: no ``absent`` rows come from a signal.  Signals never give a
root cause.

Root cause: every trace with at least one label finding whose outcome is not
``success`` gets one attribution, the earliest evidence step over all label findings
(ties: the most confident finding), with the agent of that step.  Traces recorded as successful get
none; traces of unknown outcome do, because most imported traces do not record their
outcome and a finding is itself a sign of failure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mast.classify.contract import Output
from mast.classify.rules.features import FEATURES, ensure_features, is_features
from mast.classify.rules.files import Detector, default_rules_dir, parse_detector, strip_semicolon
from mast.errors import MastError, UsageError
from mast.model import DEFAULT_TAXONOMY, Annotation, Attribution, Label, signal_annotator


#: The annotator of the rules' signals (see the module docstring).
SIGNALS = signal_annotator("rules")


@dataclass
class DetectorRun:
    """What one detector (or prelude) did in a run."""

    name: str
    mode: str | None
    seconds: float
    findings: int
    error: str | None = None


def prepare_selection(store, ids: Sequence[str]) -> None:
    """Temp table ``sel(i, trace_id)`` and the views detectors read."""
    store.execute("DROP TABLE IF EXISTS temp.sel")
    # Two unnests in one SELECT are zipped: i is the position of the id in ``ids``.
    store.execute("CREATE TEMP TABLE sel AS SELECT unnest(range(len(l)))::BIGINT AS i, unnest(l) AS trace_id "
                  "FROM (SELECT ?::VARCHAR[] AS l)", [list(ids)])
    total = store.fetchall("SELECT count(*) FROM traces")[0][0]
    if total == len(ids):
        # Everything is selected: read the tables directly (no semi-join over 20M steps).
        store.execute("CREATE OR REPLACE TEMP VIEW sel_traces AS SELECT * FROM main.traces")
        store.execute("CREATE OR REPLACE TEMP VIEW sel_steps AS SELECT * FROM main.steps")
    else:
        store.execute("CREATE OR REPLACE TEMP VIEW sel_traces AS "
                      "SELECT * FROM main.traces WHERE trace_id IN (SELECT trace_id FROM temp.sel)")
        store.execute("CREATE OR REPLACE TEMP VIEW sel_steps AS "
                      "SELECT * FROM main.steps WHERE trace_id IN (SELECT trace_id FROM temp.sel)")


def run_detectors(store, detectors: Sequence[Detector]) -> list[DetectorRun]:
    """Run preludes then detectors into ``temp.rule_hits``; a failure is recorded, not raised.

    The ``_features`` prelude is :func:`ensure_features` (its ``findings`` count the
    traces whose features had to be computed).
    """
    store.execute("CREATE OR REPLACE TEMP TABLE rule_hits (detector VARCHAR, trace_id VARCHAR, mode VARCHAR, "
                  "confidence DOUBLE, evidence_steps INTEGER[], rationale VARCHAR)")
    runs: list[DetectorRun] = []
    prelude_error: str | None = None
    for d in detectors:
        t0 = time.perf_counter()
        if d.prelude:
            try:
                if is_features(d):
                    n = ensure_features(store, d)
                    runs.append(DetectorRun(d.name, None, time.perf_counter() - t0, n))
                    continue
                store.execute(d.sql)
            except MastError as e:
                prelude_error = f"prelude {d.name} failed: {_short(e)}"
                runs.append(DetectorRun(d.name, None, time.perf_counter() - t0, 0, _short(e)))
                continue
            runs.append(DetectorRun(d.name, None, time.perf_counter() - t0, 0))
            continue
        if prelude_error:
            runs.append(DetectorRun(d.name, d.mode, 0.0, 0, prelude_error))
            continue
        try:
            with store.transaction():
                store.execute(
                    "INSERT INTO temp.rule_hits SELECT ?, trace_id::VARCHAR, mode::VARCHAR, "
                    "least(1.0, greatest(0.0, confidence::DOUBLE)), evidence_steps::INTEGER[], rationale::VARCHAR "
                    f"FROM (\n{strip_semicolon(d.sql)}\n) AS detector_rows", [d.name])
                bad = store.fetchall("SELECT count(*), any_value(mode) FROM temp.rule_hits "
                                     "WHERE detector = ? AND mode IS DISTINCT FROM ?", [d.name, d.mode])[0]
                if bad[0]:
                    raise UsageError(f"returned mode {bad[1]!r}, but its header says {d.mode!r}")
            n = store.fetchall("SELECT count(*) FROM temp.rule_hits WHERE detector = ?", [d.name])[0][0]
            runs.append(DetectorRun(d.name, d.mode, time.perf_counter() - t0, n))
        except MastError as e:
            runs.append(DetectorRun(d.name, d.mode, time.perf_counter() - t0, 0, f"{d.path.name}: {_short(e)}"))
    return runs


def build_results(store, ok_modes: Sequence[str], has_features: bool = True, signals: Sequence[str] = ()) -> None:
    """Merge label findings per (trace, mode), add absent rows, pick the root cause per
    trace; merge the findings of the ``signals`` detectors apart (``temp.rule_signal``)."""
    merged = """
        SELECT trace_id, mode, max(confidence) AS confidence,
               list_sort(list_distinct(flatten(list(coalesce(evidence_steps, []))))) AS evidence_steps,
               string_agg(rationale, '; ' ORDER BY detector) AS rationale,
               string_agg(DISTINCT detector, ', ') AS detectors
        FROM temp.rule_hits WHERE trace_id IN (SELECT trace_id FROM temp.sel)
          AND {cond} list_contains(?::VARCHAR[], detector)
        GROUP BY trace_id, mode"""
    store.execute("CREATE OR REPLACE TEMP TABLE rule_found AS " + merged.format(cond="NOT"), [list(signals)])
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE rule_signal AS
        SELECT s.i, f.trace_id, f.mode, f.confidence, f.evidence_steps,
               f.rationale || ' [' || f.detectors || ']' AS rationale
        FROM ({merged.format(cond="")}) f JOIN temp.sel s USING (trace_id)""", [list(signals)])
    store.execute("""
        CREATE OR REPLACE TEMP TABLE rule_out AS
        SELECT s.i, s.trace_id, m.mode,
               CASE WHEN f.trace_id IS NULL THEN 'absent' ELSE 'present' END AS label,
               f.confidence, coalesce(f.evidence_steps, []::INTEGER[]) AS evidence_steps,
               CASE WHEN f.trace_id IS NULL THEN NULL ELSE f.rationale || ' [' || f.detectors || ']' END AS rationale
        FROM temp.sel s CROSS JOIN (SELECT unnest(?::VARCHAR[]) AS mode) m
        LEFT JOIN temp.rule_found f ON f.trace_id = s.trace_id AND f.mode = m.mode""", [list(ok_modes)])
    # An execution output (a terminal's traceback) is evidence, but the agent to blame is
    # the one who asked for the execution: move such a root cause to the latest earlier
    # step that is not an execution output.
    author = ("(SELECT max(r.step) FROM temp.rule_steps r WHERE r.trace_id = b.trace_id AND r.step < b.step "
              "AND NOT r.is_exec)") if has_features else "NULL"
    is_exec = ("(SELECT any_value(r.is_exec) FROM temp.rule_steps r WHERE r.trace_id = b.trace_id "
               "AND r.step = b.step)") if has_features else "false"
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE rule_root AS
        WITH first AS (
            SELECT trace_id, mode, confidence, evidence_steps[1] AS step, detectors
            FROM temp.rule_found WHERE len(evidence_steps) > 0
        ),
        best AS (
            SELECT trace_id, arg_min(mode, (step, -confidence, mode)) AS mode, min(step) AS step,
                   arg_min(confidence, (step, -confidence, mode)) AS confidence,
                   arg_min(detectors, (step, -confidence, mode)) AS detectors
            FROM first GROUP BY trace_id
        ),
        moved AS (
            SELECT b.*, CASE WHEN coalesce({is_exec}, false) THEN {author} END AS author_step FROM best b
        )
        SELECT s.i, b.trace_id, st.agent, coalesce(b.author_step, b.step) AS step, b.confidence * 0.5 AS confidence,
               'earliest evidence of mode ' || b.mode || ' (' || b.detectors || ') at step ' || b.step
               || CASE WHEN b.author_step IS NOT NULL
                       THEN ', an execution output; blamed on the step that asked for it' ELSE '' END AS rationale
        FROM moved b JOIN temp.sel s USING (trace_id)
        JOIN main.traces t USING (trace_id)
        LEFT JOIN main.steps st ON st.trace_id = b.trace_id AND st.step = coalesce(b.author_step, b.step)
        WHERE t.outcome <> 'success'""")


def read_chunk(store, lo: int, hi: int, taxonomy: str = DEFAULT_TAXONOMY) -> Output:
    """One output's rows.  Root causes come only from the default taxonomy's run: a
    trace's root cause is one answer, and a second taxonomy's run must not replace it."""
    out = Output()
    rows = store.fetchall("SELECT trace_id, mode, label, confidence, evidence_steps, rationale FROM temp.rule_out "
                          "WHERE i >= ? AND i < ? ORDER BY i, mode", [lo, hi])
    present, absent = Label.PRESENT, Label.ABSENT
    out.annotations = [Annotation(mode=m, label=present if lab == "present" else absent, annotator="rules",
                                  taxonomy=taxonomy, confidence=c, evidence_steps=list(ev or []), rationale=r, trace_id=t)
                       for t, m, lab, c, ev, r in rows]
    sig = store.fetchall("SELECT trace_id, mode, confidence, evidence_steps, rationale FROM temp.rule_signal "
                         "WHERE i >= ? AND i < ? ORDER BY i, mode", [lo, hi])
    out.annotations += [Annotation(mode=m, label=Label.UNKNOWN, annotator=SIGNALS, taxonomy=taxonomy, confidence=c,
                                   evidence_steps=list(ev or []), rationale=r, trace_id=t)
                        for t, m, c, ev, r in sig]
    att = store.fetchall("SELECT trace_id, agent, step, confidence, rationale FROM temp.rule_root "
                         "WHERE i >= ? AND i < ? ORDER BY i", [lo, hi]) if taxonomy == DEFAULT_TAXONOMY else []
    out.attributions = [Attribution(annotator="rules", agent=a, step=s, confidence=c, rationale=r, trace_id=t)
                        for t, a, s, c, r in att]
    return out


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:500] if str(e) else type(e).__name__


def current_features(store, trace_ids: Sequence[str], rules_dir: str | os.PathLike | None = None) -> int:
    """Make ``rule_step_features`` current for ``trace_ids`` (missing or stale rows are
    computed, as a rules run would); return how many traces were computed.

    For readers of the features other than the rules (the learned models): a store
    ingested without the write hook, or read after ``_features.sql`` changed, would
    otherwise give them missing flags read as "false".
    """
    path = Path(rules_dir or default_rules_dir()) / f"{FEATURES}.sql"
    if not trace_ids or not path.is_file():
        return 0
    prepare_selection(store, trace_ids)
    return ensure_features(store, parse_detector(path))
