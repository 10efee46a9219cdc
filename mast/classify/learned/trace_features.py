"""Per-trace features for the learned failure-mode models.

Contract: :func:`load` reads the given traces and returns :class:`TraceTable`: one row
per trace that has steps (traces without steps are listed in ``TraceTable.no_steps``),
with the features of :data:`BASE` (structure and the rules' per-step flags, aggregated)
and :data:`TEXT` (hashed words of the step text), plus, per trace and flag, the steps
where the flag fired (the evidence a present label points to).  The per-step data come
from :func:`mast.classify.learned.features.load_steps` (the same read the root-cause
model uses: ``steps`` and ``rule_step_features``, read only).  A model records
:data:`FEATURES_VERSION`; any change of meaning bumps it, and a model of another version
is refused on load.

Why these: a failure mode is a property of the whole run, so each of the rules' 13
per-step flags (error, "declares done", verifies, repeats, ...) becomes four numbers —
whether it fired, how often, how early it first fired, whether it fired in the last
quarter — beside the shape of the run (length, agents, kinds and roles of steps,
repeated outputs, outcome).  Text is a bag of hashed words (CRC-32 of each lower-case
word of 3+ letters, :data:`TEXT_DIM` buckets, log counts): hashing needs no stored
vocabulary and is the same on every machine.  With the few dozen labelled traces that
exist, text is as likely to overfit as to help, so whether a mode's model uses it is
chosen by inner cross-validation (see :mod:`mast.classify.learned.modes_train`).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mast.classify.learned import features as F

#: Bump when a feature's meaning changes (a model of another version is refused).
FEATURES_VERSION = "m1"
TEXT_DIM = 256
_WORD = re.compile(r"[a-z]{3,}")
#: per flag: fired at all, share of steps, relative position of the first firing, fired in the last quarter
_FLAG_AGGS = ("any", "rate", "first", "late")
FLAGS: tuple[str, ...] = F._FLAGS

BASE: tuple[str, ...] = (
    "n_steps_log", "n_agents_log", "agent_switch_rate", "top_agent_share",
    *(f"kind_{k}" for k in F._KINDS), *(f"role_{r}" for r in F._ROLES), "role_none",
    "has_target", "nbytes_mean_log", "nbytes_max_log", "task_overlap_mean", "task_overlap_last",
    "output_repeated_rate", "last_is_error", "last_is_tool",
    "outcome_success", "outcome_failure", "outcome_unknown",
    *(f"flag_{f}_{a}" for f in FLAGS for a in _FLAG_AGGS),
)
TEXT: tuple[str, ...] = tuple(f"text_{i}" for i in range(TEXT_DIM))
#: the feature sets a mode model may use (chosen by inner CV)
FEATURE_SETS: dict[str, tuple[str, ...]] = {"base": BASE, "base+text": BASE + TEXT}


@dataclass
class TraceTable:
    trace_ids: list[str]
    #: shape (traces, len(BASE) + len(TEXT))
    X: np.ndarray
    #: trace_id -> flag -> step numbers where it fired
    fired: dict[str, dict[str, list[int]]]
    no_steps: list[str] = field(default_factory=list)

    def columns(self, feature_set: str) -> np.ndarray:
        return self.X[:, :len(FEATURE_SETS[feature_set])]


def _word_bucket(word: str, cache: dict[str, int]) -> int:
    b = cache.get(word)
    if b is None:
        b = cache[word] = zlib.crc32(word.encode()) % TEXT_DIM
    return b


def load(store, trace_ids: Sequence[str]) -> TraceTable:
    """Features of ``trace_ids`` (in that order, traces without steps left out)."""
    ids = list(trace_ids)
    t = F.load_steps(store, ids)
    outcome = dict(store.fetchall("SELECT trace_id, outcome FROM traces WHERE trace_id IN (SELECT unnest(?))", [ids]))
    have = [i for i in ids if i in t.spans]
    text = _text(store, have)
    X = np.zeros((len(have), len(BASE) + len(TEXT)), dtype=np.float64)
    col = {name: j for j, name in enumerate(BASE)}
    fired: dict[str, dict[str, list[int]]] = {}
    for r, tid in enumerate(have):
        a, b = t.spans[tid]
        m = b - a
        row = X[r]
        agents = [x or "" for x in t.agent[a:b]]
        counts: dict[str, int] = {}
        for ag in agents:
            counts[ag] = counts.get(ag, 0) + 1
        row[col["n_steps_log"]] = math.log1p(m)
        row[col["n_agents_log"]] = math.log1p(len(counts))
        row[col["agent_switch_rate"]] = sum(1 for j in range(1, m) if agents[j] != agents[j - 1]) / max(1, m - 1)
        row[col["top_agent_share"]] = max(counts.values()) / m
        for k in F._KINDS:
            row[col[f"kind_{k}"]] = sum(1 for x in t.kind[a:b] if x == k) / m
        for ro in F._ROLES:
            row[col[f"role_{ro}"]] = sum(1 for x in t.role[a:b] if x == ro) / m
        row[col["role_none"]] = sum(1 for x in t.role[a:b] if x is None) / m
        row[col["has_target"]] = sum(1 for x in t.target[a:b] if x is not None) / m
        nb = t.nbytes[a:b]
        row[col["nbytes_mean_log"]] = math.log1p(float(nb.mean()))
        row[col["nbytes_max_log"]] = math.log1p(float(nb.max()))
        ov = t.task_overlap[a:b]
        row[col["task_overlap_mean"]] = float(ov.mean())
        row[col["task_overlap_last"]] = float(ov[-1])
        fps = [x for x in t.fp[a:b] if x is not None]
        row[col["output_repeated_rate"]] = (len(fps) - len(set(fps))) / m
        row[col["last_is_error"]] = bool(t.flags["is_error"][b - 1]) or t.kind[b - 1] == "error"
        row[col["last_is_tool"]] = t.kind[b - 1] in ("tool_call", "tool_result")
        oc = outcome.get(tid) or "unknown"
        row[col[f"outcome_{oc if oc in ('success', 'failure') else 'unknown'}"]] = 1.0
        steps = t.step[a:b]
        fired[tid] = {}
        for f in FLAGS:
            on = np.flatnonzero(t.flags[f][a:b])
            if len(on):
                fired[tid][f] = [int(steps[j]) for j in on]
                row[col[f"flag_{f}_any"]] = 1.0
                row[col[f"flag_{f}_rate"]] = len(on) / m
                row[col[f"flag_{f}_first"]] = 1.0 - on[0] / max(1, m - 1)  # 1 = at the start, 0 = never / at the end
                row[col[f"flag_{f}_late"]] = float((on >= 0.75 * (m - 1)).any())
        cache: dict[str, int] = {}
        bucket = np.zeros(TEXT_DIM)
        for w in _WORD.findall(text.get(tid, "").lower()):
            bucket[_word_bucket(w, cache)] += 1
        X[r, len(BASE):] = np.log1p(bucket)
    return TraceTable(have, X, fired, [i for i in ids if i not in t.spans])


def _text(store, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = store.fetchall(
        "SELECT trace_id, string_agg(coalesce(content, '') || ' ' || coalesce(tool_args, ''), ' ' ORDER BY step) "
        "FROM steps WHERE trace_id IN (SELECT unnest(?)) GROUP BY trace_id", [list(ids)])
    return dict(rows)


def flag_of(feature: str) -> str | None:
    """The rule flag a :data:`BASE` feature is an aggregate of (``None`` for structure)."""
    if not feature.startswith("flag_"):
        return None
    return feature[len("flag_"):].rsplit("_", 1)[0]
