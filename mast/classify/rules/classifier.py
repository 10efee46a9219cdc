"""The rules classifier: SQL detectors from a rules folder run by DuckDB in one batch.

What a rules folder holds is in :mod:`mast.classify.rules.files`; what a run produces
in :mod:`mast.classify.rules.detect`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from mast.classify.contract import ClassifierBase, Option, Output
from mast.classify.rules.detect import SIGNALS, DetectorRun, build_results, prepare_selection, read_chunk, run_detectors
from mast.classify.rules.features import FEATURES
from mast.classify.rules.files import default_rules_dir, load_detectors
from mast.errors import UsageError
from mast.model import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy

#: Bump when the runner's semantics change (merging, absent rows, attribution, signals).
ENGINE_VERSION = "2"


class RulesClassifier(ClassifierBase):
    name = "rules"
    kind = "rule"
    options = (
        Option("rules_dir", "Folder of SQL detectors (default: the shipped classifiers/rules).", setting="rules_dir"),
        Option("only", "Run only these detectors.", multiple=True),
        Option("chunk_size", "Traces read back per output (memory bound).", parse=int),
        Option("taxonomy", "Taxonomy whose detectors run (its subfolder of the rules folder; default mast-v1)."),
    )

    def __init__(self, rules_dir: str | os.PathLike | None = None, only: Sequence[str] | None = None,
                 chunk_size: int = 50_000, taxonomy: str = DEFAULT_TAXONOMY):
        self.rules_dir = Path(rules_dir) if rules_dir else default_rules_dir()
        self.taxonomy_id = load_taxonomy(taxonomy).id  # an unknown taxonomy fails here, before a run row
        dets = load_detectors(self.rules_dir, taxonomy)
        if only:
            unknown = sorted(set(only) - {d.name for d in dets})
            if unknown:
                raise UsageError(f"unknown detector(s) {', '.join(unknown)}",
                                 "Known: " + ", ".join(d.name for d in dets if not d.prelude))
            dets = [d for d in dets if d.prelude or d.name in only]
        self.detectors = dets
        self.chunk_size = chunk_size
        # A detector's role is part of what a run means: flipping it changes the version.
        # So is its taxonomy (the default's digest is unchanged, so old runs keep their version).
        lines = [f"{d.name}@{d.version}" + ("/signal" if d.signal else "") for d in dets]
        if taxonomy != DEFAULT_TAXONOMY:
            lines.append(f"taxonomy={taxonomy}")
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:8]
        self.version = f"{ENGINE_VERSION}.{digest}"
        #: filled by :meth:`classify`: one entry per prelude and detector
        self.detector_runs: list[DetectorRun] = []

    @property
    def annotators(self) -> tuple[str, ...]:
        """Labels as ``rules``, signals as ``rules:signal`` (a rerun replaces both)."""
        return (self.annotator, SIGNALS)

    def label_modes(self) -> set[str]:
        """Modes some *label* detector covers (a signal detector alone assesses nothing)."""
        return {d.mode for d in self.detectors if not d.prelude and not d.signal}

    # -- contract ---------------------------------------------------------------------
    def covers(self, taxonomy) -> set[str]:
        """Per taxonomy: the label modes of that taxonomy's detectors (its own subfolder)."""
        if taxonomy is None:
            return self.label_modes()
        if taxonomy.id == self.taxonomy_id:
            modes = self.label_modes()
        else:
            modes = {d.mode for d in load_detectors(self.rules_dir, taxonomy.id) if not d.prelude and not d.signal}
        return modes & set(taxonomy.mode_ids)

    def arguments(self) -> dict[str, Any]:
        return {"rules_dir": str(self.rules_dir), "taxonomy": self.taxonomy_id,
                "detectors": {d.name: d.version for d in self.detectors},
                "signals": sorted(d.name for d in self.detectors if d.signal)}

    def run_details(self) -> dict[str, Any]:
        role = {d.name: d.role for d in self.detectors if not d.prelude}
        return {"detectors": [{"name": r.name, "mode": r.mode, "role": role.get(r.name), "seconds": round(r.seconds, 3),
                               "findings": r.findings, "error": r.error} for r in self.detector_runs]}

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        ids = list(trace_ids)
        if not ids:
            return
        prepare_selection(store, ids)
        self.detector_runs = run_detectors(store, self.detectors)
        errors = {r.name: r.error for r in self.detector_runs if r.error}
        signal_names = {d.name for d in self.detectors if d.signal}
        # Only a failed *label* detector leaves its mode not assessed; a failed signal is
        # reported and simply gives no hints.
        failed_modes = {r.mode for r in self.detector_runs if r.error and r.mode and r.name not in signal_names}
        ok_modes = sorted(self.label_modes() - failed_modes)
        has_features = not any(r.error for r in self.detector_runs if r.name == FEATURES) and any(
            r.name == FEATURES for r in self.detector_runs)
        build_results(store, ok_modes, has_features, sorted(signal_names))
        first = True
        for lo in range(0, len(ids), self.chunk_size):
            out = read_chunk(store, lo, lo + self.chunk_size, taxonomy=self.taxonomy_id)
            out.trace_ids = ids[lo:lo + self.chunk_size]
            if first:
                out.errors = dict(errors)
                first = False
            yield out
