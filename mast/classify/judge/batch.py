"""``--batch``: judge through the OpenAI Batch API (half price, results within 24 h).

Flow: render the traces not in the cache -> one JSONL line per trace window
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
from typing import Iterator

from mast.classify import Output
from mast.classify.judge import storage
from mast.classify.judge.client import request_body
from mast.classify.judge.reply import Unclassified, merge
from mast.errors import MastError, UsageError

_TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchPending(MastError):
    hint = "Rerun the same command later: it resumes the batch instead of creating a new one."


def _custom_id(trace_id: str, window: int) -> str:
    return f"{trace_id}|{window}"


def run_batch(clf, store, ids: list[str]) -> Iterator[Output]:
    client = clf._client(sync=True)
    wanted = set(ids)
    jobs = {}
    for job, hit in clf._prepare(store, ids):
        if hit is not None:
            yield clf._from_cache(job, hit)
        else:
            jobs[job.trace_id] = job
    # Batches to resume: the named one, else unfinished ones of this model and prompt.
    if clf.batch_id:
        b = storage.batch_get(store, clf.batch_id)
        if b is None:
            raise UsageError(f"batch {clf.batch_id} is not recorded in this store",
                             "List recorded batches with: SELECT * FROM judge_batches.")
        resume = [b]
    else:
        resume = storage.open_batches(store, clf.model, clf.tpl.version)
    batches: list[dict] = []
    for b in resume:
        covered = {r["trace_id"] for r in b["requests"].values()} & wanted
        keys_ok = {r["trace_id"] for r in b["requests"].values()
                   if r["trace_id"] in jobs and jobs[r["trace_id"]].key == r["key"]}
        if covered and keys_ok:
            batches.append(b)
            for tid in keys_ok:
                jobs.pop(tid, None)
    if jobs:
        requests: dict[str, dict] = {}
        buf = io.BytesIO()
        for tid, job in jobs.items():
            for w, msgs in enumerate(job.messages, 1):
                cid = _custom_id(tid, w)
                requests[cid] = {"trace_id": tid, "window": w, "windows": len(job.messages), "key": job.key}
                body = request_body(clf.model, msgs, clf.schema, temperature=clf.temperature,
                                    max_tokens=clf.max_tokens, caps=clf.caps)
                line = {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}
                buf.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
        f = client.files.create(file=("mast-judge.jsonl", buf.getvalue(), "application/jsonl"), purpose="batch")
        b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"tool": "mast", "prompt": clf.tpl.version})
        storage.batch_put(store, b.id, f.id, clf.model, clf.tpl.version, requests, b.status)
        batches.append({"batch_id": b.id, "requests": requests, "status": b.status})
        clf.stats.requests += len(requests)
    for b in batches:
        clf.stats.batch_ids.append(b["batch_id"])
        yield from _collect(clf, store, client, b, wanted)


def _collect(clf, store, client, b: dict, wanted: set[str]) -> Iterator[Output]:
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
        if clf.poll_timeout is not None and time.monotonic() - started >= clf.poll_timeout:
            raise BatchPending(f"batch {bid} is still {info.status} after {clf.poll_timeout:g}s")
        # Poll quickly at first (small batches finish fast), then back off to poll_interval.
        time.sleep(min(clf.poll_interval, 0.5 * 1.5 ** polls))
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
    traces = storage.load_traces(store, list(by_trace))
    hints = storage.rule_hints(store, list(traces)) if clf.hints else {}
    from mast.classify.judge import JobResult

    for tid, wins in by_trace.items():
        if tid not in traces:
            continue
        job = clf._job(tid, traces[tid], hints.get(tid, []))
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
            choices = body.get("choices") or [{}]
            res.reply = (choices[0].get("message") or {}).get("content")
            try:
                parts.append(clf._parse(res.reply, job))
            except Unclassified as e:
                res.kind, res.reason = "unclassified", f"window {w}: {e}" if len(wins) > 1 else str(e)
                break
        else:
            res.verdicts = merge(parts)
        yield clf._finish(store, res, batch=True)
    storage.batch_status(store, bid, "stored", finished=True)
