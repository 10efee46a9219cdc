"""Per-step features for the learned root-cause model.

Contract: :func:`read` returns, in one query, every step of the given traces as the
rules' per-step feature rows (``rule_step_features``: one row per step, carrying the
step's agent, role, kind, target and size beside the text flags), ordered by trace and
step, as a polars frame; the caller makes those rows current first
(:func:`make_current`, once for a whole selection, as a rules run would: missing or
stale rows would read as "false").  :func:`load_steps` does both and wraps the frame as
:class:`StepTable` (the lists the trainers and baselines read).  :func:`frame_dense`
turns such a frame into the fixed, named features (:data:`DENSE`) with column
expressions (window functions per trace and per agent), never a Python loop per step;
:func:`dense` is the same as a numpy matrix.  A model records :data:`FEATURES_VERSION`;
any change of meaning of a feature bumps it, and a model of another version is refused
on load.

The features are about *structure* (where a step is, who wrote it, what happened to its
output, where the first error is) and the rules' text flags; no words and no agent
names, so that a model trained on one system says something about another.  A hashed
or learned vocabulary of step words (300 words) and of agent-name words (50) was tried
and lowered 5-fold CV accuracy on both Who&When splits (e.g. Magentic-One agent 0.60 ->
0.47, step 0.19 -> 0.14): with 58-126 labelled traces per system it overfits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import polars as pl

from mast.classify.rules import current_features

#: Bump when a feature's meaning changes (a model of another version is refused).
FEATURES_VERSION = "2"

_FLAGS = ("is_exec", "is_error", "claims_success", "claims_test_run", "declares_done", "hits_limit", "verifies",
          "has_code", "says_restart", "notes_repeat", "reports_loop", "ends_question", "restates_task")
_KINDS = ("message", "llm_call", "tool_call", "tool_result", "handoff", "termination", "error", "event")
_ROLES = ("system", "user", "assistant", "tool")

#: Features about the step's *agent* rather than the step (the same for all its steps but
#: the turns left): whether it spoke last, how much it speaks after this step, whether its
#: steps are followed by errors, whether it speaks second.
AGENT_LEVEL: tuple[str, ...] = ("agent_is_last_speaker", "agent_turns_left_log", "agent_is_second_speaker",
                                "agent_errors_after_share", "agent_is_last_x_len")

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
    # agent-level (version 2): who the step's agent is in the run, as structure
    *AGENT_LEVEL,
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
    #: the rows as read (:func:`read`), for :func:`dense`
    frame: pl.DataFrame

    def __len__(self) -> int:
        return len(self.trace_id)


# Only the feature rows are read, never ``steps``: a scan of ``steps`` reads the step
# text, the largest column of the store, which the features need no more.
# (a trace's length is its count of rows, taken from the row offsets: a window
# function here would cost a partitioned sort of every row read)
_COLUMNS = f"""trace_id, step, agent, role, kind, target_agent,
           coalesce(nbytes, 0) AS nbytes, coalesce(task_overlap, 0.0) AS task_overlap, fp,
           {", ".join(f"coalesce({c}, false) AS {c}" for c in _FLAGS)}"""

_SQL = f"""
    SELECT {_COLUMNS}
    FROM main.rule_step_features
    WHERE trace_id IN (SELECT unnest(?))
    ORDER BY trace_id, step
