"""The root-cause baselines: what any root-cause figure must be read beside.

Contract (shared by ``mast learn attribution``, which scores them on its CV folds, and
``mast evaluate --attribution``, which scores them on the traces it evaluates):

- ``uniform_random``: a uniformly random agent and step of the trace, as its expected
  accuracy (1 / agents, 1 / steps), not a sampled run.
- ``majority_agent``: the most frequent gold culprit of the trace's system among the
  ``train`` traces (ties: the alphabetically first name), blamed at its first step in
  the trace; a system without one gets no prediction.
- ``last_step``: the last step and its agent.
- ``first_error_step``: the first step the rules' per-step features flag as an error
  (``is_error``) and its agent; a trace without one gets no prediction.
- A trace without a prediction counts as wrong; agents compare case- and
  punctuation-insensitively (:func:`norm_agent`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mast.classify.learned.features import StepTable

NAMES = ("uniform_random", "majority_agent", "last_step", "first_error_step")


@dataclass
class Gold:
    trace_id: str
    system: str
    agent: str | None
    step: int | None


@dataclass
class Prediction:
    agent: str | None
    step: int
    confidence: float


def norm_agent(a: str | None) -> str:
    return "".join(ch for ch in (a or "").lower() if ch.isalnum())


def hits(gold: Sequence[Gold], idx: Sequence[int], preds: Sequence[Prediction | None]) -> tuple[np.ndarray, np.ndarray]:
    """Agent and step hits (0/1) of ``preds`` on the gold traces ``idx``."""
    ag = np.array([p is not None and bool(gold[i].agent) and norm_agent(p.agent) == norm_agent(gold[i].agent)
                   for i, p in zip(idx, preds)], dtype=float)
    st = np.array([p is not None and gold[i].step is not None and p.step == gold[i].step
                   for i, p in zip(idx, preds)], dtype=float)
    return ag, st


def uniform_random(table: StepTable, gold: Sequence[Gold], idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Expected agent and step accuracy of a uniform choice, per trace of ``idx``."""
    ra, rs = [], []
    for i in idx:
        span = table.spans.get(gold[i].trace_id)
        if span is None:
            ra.append(0.0)
            rs.append(0.0)
            continue
        a, b = span
        ra.append(1.0 / max(1, len({x for x in table.agent[a:b] if x is not None})))
        # a gold step outside the trace cannot be hit by any choice
        rs.append(1.0 / (b - a) if gold[i].step is not None and 0 <= gold[i].step < b - a else 0.0)
    return np.array(ra), np.array(rs)


def predictions(table: StepTable, gold: Sequence[Gold], train: Sequence[int],
                test: Sequence[int]) -> dict[str, list[Prediction | None]]:
    """The deterministic baselines' predictions for the traces ``test`` (majority from ``train``)."""
    err = table.flags["is_error"]
    counts: dict[tuple[str, str], int] = {}
    for i in train:
        g = gold[i]
        if g.agent:
            counts[(g.system, norm_agent(g.agent))] = counts.get((g.system, norm_agent(g.agent)), 0) + 1
    majority: dict[str, str] = {}
    for (system, agent), c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        majority.setdefault(system, agent)
    out: dict[str, list[Prediction | None]] = {"majority_agent": [], "last_step": [], "first_error_step": []}
    for i in test:
        g = gold[i]
        span = table.spans.get(g.trace_id)
        maj = majority.get(g.system)
        if span is None:
            out["majority_agent"].append(Prediction(maj, -1, 1.0) if maj else None)
            out["last_step"].append(None)
            out["first_error_step"].append(None)
            continue
        a, b = span
        agents = table.agent[a:b]
        first = next((j for j, ag in enumerate(agents) if maj and norm_agent(ag) == maj), None)
        step = table.step  # step numbers (positions in the trace, for a complete one)
        out["majority_agent"].append(
            Prediction(maj, int(step[a + first]) if first is not None else -1, 1.0) if maj else None)
        out["last_step"].append(Prediction(agents[-1], int(step[b - 1]), 1.0))
        errs = np.flatnonzero(err[a:b])
        out["first_error_step"].append(
            Prediction(agents[int(errs[0])], int(step[a + int(errs[0])]), 1.0) if len(errs) else None)
    return out


def score(table: StepTable, gold: Sequence[Gold], train: Sequence[int],
          test: Sequence[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every baseline's (agent hits, step hits) per trace of ``test``, by :data:`NAMES`."""
    out = {"uniform_random": uniform_random(table, gold, test)}
    for name, preds in predictions(table, gold, train, test).items():
        out[name] = hits(gold, test, preds)
    return out
