"""The online path: concurrent chat requests in an event-loop thread, with retries
(:mod:`.client`), deadlines and a budget, over jobs from :mod:`.jobs`.

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
- Deadlines (:class:`Limits`): a trace's windows, attempts and waits all end within
  ``trace_deadline`` seconds of its first request, else it is a ``call_failed`` result
  naming the deadline; after ``run_deadline`` seconds no trace starts
  (``stats.skipped_deadline``) and the ones in flight fail by the same rule.
- An endpoint that is down: once ``stop_after_failures`` traces in a row have failed
  their calls and none has had an answer yet, no further trace starts
  (``stats.skipped_failing``): every other one would wait out the same retries.  After a
  first failure and before any answer, a new trace starts only when none is in flight.
- While nothing arrives, ``progress`` is called every ``progress_every`` seconds with a
  line saying what is awaited (so a slow endpoint is never silence).
- Ctrl-C (SIGINT, when run in the main thread): no new request is sent (a retry neither),
  the replies in flight are awaited for ``grace`` seconds and stored and cached like any
  other, the rest are cancelled inside the loop (no task is left pending), the client is
  closed and :class:`KeyboardInterrupt` is raised to the caller.  A second Ctrl-C ends
  the grace period at once.
- A bug in a worker is re-raised in the calling thread; a call that keeps failing is a
  ``call_failed`` result, an endpoint that refuses everything (:class:`~.client.EndpointError`)
  stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from mast.classify.contract import Output
from mast.classify.judge.client import CallFailed, Capabilities, Deadline, Halted, Policy, chat
from mast.classify.judge.jobs import CHUNK, Job, JobResult, JudgeJobs, merge_outputs
from mast.classify.judge.reply import Unclassified, Verdicts, merge

#: how often the calling thread looks up from waiting (for Ctrl-C, deadlines, progress)
_TICK = 0.2
#: a worker's answer for a job it took off the queue once no trace may start: not started
_LATE = object()


@dataclass(frozen=True)
class Limits:
    """How long a run may take and how it reports while it waits (seconds; None: no limit)."""

    trace_deadline: float | None = 300.0
    run_deadline: float | None = None
    grace: float = 10.0
    progress_every: float = 15.0
    #: this many calls failing in a row before any trace succeeded: the endpoint is down, stop
    stop_after_failures: int | None = 8


class _Board:
    """What the calling thread reports while it waits: traces in flight, the last retry."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_retry: str | None = None
        self.in_flight = 0        # written by the workers (one thread), read by the caller

    def retried(self, reason: str) -> None:
        with self.lock:
            self.last_retry = reason


async def judge_job(client, jobs: JudgeJobs, job: Job, *, policy: Policy, caps: Capabilities,
                    rng: random.Random, deadlines: Sequence[Deadline] = (), halt: threading.Event | None = None,
                    on_retry: Callable[[str], None] | None = None) -> JobResult:
    """Send every window of ``job`` in turn; the first failing window ends it."""
    res = JobResult(job)
    parts: list[Verdicts] = []
    for w, msgs in enumerate(job.messages, 1):
        res.prompt = msgs
        try:
            reply = await chat(client, jobs.model, msgs, jobs.schema, temperature=jobs.temperature,
                               max_tokens=jobs.max_tokens, policy=policy, caps=caps, rng=rng,
                               deadlines=deadlines, halt=halt, on_retry=on_retry)
        except CallFailed as e:
            res.kind, res.reason = "call_failed", f"window {w}/{len(job.messages)}: {e}"
            return res
        res.attempts += reply.attempts
        res.mode = reply.mode
        res.tokens_in += reply.tokens_in
        res.tokens_out += reply.tokens_out
        res.tokens_cached += reply.tokens_cached
        res.reply = reply.text
        try:
            parts.append(jobs.parse(reply.text, job))
        except Unclassified as e:
            res.kind = "unclassified"
            res.reason = str(e) if len(job.messages) == 1 else f"window {w}/{len(job.messages)}: {e}"
            return res
    res.verdicts = merge(parts)
    return res