"""


def make_current(store, trace_ids: Sequence[str]) -> None:
    """Make the rule feature rows of ``trace_ids`` current (computing missing or stale ones)."""
    current_features(store, list(trace_ids))


def read(store, trace_ids: Sequence[str]) -> pl.DataFrame:
    """The feature rows of ``trace_ids`` (see the module docstring); a trace without
    steps has none."""
    return store.query(_SQL, [list(trace_ids)])


def read_batches(store, batches: Sequence[Sequence[str]]) -> pl.DataFrame:
    """The feature rows of every trace of ``batches`` in one query, ordered by batch,
    trace and step.  Each trace is named by ``_i``, its index in the concatenated
    batches, and ``_b`` is its batch: no trace id strings are carried, so a pass over
    100,000 traces stays small in memory."""
    ids = [t for b in batches for t in b]
    nums = [k for k, b in enumerate(batches) for _ in b]
    cols = _COLUMNS.replace("trace_id,", "", 1)
    return store.query(f"""
        SELECT sel._b, sel._i, {cols}
        FROM (SELECT unnest(?) AS trace_id, unnest(?) AS _b, unnest(range(?)) AS _i) sel
        JOIN (SELECT * FROM main.rule_step_features WHERE trace_id IN (SELECT unnest(?))) f USING (trace_id)
        ORDER BY sel._i, f.step""", [ids, nums, len(ids), ids])


def load_steps(store, trace_ids: Sequence[str]) -> StepTable:
    """Every step of ``trace_ids`` with the columns the features need (one query), after
    making their rule features current."""
    make_current(store, trace_ids)
    return _table(read(store, trace_ids))


def spans(frame: pl.DataFrame) -> tuple[list, np.ndarray]:
    """The traces of ``frame`` in order (``trace_id``, or ``_i`` for :func:`read_batches`)
    and their row offsets (``len(traces) + 1`` of them)."""
    if frame.height == 0:
        return [], np.zeros(1, dtype=np.int64)
    tid = frame.get_column("_i" if "_i" in frame.columns else "trace_id")
    starts = (tid != tid.shift(1)).fill_null(True).arg_true().to_numpy().astype(np.int64)
    return tid.gather(starts).to_list(), np.append(starts, frame.height)


def _table(df: pl.DataFrame) -> StepTable:
    col = {name: df.get_column(name).to_list() for name in ("trace_id", "agent", "role", "kind", "target_agent", "fp")}
    ids, offsets = spans(df)
    return StepTable(
        trace_id=col["trace_id"], step=df.get_column("step").to_numpy().astype(np.int64), agent=col["agent"],
        role=col["role"], kind=col["kind"], target=col["target_agent"],
        n_steps=np.repeat(np.diff(offsets), np.diff(offsets)),
        nbytes=df.get_column("nbytes").to_numpy().astype(np.float64),
        task_overlap=df.get_column("task_overlap").to_numpy().astype(np.float64),
        fp=col["fp"], flags={c: df.get_column(c).to_numpy().astype(bool) for c in _FLAGS},
        spans={t: (int(a), int(b)) for t, a, b in zip(ids, offsets[:-1], offsets[1:])}, frame=df)


def _runs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, how many rows share its ``key`` and how many of them come before it
    (in row order): one stable sort, no loop."""
    n = len(key)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    new[1:] = ks[1:] != ks[:-1]
    run = np.cumsum(new) - 1
    start = np.flatnonzero(new)
    size = np.diff(np.append(start, n))
    count, before = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    count[order] = size[run]
    before[order] = np.arange(n) - start[run]
    return count, before


