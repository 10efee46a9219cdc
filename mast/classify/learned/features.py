"""Per-step features for the learned root-cause model.

Contract: :func:`load_steps` reads, in one query, every step of the given traces from
the normalised model (``steps``, ``traces``) and the rules' per-step flags
(``rule_step_features``, made current first as a rules run would), and
returns them as :class:`StepTable` (rows ordered by trace, then step).  :func:`dense`
turns that table into the fixed, named features (:data:`DENSE`).  A model records
:data:`FEATURES_VERSION`; any change of meaning of a feature bumps it, and a model of
another version is refused on load.

The features are about *structure* (where a step is, who wrote it, what happened to its
output, where the first error is) and the rules' text flags; no words and no agent
names, so that a model trained on one system says something about another.  A hashed
or learned vocabulary of step words (300 words) and of agent-name words (50) was tried
and lowered 5-fold CV accuracy on both Who&When splits (e.g. Magentic-One agent 0.60 ->
0.47, step 0.19 -> 0.14): with 58-126 labelled traces per system it overfits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mast.classify.rules import current_features

#: Bump when a feature's meaning changes (a model of another version is refused).
FEATURES_VERSION = "1"

_FLAGS = ("is_exec", "is_error", "claims_success", "claims_test_run", "declares_done", "hits_limit", "verifies",
          "has_code", "says_restart", "notes_repeat", "reports_loop", "ends_question", "restates_task")
_KINDS = ("message", "llm_call", "tool_call", "tool_result", "handoff", "termination", "error", "event")
_ROLES = ("system", "user", "assistant", "tool")

#: The dense features, in column order.
DENSE: tuple[str, ...] = (
    "pos_rel", "pos_log", "from_end_log", "is_first", "is_second", "is_last", "n_steps_log",
    *(f"kind_{k}" for k in _KINDS), *(f"role_{r}" for r in _ROLES), "role_none",
    "agent_share", "agent_ordinal_log", "agent_first_turn", "agent_last_turn", "agent_is_top", "agent_is_opener",
    "agent_changes", "has_target", "nbytes_log", "task_overlap",
    *(f"flag_{f}" for f in _FLAGS),
    "is_first_error", "before_first_error", "just_before_first_error", "after_first_error", "trace_has_error",
    "next_is_error", "next_is_exec", "next_same_agent", "prev_is_error", "output_repeated",
    "errors_after_log", "first_of_agent_after_error",
    # interactions with trace length: the decisive step sits at other relative places in
    # long and short traces, and a linear ranker cannot see that otherwise
    "pos_rel_x_len", "is_first_x_len", "is_second_x_len", "agent_share_x_len", "agent_first_turn_x_len",
)

@dataclass
class StepTable:
    """The steps of some traces, one entry per step, ordered by (trace_id, step)."""

    trace_id: list[str]
    step: np.ndarray
    agent: list[str | None]
    role: list[str | None]
    kind: list[str | None]
    target: list[str | None]
    n_steps: np.ndarray
    nbytes: np.ndarray
    task_overlap: np.ndarray
    fp: list[int | None]
    flags: dict[str, np.ndarray]
    #: trace_id -> (first row, row after its last)
    spans: dict[str, tuple[int, int]]

    def __len__(self) -> int:
        return len(self.trace_id)


_SQL = f"""
    SELECT s.trace_id, s.step, s.agent, s.role, s.kind, s.target_agent,
           count(*) OVER (PARTITION BY s.trace_id) AS n_steps,
           coalesce(f.nbytes, strlen(s.content), 0) AS nbytes,
           f.task_overlap, f.fp,
           {", ".join(f"coalesce(f.{c}, false) AS {c}" for c in _FLAGS)}
    FROM steps s
    LEFT JOIN rule_step_features f ON f.trace_id = s.trace_id AND f.step = s.step
    WHERE s.trace_id IN (SELECT unnest(?))
    ORDER BY s.trace_id, s.step