@contextlib.contextmanager
def _sigint_sets(flag: threading.Event) -> Iterator[None]:
    """While inside, the first Ctrl-C sets ``flag`` instead of raising; a second one raises.

    Only the main thread may set signal handlers: elsewhere Ctrl-C keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_online(jobs: JudgeJobs, store, trace_ids: Sequence[str], client, *, concurrency: int,
               budget: float | None, policy: Policy, caps: Capabilities, rng: random.Random,
               limits: Limits = Limits(), progress: Callable[[str], None] | None = None) -> Iterator[Output]:
    """Judge ``trace_ids`` through ``client`` (an ``openai.AsyncOpenAI``); the calling
    thread reads and writes the store, the loop thread only sends requests."""
    stats = jobs.stats
    started = time.monotonic()
    run_due = (Deadline(started + limits.run_deadline, f"run deadline of {limits.run_deadline:g} s")
               if limits.run_deadline else None)
    halt = threading.Event()            # Ctrl-C: send nothing more
    closed = threading.Event()          # no trace may start (run deadline, endpoint down)
    failing = [0]                       # calls failed in a row before any answer (-1: one came)
    board = _Board()
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
            # After a failed call and no answer yet, start nothing while calls are in flight:
            # their outcome tells whether the endpoint works, and a dead one must not get a
            # second wave of traces to wait out.
            while failing[0] > 0 and board.in_flight > 0 and not closed.is_set() and not halt.is_set():
                await asyncio.sleep(0.05)
            if halt.is_set():
                results.put((job, None, None))   # never sent: not a result
                continue
            if closed.is_set() or (run_due is not None and run_due.left() <= 0):
                results.put((job, _LATE, None))  # queued before the run closed, due after
                continue
            dues = [d for d in (run_due,) if d is not None]
            if limits.trace_deadline:
                dues.append(Deadline(time.monotonic() + limits.trace_deadline,
                                     f"trace deadline of {limits.trace_deadline:g} s"))
            board.in_flight += 1
            try:
                res = await judge_job(client, jobs, job, policy=policy, caps=caps, rng=rng, deadlines=dues,
                                      halt=halt, on_retry=board.retried)
                # Counted here, before this worker takes its next job (all workers share the
                # loop's thread): any answer at all, even one that did not parse, shows the
                # endpoint works.
                failing[0] = failing[0] + 1 if res.kind == "call_failed" and failing[0] >= 0 else -1
                if limits.stop_after_failures and failing[0] >= limits.stop_after_failures and not closed.is_set():
                    stats.failing_stopped = True
                    closed.set()
                results.put((job, res, None))
            except Halted:
                results.put((job, None, None))
            except asyncio.CancelledError:
                raise
            except BaseException as e:  # noqa: BLE001 - a bug: re-raised in the calling thread
                results.put((job, None, e))
            finally:
                board.in_flight -= 1

    workers = [asyncio.run_coroutine_threadsafe(worker(), loop) for _ in range(concurrency)]
    pending: dict[str, Job] = {}       # queued or in flight
    depth = 2 * concurrency if budget is None else concurrency
    prepared = jobs.prepare(store, trace_ids)
    exhausted = False
    cached: list[Output] = []
    interrupted = False
    try:
        with _sigint_sets(halt):
            while True:
                while not exhausted and not halt.is_set() and len(pending) < depth:
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
                    if stats.failing_stopped:
                        stats.skipped_failing += 1
                        continue
                    if run_due is not None and run_due.left() <= 0:
                        stats.deadline_stopped = True
                        stats.skipped_deadline += 1
                        continue
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
                done = _wait(results, halt, limits, started, pending, board, progress, stats)
                if done is None:               # Ctrl-C, grace period over
                    interrupted = True
                    break
                for job, res, exc in done:
                    pending.pop(job.trace_id, None)
                    if exc is not None:
                        raise exc
                    if res is _LATE and stats.failing_stopped:
                        stats.skipped_failing += 1
                    elif res is _LATE:
                        stats.deadline_stopped = True
                        stats.skipped_deadline += 1
                finished = [res for _, res, _ in done if isinstance(res, JobResult)]
                if finished:
                    yield jobs.finish(store, finished)
                if halt.is_set() and not pending:
                    interrupted = True
                    break
            interrupted = interrupted or halt.is_set()
    finally:
        halt.set()   # whatever ended the run (Ctrl-C, an error, the caller closing us): send nothing more
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_shutdown(client), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            # A task the shutdown could not reach (it timed out under load) is finished here,
            # on the stopped loop: closed unfinished, its coroutine would be torn down at
            # garbage collection, against a closed loop, with a warning.
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in left:
                t.cancel()
            if left:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.close()
        stats.notes.extend(n for n in caps.notes if n not in stats.notes)
    if interrupted:
        stats.interrupted = True
        stats.abandoned = len(pending)
        raise KeyboardInterrupt


def _wait(results: queue.Queue, halt: threading.Event, limits: Limits, started: float, pending: dict,
          board: _Board, progress: Callable[[str], None] | None, stats) -> list | None:
    """The results that are in (at least one), or None once Ctrl-C's grace period is over.

    Group commit: every trace whose reply is in by now goes into one Output (one
    transaction).  Nothing finished waits for anything unfinished; under load this turns
    N small commits into one."""
    last_report = time.monotonic()
    halted_at: float | None = None
    while True:
        try:
            first = results.get(timeout=_TICK)
            break
        except queue.Empty:
            pass
        now = time.monotonic()
        if halt.is_set():
            if halted_at is None:
                halted_at = now
                if progress:
                    progress(f"judge: interrupted: no new requests; waiting up to {limits.grace:g} s for "
                             f"{min(board.in_flight, len(pending))} reply(ies) in flight (Ctrl-C again to stop now)")
            if now - halted_at >= limits.grace:
                return None
        elif progress and limits.progress_every and now - last_report >= limits.progress_every:
            last_report = now
            with board.lock:
                retry = board.last_retry
            flying = min(board.in_flight, len(pending))
            progress(f"judge: {stats.judged + stats.cached} done, {stats.failed} failed, waiting for "
                     f"{flying} trace(s) in flight ({len(pending) - flying} queued), {now - started:.0f} s into "
                     "the run" + (f"; last retry after: {retry}" if retry else ""))
    done = [first]
    while True:
        try:
            done.append(results.get_nowait())
        except queue.Empty:
            return done


async def _shutdown(client) -> None:
    """Cancel what is still running in the loop and wait for it, then close the client:
    a task dropped unfinished makes asyncio warn at exit."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Closing is best effort: everything finished is stored by now, and a close that
    # fails or hangs (timeout, connection already gone) must not hide how the run ended.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 5)


async def _make_queue() -> asyncio.Queue:
    # Created inside the loop's thread so the queue belongs to that loop.
    return asyncio.Queue()