def frame_dense(frame: pl.DataFrame) -> np.ndarray:
    """The :data:`DENSE` features of every row of a :func:`read` frame (rows in trace
    order), shape (rows, len(DENSE)).  The per-trace and per-agent columns come from
    sorts and segment reductions over the whole frame (numpy), the per-step ones from
    column expressions (polars): no Python loop over steps or traces."""
    n = frame.height
    # column-major: every feature is written as one contiguous column
    X = np.zeros((n, len(DENSE)), dtype=np.float64, order="F")
    if n == 0:
        return X
    idx = {name: i for i, name in enumerate(DENSE)}

    def put(name: str, values) -> None:
        X[:, idx[name]] = values

    _, offsets = spans(frame)
    starts, sizes = offsets[:-1], np.diff(offsets)
    g = np.repeat(np.arange(len(sizes)), sizes)  # trace of each row
    j = np.arange(n) - starts[g]  # position in the trace
    last = j == sizes[g] - 1

    col = frame.select(
        pl.col("step").cast(pl.Float64), pl.col("nbytes").cast(pl.Float64),
        pl.col("task_overlap").cast(pl.Float64), pl.col("fp").is_null().alias("fp_null"),
        pl.col("fp").fill_null(0).cast(pl.UInt64), pl.col("role").is_null().alias("role_none"),
        pl.col("target_agent").is_not_null().alias("has_target"),
        # one integer per agent name; no agent is one agent, ""
        pl.col("agent").fill_null("").cast(pl.Categorical).to_physical().cast(pl.Int64).alias("agent"),
        *(pl.col(f) for f in _FLAGS),
        *((pl.col("kind") == k).fill_null(False).alias(f"kind_{k}") for k in _KINDS),
        *((pl.col("role") == r).fill_null(False).alias(f"role_{r}") for r in _ROLES))
    v = {name: col.get_column(name).to_numpy() for name in col.columns}

    step, ns = v["step"], sizes[g].astype(np.float64)
    lenlog = np.log1p(ns)
    put("pos_rel", np.where(ns > 1, step / np.maximum(ns - 1, 1), 0.0))
    put("pos_log", np.log1p(step))
    put("from_end_log", np.log1p(ns - 1 - step))
    put("is_first", step == 0)
    put("is_second", step == 1)
    put("is_last", step == ns - 1)
    put("n_steps_log", lenlog)
    for k in _KINDS:
        put(f"kind_{k}", v[f"kind_{k}"])
    for r in _ROLES:
        put(f"role_{r}", v[f"role_{r}"])
    put("role_none", v["role_none"])
    put("has_target", v["has_target"])
    put("nbytes_log", np.log1p(v["nbytes"]))
    put("task_overlap", v["task_overlap"])
    for f in _FLAGS:
        put(f"flag_{f}", v[f])

    agent = v["agent"]
    n_ag, ordinal = _runs(g * (int(agent.max()) + 1) + agent)
    put("agent_share", n_ag / sizes[g])
    put("agent_ordinal_log", np.log1p(ordinal))
    put("agent_first_turn", ordinal == 0)
    put("agent_last_turn", ordinal == n_ag - 1)
    put("agent_is_top", n_ag == np.maximum.reduceat(n_ag, starts)[g])
    put("agent_is_opener", agent == agent[starts][g])
    prev_same = np.zeros(n, dtype=bool)
    prev_same[1:] = agent[1:] == agent[:-1]
    put("agent_changes", (j > 0) & ~prev_same)
    last_speaker = agent == agent[offsets[1:] - 1][g]
    put("agent_is_last_speaker", last_speaker)
    put("agent_turns_left_log", np.log1p(n_ag - 1 - ordinal))
    second = np.where(sizes > 1, agent[np.minimum(starts + 1, n - 1)], -1)[g]
    put("agent_is_second_speaker", agent == second)

    err, exe = v["is_error"], v["is_exec"]
    fe = np.minimum.reduceat(np.where(err, j, n), starts)[g]  # first error's position; n: none
    has_err = fe < n
    put("trace_has_error", has_err)
    put("is_first_error", has_err & (j == fe))
    put("before_first_error", has_err & (j < fe))
    put("just_before_first_error", has_err & (j == fe - 1))
    after = has_err & (j > fe)
    put("after_first_error", after)
    # neighbours inside the trace (rows are in trace order): never across a boundary
    nxt = ~last
    put("next_is_error", nxt & np.append(err[1:], False))
    put("next_is_exec", nxt & np.append(exe[1:], False))
    put("next_same_agent", nxt & np.append(prev_same[1:], False))
    put("prev_is_error", (j > 0) & np.insert(err[:-1], 0, False))
    # the share of the agent's steps in the trace that an error follows
    key_ag = g * (int(agent.max()) + 1) + agent
    _, inv = np.unique(key_ag, return_inverse=True)
    nxt_err = (nxt & np.append(err[1:], False)).astype(np.float64)
    put("agent_errors_after_share", (np.bincount(inv, weights=nxt_err) / np.bincount(inv))[inv])
    # a near-identical output (same fingerprint) appeared earlier in the trace
    rep = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(~v["fp_null"])
    if len(rows):
        _, code = np.unique(v["fp"][rows], return_inverse=True)
        rep[rows] = _runs(g[rows] * (int(code.max()) + 1) + code)[1] > 0
    put("output_repeated", rep)
    # errors strictly after the step
    cs = np.cumsum(err, dtype=np.int64)
    in_trace = cs - (cs - err)[starts][g]  # errors up to and including the step, in its trace
    put("errors_after_log", np.log1p(np.add.reduceat(err.astype(np.int64), starts)[g] - in_trace))
    # the first step of each agent after the first error
    foa = np.zeros(n, dtype=bool)
    if after.any():
        rows = np.flatnonzero(after)
        _, first = np.unique(g[rows] * (int(agent.max()) + 1) + agent[rows], return_index=True)
        foa[rows[first]] = True
    put("first_of_agent_after_error", foa)

    lenz = lenlog - np.log1p(10)  # centred near a short trace, so the crosses stay small there
    for base in ("pos_rel", "is_first", "is_second", "agent_share", "agent_first_turn"):
        X[:, idx[f"{base}_x_len"]] = X[:, idx[base]] * lenz
    X[:, idx["agent_is_last_x_len"]] = X[:, idx["agent_is_last_speaker"]] * lenz
    return X


def dense(t: StepTable) -> np.ndarray:
    """The :data:`DENSE` features of every step, shape (steps, len(DENSE))."""
    if len(t) == 0:
        return np.zeros((0, len(DENSE)), dtype=np.float64)
    return frame_dense(t.frame)