"""


def load_steps(store, trace_ids: Sequence[str]) -> StepTable:
    """Every step of ``trace_ids`` with the columns the features need (one query), after
    making their rule features current (missing or stale rows would read as "false")."""
    current_features(store, list(trace_ids))
    df = store.query(_SQL, [list(trace_ids)])  # a polars DataFrame
    col = {name: df.get_column(name).to_list() for name in df.columns}
    ids = col["trace_id"]
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            spans[ids[start]] = (start, i)
            start = i
    return StepTable(
        trace_id=ids, step=np.asarray(col["step"], dtype=np.int64), agent=col["agent"], role=col["role"],
        kind=col["kind"], target=col["target_agent"],
        n_steps=np.asarray(col["n_steps"], dtype=np.int64), nbytes=np.asarray(col["nbytes"], dtype=np.float64),
        task_overlap=np.asarray([v if v is not None else 0.0 for v in col["task_overlap"]], dtype=np.float64),
        fp=col["fp"], flags={c: np.asarray(col[c], dtype=bool) for c in _FLAGS}, spans=spans)


def dense(t: StepTable) -> np.ndarray:
    """The :data:`DENSE` features of every step, shape (steps, len(DENSE))."""
    n = len(t)
    X = np.zeros((n, len(DENSE)), dtype=np.float64)
    idx = {name: i for i, name in enumerate(DENSE)}

    def put(name: str, values) -> None:
        X[:, idx[name]] = values

    step = t.step.astype(np.float64)
    ns = t.n_steps.astype(np.float64)
    lenlog = np.log1p(ns)
    put("pos_rel", np.where(ns > 1, step / np.maximum(ns - 1, 1), 0.0))
    put("pos_log", np.log1p(step))
    put("from_end_log", np.log1p(ns - 1 - step))
    put("is_first", step == 0)
    put("is_second", step == 1)
    put("is_last", step == ns - 1)
    put("n_steps_log", lenlog)
    for k in _KINDS:
        put(f"kind_{k}", [x == k for x in t.kind])
    for r in _ROLES:
        put(f"role_{r}", [x == r for x in t.role])
    put("role_none", [x is None for x in t.role])
    put("has_target", [x is not None for x in t.target])
    put("nbytes_log", np.log1p(t.nbytes))
    put("task_overlap", t.task_overlap)
    for f in _FLAGS:
        put(f"flag_{f}", t.flags[f])

    is_err = t.flags["is_error"]
    is_exec = t.flags["is_exec"]
    for tid, (a, b) in t.spans.items():
        agents = [x or "" for x in t.agent[a:b]]
        m = b - a
        counts: dict[str, int] = {}
        for ag in agents:
            counts[ag] = counts.get(ag, 0) + 1
        top = max(counts.values())
        seen: dict[str, int] = {}
        last_of: dict[str, int] = {ag: j for j, ag in enumerate(agents)}
        errs = np.flatnonzero(is_err[a:b])
        first_err = int(errs[0]) if len(errs) else None
        fps: dict[int, int] = {}
        errors_after = np.cumsum(is_err[a:b][::-1])[::-1]  # errors at or after each step
        agents_after_err: set[str] = set()
        for j, ag in enumerate(agents):
            r = a + j
            ordinal = seen.get(ag, 0)
            seen[ag] = ordinal + 1
            X[r, idx["agent_share"]] = counts[ag] / m
            X[r, idx["agent_ordinal_log"]] = math.log1p(ordinal)
            X[r, idx["agent_first_turn"]] = ordinal == 0
            X[r, idx["agent_last_turn"]] = last_of[ag] == j
            X[r, idx["agent_is_top"]] = counts[ag] == top
            X[r, idx["agent_is_opener"]] = ag == agents[0]
            X[r, idx["agent_changes"]] = j > 0 and ag != agents[j - 1]
            if first_err is not None:
                X[r, idx["trace_has_error"]] = 1
                X[r, idx["is_first_error"]] = j == first_err
                X[r, idx["before_first_error"]] = j < first_err
                X[r, idx["just_before_first_error"]] = j == first_err - 1
                X[r, idx["after_first_error"]] = j > first_err
                if j > first_err and ag not in agents_after_err:
                    X[r, idx["first_of_agent_after_error"]] = 1
                if j > first_err:
                    agents_after_err.add(ag)
            if j + 1 < m:
                X[r, idx["next_is_error"]] = is_err[r + 1]
                X[r, idx["next_is_exec"]] = is_exec[r + 1]
                X[r, idx["next_same_agent"]] = agents[j + 1] == ag
            if j > 0:
                X[r, idx["prev_is_error"]] = is_err[r - 1]
            fp = t.fp[r]
            if fp is not None:
                X[r, idx["output_repeated"]] = fps.get(fp, 0) > 0
                fps[fp] = fps.get(fp, 0) + 1
            X[r, idx["errors_after_log"]] = math.log1p(errors_after[j] - is_err[r])
    lenz = lenlog - math.log1p(10)  # centred near a short trace, so the crosses stay small there
    for base in ("pos_rel", "is_first", "is_second", "agent_share", "agent_first_turn"):
        X[:, idx[f"{base}_x_len"]] = X[:, idx[base]] * lenz
    return X
