"""``batch=True``: judge through the OpenAI Batch API (half price, results within 24 h).

Flow: the jobs not in the cache (:mod:`.jobs`) -> one JSONL line per trace window
(``custom_id = "<trace_id>|<window>"``) -> upload (purpose ``batch``) -> create the
batch -> record it in ``judge_batches`` -> poll -> download the output and error files
-> validate, merge windows, cache and yield one Output per trace -> mark the batch
``stored``.

Resuming: the batch id is stored as soon as the batch exists.  A rerun first picks up
the unfinished batches of the same model and prompt version (or the one named by
``batch_id``), so a killed process never pays for the same traces twice.  With
``poll_timeout`` set, a batch still running after that many seconds stops the run with
a message naming the batch id; rerunning resumes it.
"""

from __future__ import annotations

import io
import json
import time
from typing import Iterator, Sequence

from mast.classify.contract import Output
from mast.classify.judge import storage
from mast.classify.judge.client import Capabilities, cached_tokens, request_body
from mast.classify.judge.jobs import JobResult, JudgeJobs
from mast.classify.judge.reply import Unclassified, merge
from mast.errors import MastError, UsageError

_TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchPending(MastError):
    hint = "Rerun the same command later: it resumes the batch instead of creating a new one."


def _custom_id(trace_id: str, window: int) -> str:
    return f"{trace_id}|{window}"


def run_batch(jobs: JudgeJobs, store, trace_ids: Sequence[str], client, *, caps: Capabilities,
              batch_id: str | None = None, poll_interval: float = 15.0,
              poll_timeout: float | None = None) -> Iterator[Output]:
    """Judge ``trace_ids`` through ``client`` (a synchronous ``openai.OpenAI``)."""
    ids = list(trace_ids)
    wanted = set(ids)
    todo = {}
    for p in jobs.prepare(store, ids):
        if p.hit is not None:
            yield jobs.from_cache(p)
        else:
            todo[p.job.trace_id] = p.job
    # Batches to resume: the named one, else unfinished ones of this model and prompt.
    if batch_id:
        b = storage.batch_get(store, batch_id)
        if b is None:
            raise UsageError(f"batch {batch_id} is not recorded in this store",
                             "List recorded batches with: SELECT * FROM judge_batches.")
        resume = [b]
    else:
        resume = storage.open_batches(store, jobs.model, jobs.prompt_version)
    batches: list[dict] = []
    for b in resume:
        covered = {r["trace_id"] for r in b["requests"].values()} & wanted
        keys_ok = {r["trace_id"] for r in b["requests"].values()
                   if r["trace_id"] in todo and todo[r["trace_id"]].key == r["key"]}
        if covered and keys_ok:
            batches.append(b)
            for tid in keys_ok:
                todo.pop(tid, None)
    if todo:
        requests: dict[str, dict] = {}
        buf = io.BytesIO()
        for tid, job in todo.items():
            for w, msgs in enumerate(job.messages, 1):
                cid = _custom_id(tid, w)
                requests[cid] = {"trace_id": tid, "window": w, "windows": len(job.messages), "key": job.key}
                body = request_body(jobs.model, msgs, jobs.schema, temperature=jobs.temperature,
                                    max_tokens=jobs.max_tokens, caps=caps)
                line = {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}
                buf.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
        f = client.files.create(file=("mast-judge.jsonl", buf.getvalue(), "application/jsonl"), purpose="batch")
        b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"tool": "mast", "prompt": jobs.prompt_version})
        storage.batch_put(store, b.id, f.id, jobs.model, jobs.prompt_version, requests, b.status)
        batches.append({"batch_id": b.id, "requests": requests, "status": b.status})
        jobs.stats.requests += len(requests)
    for b in batches:
        jobs.stats.batch_ids.append(b["batch_id"])
        yield from _collect(jobs, store, client, b, poll_interval=poll_interval, poll_timeout=poll_timeout)


def _collect(jobs: JudgeJobs, store, client, b: dict, *, poll_interval: float,
             poll_timeout: float | None) -> Iterator[Output]:
    bid = b["batch_id"]
    started = time.monotonic()
    polls = 0
    while True:
        info = client.batches.retrieve(bid)
        if info.status != b.get("status"):
            storage.batch_status(store, bid, info.status)
            b["status"] = info.status
        if info.status in _TERMINAL:
            break
        if poll_timeout is not None and time.monotonic() - started >= poll_timeout:
            raise BatchPending(f"batch {bid} is still {info.status} after {poll_timeout:g}s")
        # Poll quickly at first (small batches finish fast), then back off to poll_interval.
        time.sleep(min(poll_interval, 0.5 * 1.5 ** polls))
        polls += 1
    lines: dict[str, dict] = {}
    for fid in (info.output_file_id, info.error_file_id):
        if fid:
            for raw in client.files.content(fid).read().decode("utf-8").splitlines():
                if raw.strip():
                    d = json.loads(raw)
                    lines[d["custom_id"]] = d
    by_trace: dict[str, list[tuple[int, dict]]] = {}
    for cid, meta in b["requests"].items():
        by_trace.setdefault(meta["trace_id"], []).append((meta["window"], meta))
    # Every trace of the batch is stored, also ones outside this selection: they are paid for.
    for job in jobs.jobs_for(store, list(by_trace)):
        tid = job.trace_id
        wins = by_trace[tid]
        res = JobResult(job)
        parts = []
        for w, meta in sorted(wins, key=lambda x: x[0]):
            res.prompt = job.messages[w - 1] if w - 1 < len(job.messages) else None
            line = lines.get(_custom_id(tid, w))
            resp = (line or {}).get("response") or {}
            body = resp.get("body") or {}
            if line is None or resp.get("status_code") != 200:
                err = (line or {}).get("error") or body.get("error") or {}
                msg = err.get("message") if isinstance(err, dict) else str(err)
                res.kind = "call_failed"
                res.reason = (f"batch {bid} ({info.status}) returned no result for window {w}" if line is None
                              else f"batch {bid}: status {resp.get('status_code')}: {msg}")
                break
            usage = body.get("usage") or {}
            res.tokens_in += int(usage.get("prompt_tokens") or 0)
            res.tokens_out += int(usage.get("completion_tokens") or 0)
            res.tokens_cached += cached_tokens(usage)
            choices = body.get("choices") or [{}]
            res.reply = (choices[0].get("message") or {}).get("content")
            try:
                parts.append(jobs.parse(res.reply, job))
            except Unclassified as e:
                res.kind, res.reason = "unclassified", f"window {w}: {e}" if len(wins) > 1 else str(e)
                break
        else:
            res.verdicts = merge(parts)
        yield jobs.finish(store, [res])
    storage.batch_status(store, bid, "stored", finished=True)
