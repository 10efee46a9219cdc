"""The online path: concurrent chat requests in an event-loop thread, with retries
(:mod:`.client`) and a budget, over jobs from :mod:`.jobs`.

Contract of :func:`run_online`:
- ``concurrency`` worker coroutines pull prepared jobs from a queue, so a slot is
  refilled the moment a reply arrives, even while the calling thread is committing.
  The queue is kept ``concurrency`` jobs ahead (twice that without a budget).
- Group commit: every trace whose reply is in by the time the caller asks goes into one
  Output (usually one trace, a few under heavy load; a trace's rows are never split and
  nothing finished waits for anything unfinished).  Cache hits are yielded in groups of
  up to :data:`~.jobs.CHUNK`.
- ``budget`` (USD): no new trace starts once spent + the estimated cost of the traces
  queued or in flight reaches it; cached traces are free and still served.
- A bug in a worker is re-raised in the calling thread; a call that keeps failing is a
  ``call_failed`` result, an endpoint that refuses everything (:class:`~.client.EndpointError`)
  stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
from typing import Iterator, Sequence

from mast.classify.contract import Output
from mast.classify.judge.client import Capabilities, CallFailed, Policy, chat
from mast.classify.judge.jobs import CHUNK, Job, JobResult, JudgeJobs, merge_outputs
from mast.classify.judge.reply import Unclassified, Verdicts, merge


async def judge_job(client, jobs: JudgeJobs, job: Job, *, policy: Policy, caps: Capabilities,
                    rng: random.Random) -> JobResult:
    """Send every window of ``job`` in turn; the first failing window ends it."""
    res = JobResult(job)
    parts: list[Verdicts] = []
    for w, msgs in enumerate(job.messages, 1):
        res.prompt = msgs
        try:
            reply = await chat(client, jobs.model, msgs, jobs.schema, temperature=jobs.temperature,
                               max_tokens=jobs.max_tokens, policy=policy, caps=caps, rng=rng)
        except CallFailed as e:
            res.kind, res.reason = "call_failed", f"window {w}/{len(job.messages)}: {e}"
            return res
        res.attempts += reply.attempts
        res.mode = reply.mode
        res.tokens_in += reply.tokens_in
        res.tokens_out += reply.tokens_out
        res.reply = reply.text
        try:
            parts.append(jobs.parse(reply.text, job))
        except Unclassified as e:
            res.kind = "unclassified"
            res.reason = str(e) if len(job.messages) == 1 else f"window {w}/{len(job.messages)}: {e}"
            return res
    res.verdicts = merge(parts)
    return res


def run_online(jobs: JudgeJobs, store, trace_ids: Sequence[str], client, *, concurrency: int,
               budget: float | None, policy: Policy, caps: Capabilities, rng: random.Random) -> Iterator[Output]:
    """Judge ``trace_ids`` through ``client`` (an ``openai.AsyncOpenAI``); the calling
    thread reads and writes the store, the loop thread only sends requests."""
    stats = jobs.stats
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="mast-judge-loop", daemon=True)
    thread.start()
    results: queue.Queue = queue.Queue()
    jobq: asyncio.Queue = asyncio.run_coroutine_threadsafe(_make_queue(), loop).result()

    async def worker() -> None:
        while True:
            job = await jobq.get()
            if job is None:
                return
            try:
                results.put((job, await judge_job(client, jobs, job, policy=policy, caps=caps, rng=rng), None))
            except BaseException as e:  # noqa: BLE001 - a bug: re-raised in the calling thread
                results.put((job, None, e))

    workers = [asyncio.run_coroutine_threadsafe(worker(), loop) for _ in range(concurrency)]
    pending: dict[str, Job] = {}       # queued or in flight
    depth = 2 * concurrency if budget is None else concurrency
    prepared = jobs.prepare(store, trace_ids)
    exhausted = False
    cached: list[Output] = []
    try:
        while True:
            while not exhausted and len(pending) < depth:
                nxt = next(prepared, None)
                if nxt is None:
                    exhausted = True
                    break
                if nxt.hit is not None:
                    cached.append(jobs.from_cache(nxt))
                    if len(cached) >= CHUNK:   # cache hits are committed in groups too
                        yield merge_outputs(cached)
                        cached = []
                    continue
                job = nxt.job
                # Cached traces are free and still served after the budget is spent.
                if budget is not None and (stats.budget_stopped or
                                           stats.cost_usd + sum(j.est_cost for j in pending.values()) >= budget):
                    stats.budget_stopped = True
                    stats.skipped_budget += 1
                    continue
                stats.requests += len(job.messages)
                pending[job.trace_id] = job
                loop.call_soon_threadsafe(jobq.put_nowait, job)
            if cached:
                yield merge_outputs(cached)
                cached = []
            if not pending:
                break
            # Group commit: every trace whose reply is in by now goes into one Output (one
            # transaction).  Nothing finished waits for anything unfinished; under load this
            # turns N small commits into one.
            done = [results.get()]
            while True:
                try:
                    done.append(results.get_nowait())
                except queue.Empty:
                    break
            for job, _, exc in done:
                pending.pop(job.trace_id, None)
                if exc is not None:
                    raise exc
            yield jobs.finish(store, [res for _, res, _ in done])
    finally:
        for _ in workers:
            loop.call_soon_threadsafe(jobq.put_nowait, None)
        for w in workers:
            w.cancel()
        # Closing is best effort: everything finished is stored by now, and a close that
        # fails or hangs (timeout, connection already gone) must not hide how the run ended.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        stats.notes.extend(n for n in caps.notes if n not in stats.notes)


async def _make_queue() -> asyncio.Queue:
    # Created inside the loop's thread so the queue belongs to that loop.
    return asyncio.Queue()
