"""The judge's own reads and writes, all through :class:`mast.store.Store`: the rules'
findings as hints, the tables of migration ``m010_judge_tables`` (cache, failures,
batches), ``m080_judge_endpoints`` (the structured-output mode each endpoint took) and
``m180_cached_tokens`` (prompt tokens an endpoint served from its prefix cache).  Kept in one module so the SQL is in one place; traces themselves are read
through the store's typed path, :meth:`mast.store.Store.load_traces`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from mast.model import SIGNAL_SUFFIX


def _now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def rule_hints(store, trace_ids: Sequence[str], limit: int = 8) -> dict[str, list[str]]:
    """Findings of rule-based annotators (annotator 'rules' or 'rules:*'), as short lines:
    their ``present`` labels, and their *signals* (annotators ``*:signal``, label
    ``unknown``: findings of detectors too imprecise to be labels), each line of those
    starting with "signal", labels first.

    A trace the rules have not run on simply has none.  A failing query is an error, not
    "no hints": the hints are part of the prompt and of its cache key."""
    rows = store.fetchall(
        "SELECT trace_id, mode, evidence_steps, rationale, label = 'unknown' AS signal FROM annotations "
        "WHERE (annotator = 'rules' OR starts_with(annotator, 'rules:')) "
        "AND (label = 'present' OR (label = 'unknown' AND ends_with(annotator, ?))) "
        "AND trace_id IN (SELECT unnest(?)) ORDER BY trace_id, signal, mode", [SIGNAL_SUFFIX, list(trace_ids)])
    out: dict[str, list[str]] = {}
    for tid, mode, ev, why, signal in rows:
        lst = out.setdefault(tid, [])
        if len(lst) >= limit:
            continue
        steps = ", ".join(map(str, (ev or [])[:6]))
        lst.append(f"{'signal (not a failure label) ' if signal else ''}{mode} at steps {steps or '?'}: "
                   f"{(why or '').strip()[:160]}")
    return out


def pointed_steps(store, trace_ids: Sequence[str]) -> dict[str, set[int]]:
    """Steps the rules (labels and signals) and the learned models (labels and root causes)
    point to, per trace: the lean rendering never caps them, so no evidence another
    classifier found is hidden from the judge."""
    rows = store.fetchall(
        "SELECT trace_id, evidence_steps AS s FROM annotations "
        "WHERE (annotator = 'rules' OR starts_with(annotator, 'rules:') OR starts_with(annotator, 'learned')) "
        "AND label IN ('present', 'unknown') AND len(evidence_steps) > 0 AND trace_id IN (SELECT unnest(?)) "
        "UNION ALL SELECT trace_id, [step] FROM attributions WHERE starts_with(annotator, 'learned') "
        "AND step IS NOT NULL AND trace_id IN (SELECT unnest(?))", [list(trace_ids), list(trace_ids)])
    out: dict[str, set[int]] = {}
    for tid, steps in rows:
        out.setdefault(tid, set()).update(int(x) for x in steps or [])
    return out


def cache_get(store, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    keys = list(keys)
    if not keys:
        return {}
    rows = store.fetchall("SELECT key, result, coverage, tokens_in, tokens_out, cost_usd FROM judge_cache "
                          "WHERE key IN (SELECT unnest(?))", [keys])
    return {k: {"result": json.loads(r), "coverage": json.loads(c) if c else None,
                "tokens_in": ti, "tokens_out": to, "cost_usd": cu}
            for k, r, c, ti, to, cu in rows}


def cache_row(key: str, *, trace_id: str, model: str, prompt_version: str, taxonomy: str, params: dict,
              result: dict, coverage: dict, tokens_in: int, tokens_out: int, cost_usd: float | None,
              tokens_cached: int = 0) -> list:
    return [key, trace_id, model, prompt_version, taxonomy, json.dumps(params, sort_keys=True),
            json.dumps(result), json.dumps(coverage), tokens_in, tokens_out, cost_usd, _now(), tokens_cached]


#: judge_cache's columns in cache_row's order (tokens_cached came later, by m180)
_CACHE_COLUMNS = ("key, trace_id, model, prompt_version, taxonomy, params, result, coverage, tokens_in, tokens_out, "
                  "cost_usd, created_at, tokens_cached")


def cache_put_many(store, rows: list[list]) -> None:
    """One statement for many rows: per-statement overhead dominates small inserts."""
    if not rows:
        return
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
    store.execute(f"INSERT OR REPLACE INTO judge_cache ({_CACHE_COLUMNS}) VALUES {values}",
                  [v for r in rows for v in r])


def record_failure(store, *, trace_id: str, session: str, model: str, prompt_version: str, kind: str,
                   reason: str, prompt: Any, reply: str | None) -> None:
    store.execute("INSERT INTO judge_failures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [trace_id, session, model, prompt_version, kind, reason,
                   json.dumps(prompt, ensure_ascii=False) if prompt is not None else None, reply, _now()])


def batch_put(store, batch_id: str, input_file_id: str, model: str, prompt_version: str,
              requests: dict, status: str) -> None:
    store.execute("INSERT OR REPLACE INTO judge_batches VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                  [batch_id, input_file_id, model, prompt_version, json.dumps(requests), status, _now()])


def batch_status(store, batch_id: str, status: str, finished: bool = False) -> None:
    store.execute("UPDATE judge_batches SET status = ?, finished_at = CASE WHEN ? THEN ? ELSE finished_at END "
                  "WHERE batch_id = ?", [status, finished, _now(), batch_id])


def batch_get(store, batch_id: str) -> dict[str, Any] | None:
    rows = store.fetchall("SELECT batch_id, model, prompt_version, requests, status FROM judge_batches "
                          "WHERE batch_id = ?", [batch_id])
    if not rows:
        return None
    b, m, p, req, st = rows[0]
    return {"batch_id": b, "model": m, "prompt_version": p, "requests": json.loads(req), "status": st}


def open_batches(store, model: str, prompt_version: str) -> list[dict[str, Any]]:
    rows = store.fetchall("SELECT batch_id FROM judge_batches WHERE model = ? AND prompt_version = ? "
                          "AND status NOT IN ('stored', 'failed', 'expired', 'cancelled') ORDER BY created_at",
                          [model, prompt_version])
    return [batch_get(store, r[0]) for r in rows]


def endpoint_mode(store, base_url: str | None, model: str) -> str | None:
    """The structured-output mode (base_url, model) took last time (migration m080), if any."""
    rows = store.fetchall("SELECT response_format FROM judge_endpoints WHERE base_url = ? AND model = ?",
                          [_endpoint(base_url), model])
    return rows[0][0] if rows else None


def remember_endpoint_mode(store, base_url: str | None, model: str, mode: str,
                           refused: list[tuple[str, str]]) -> None:
    store.execute("INSERT OR REPLACE INTO judge_endpoints VALUES (?, ?, ?, ?, ?)",
                  [_endpoint(base_url), model, mode, json.dumps([list(r) for r in refused]), _now()])


def _endpoint(base_url: str | None) -> str:
    # One spelling per endpoint: "http://h:1/v1/" and "http://h:1/v1" are the same server.
    return (base_url or "").strip().rstrip("/")
