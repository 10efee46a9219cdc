"""LLM-judge classifier: any OpenAI-compatible endpoint, evidence per mode, cached,
resumable, cost-bounded.

Contract (on top of :mod:`mast.classify`):
- ``create("judge", model=..., base_url=..., concurrency=..., budget=..., batch=...,
  timeout=..., max_retries=..., prompt="v1", ...)``; ``model`` defaults to
  ``MAST_JUDGE_MODEL``, ``base_url`` to ``OPENAI_BASE_URL``, the key is read from
  ``OPENAI_API_KEY`` (a local endpoint given by ``base_url`` may run without one).
- ``classify(store, ids)`` yields a :class:`mast.classify.Output` as soon as a reply is
  in; every trace whose reply arrived by then goes into the same Output (group commit:
  usually one trace, a few under heavy load; a trace's rows are never split across
  Outputs and nothing finished waits for anything unfinished), so the runner commits
  finished work at once and a killed run loses none of it.
- Labels: annotator ``judge:<model>``, label ``present`` or ``absent`` for each of the
  taxonomy's modes, with confidence, evidence steps and rationale; a root cause
  (:class:`mast.model.Attribution`) when a mode is present.  The judge never writes
  ``unknown``: a trace it could not classify (unparseable reply, a mode outside the
  taxonomy, a step outside the trace, or a call that kept failing) gets *no* annotation
  rows at all, an entry in ``Output.failed`` and a ``judge_failures`` row with the
  reason, the prompt and the reply.  A trace judged on partial text (caps) is still
  labelled; its coverage is stored in ``judge_cache.coverage`` and stated in the
  rationale.
- Cache: ``judge_cache`` keyed by (trace content hash, prompt version, taxonomy id and
  version, model, parameters, hash of the exact messages).  A hit costs nothing and
  sends nothing.  Results are cached before they are yielded, so a killed run resumes
  without asking again for any trace whose reply had arrived.  Failures are not cached:
  a rerun asks again.
- ``budget`` (USD): no new trace starts once spent + the estimated cost of the traces in
  flight reaches it; ``stats.skipped_budget`` counts the traces not started.
- ``batch=True``: the OpenAI Batch API (see :mod:`mast.classify.judge.batch`).
- :meth:`JudgeClassifier.estimate` renders the selection and returns expected tokens and
  cost without any network access.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import random
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

from mast.classify.contract import ClassifierBase, Option, Output, flag
from mast.classify.judge import storage
from mast.classify.judge.client import Capabilities, CallFailed, Policy, chat
from mast.classify.judge.prices import Price, load_table, message_tokens, price_for
from mast.classify.judge.prompt import DEFAULT_PROMPT, build_messages, load_template, reply_schema
from mast.classify.judge.render import Rendered, RenderOptions, render_trace
from mast.classify.judge.reply import Unclassified, Verdicts, merge, parse_reply
from mast.errors import UsageError
from mast.model import Annotation, Attribution, Label
from mast.settings import current as current_settings
from mast.taxonomy import DEFAULT_TAXONOMY, load as load_taxonomy

VERSION = "1.0"
#: expected completion tokens per request (14 short verdicts + root cause), for estimates
EXPECTED_OUTPUT_TOKENS = 750
_CHUNK = 64  # traces loaded from the store per query


@dataclass
class Job:
    trace_id: str
    rendered: Rendered
    messages: list[list[dict]]   # one message list per window
    key: str
    est_tokens_in: int
    est_cost: float


@dataclass
class JobResult:
    job: Job
    verdicts: Verdicts | None = None
    kind: str | None = None       # unclassified / call_failed
    reason: str | None = None
    prompt: Any = None
    reply: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0


@dataclass
class JudgeStats:
    traces: int = 0
    cached: int = 0
    judged: int = 0
    failed: int = 0
    skipped_budget: int = 0
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    budget_stopped: bool = False
    batch_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Estimate:
    model: str
    traces: int
    cached: int
    to_send: int
    windows: int
    prompt_tokens: int
    output_tokens: int
    cost_usd: float | None        # None: the model has no price in the table
    batch: bool
    tokenizer: str = "estimate: ceil(chars/4) per message + 4 framing tokens"
    per_trace_max_tokens: int = 0
    coverage_min: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (f"traces {self.traces} ({self.cached} cached, {self.to_send} to send in {self.windows} request(s))\n"
                f"prompt tokens ~{self.prompt_tokens:,}\noutput tokens ~{self.output_tokens:,}\n"
                f"expected cost {cost}{' (batch price)' if self.batch else ''}\ntokens counted by {self.tokenizer}")


class JudgeClassifier(ClassifierBase):
    name = "judge"
    kind = "judge"
    version = VERSION
    options = (
        Option("model", "Judge model.", setting="judge_model"),
        Option("base_url", "OpenAI-compatible endpoint.", setting="base_url"),
        Option("api_key", "API key; never stored.", setting="api_key"),
        Option("concurrency", "Requests in flight.", parse=int),
        Option("budget", "Stop starting traces after this many USD.", parse=float),
        Option("batch", "Use the OpenAI Batch API.", parse=flag),
        Option("batch_id", "Resume this Batch API job (unfinished batches of the same model and prompt "
                           "are resumed anyway)."),
        Option("timeout", "Seconds per request.", parse=float),
        Option("max_retries", "Retries per request.", parse=int),
        Option("prompt", "Prompt version (a folder of classifiers/judge)."),
        Option("taxonomy", "Taxonomy id."),
        Option("temperature", "Sampling temperature.", parse=float),
        Option("max_tokens", "Reply token limit.", parse=int),
        Option("window_tokens", "Prompt tokens per window of a long trace.", parse=int),
        Option("max_step_chars", "Characters kept of one step.", parse=int),
        Option("hints", "Show the rules' findings to the judge.", parse=flag),
        Option("prices", "Extra price table (JSON).", setting="judge_prices"),
        Option("poll_interval", "Batch: seconds between polls.", parse=float),
        Option("poll_timeout", "Batch: give up polling after this many seconds.", parse=float),
        Option("base_wait", "First retry wait, seconds.", parse=float),
        Option("max_wait", "Longest retry wait, seconds.", parse=float),
        Option("seed", "Seed of the retry jitter.", parse=int),
    )

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int | None = 8, budget: float | None = None, batch: bool | str = False,
                 timeout: float | None = 120.0, max_retries: int | None = 4, prompt: str = DEFAULT_PROMPT,
                 taxonomy: str = DEFAULT_TAXONOMY, temperature: float | None = 0.0, max_tokens: int = 2000,
                 window_tokens: int = 50_000, max_step_chars: int = 8_000, hints: bool = True,
                 prices: str | None = None, poll_interval: float = 15.0, poll_timeout: float | None = None,
                 batch_id: str | None = None, base_wait: float = 0.5, max_wait: float = 60.0, seed: int | None = None):
        self.model = model or None
        self.base_url = base_url or None
        self._api_key = api_key
        self.concurrency = max(1, int(concurrency or 8))
        self.budget = budget
        if isinstance(batch, str) and batch.startswith("batch_"):
            batch_id, batch = batch, True
        # A batch id to resume implies the Batch API.
        self.batch = bool(batch) or bool(batch_id)
        self.batch_id = batch_id
        self.policy = Policy(timeout=float(timeout or 120.0), max_retries=int(4 if max_retries is None else max_retries),
                             base_wait=base_wait, max_wait=max_wait)
        self.prompt = prompt
        self.taxonomy_id = taxonomy
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.window_tokens = window_tokens
        self.render_opts = RenderOptions(max_step_chars=max_step_chars,
                                         head_chars=max(1, max_step_chars * 5 // 8),
                                         window_chars=window_tokens * 4,
                                         overlap_chars=min(8_000, window_tokens * 4 // 10))
        self.hints = hints
        self.prices_path = prices
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.rng = random.Random(seed)
        self.caps = Capabilities()
        self.stats = JudgeStats()
        self.session = uuid.uuid4().hex[:12]
        self._pending_cache: list[list] = []

    # -- the Classifier contract ------------------------------------------------------
    @property
    def annotator(self) -> str:
        return f"judge:{self.model}" if self.model else "judge"

    def covers(self, taxonomy) -> set[str]:
        return set(taxonomy.mode_ids)

    def arguments(self) -> dict[str, Any]:
        tpl = load_template(self.prompt)
        return {"model": self.model, "base_url": self.base_url, "prompt_version": tpl.version,
                "taxonomy": self.taxonomy_id, "params": self.params(), "concurrency": self.concurrency,
                "budget": self.budget, "batch": self.batch, "timeout": self.policy.timeout,
                "max_retries": self.policy.max_retries}

    def params(self) -> dict[str, Any]:
        """Everything besides model, prompt and taxonomy that changes the judge's answer."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens,
                "render": asdict(self.render_opts), "hints": self.hints}

    def run_details(self) -> dict[str, Any]:
        return {"judge": asdict(self.stats)}

    def run_notes(self) -> list[str]:
        if self.stats.budget_stopped:
            return [f"budget reached: {self.stats.skipped_budget} trace(s) not started"]
        return []

    # -- preparation (no network) ---------------------------------------------------------
    def _setup(self, need_model: bool = True):
        if need_model and not self.model:
            raise UsageError("no judge model given", "Pass --model NAME or set MAST_JUDGE_MODEL.")
        self.tax = load_taxonomy(self.taxonomy_id)
        self.tpl = load_template(self.prompt)
        self.schema = reply_schema(self.tax.mode_ids)
        self.price: Price = price_for(self.model or "", load_table(self.prices_path))

    def _key(self, trace_id: str, messages: list[list[dict]]) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({"trace": trace_id, "prompt": self.tpl.version,
                             "taxonomy": f"{self.tax.id}@{self.tax.version}", "model": self.model,
                             "params": self.params()}, sort_keys=True).encode())
        h.update(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        return "j1-" + h.hexdigest()[:40]

    def _prepare(self, store, ids: Sequence[str]) -> Iterator[tuple[Job, dict | None]]:
        """(job, cache hit or None) per trace, reading the store one chunk at a time."""
        for k in range(0, len(ids), _CHUNK):
            chunk = ids[k:k + _CHUNK]
            traces = storage.load_traces(store, chunk)
            hints = storage.rule_hints(store, chunk) if self.hints else {}
            jobs = [self._job(tid, traces[tid], hints.get(tid, [])) for tid in chunk if tid in traces]
            hits = storage.cache_get(store, [j.key for j in jobs])
            for job in jobs:
                yield job, hits.get(job.key)

    def _job(self, tid: str, t: dict, hints: list[str]) -> Job:
        r = render_trace(t["steps"], t["task"], self.render_opts)
        msgs = []
        for w, (text, (first, last)) in enumerate(zip(r.windows, r.window_steps), 1):
            msgs.append(build_messages(self.tpl, self.tax, text, window=w, n_windows=len(r.windows),
                                       first_step=first, last_window_step=last, last_step=r.n_steps - 1,
                                       agents=r.agents, task=r.task, hints=hints))
        est_in = sum(message_tokens(m) for m in msgs)
        est_cost = self.price.cost(est_in, EXPECTED_OUTPUT_TOKENS * len(msgs), batch=self.batch)
        return Job(tid, r, msgs, self._key(tid, msgs), est_in, est_cost)

    def estimate(self, store, trace_ids: Sequence[str]) -> Estimate:
        """Expected tokens and cost of judging ``trace_ids``; sends nothing."""
        self._setup(need_model=False)
        est = Estimate(self.model or "(none)", 0, 0, 0, 0, 0, 0, 0.0 if self.price.known else None, self.batch)
        for job, hit in self._prepare(store, list(trace_ids)):
            est.traces += 1
            if hit is not None:
                est.cached += 1
                continue
            est.to_send += 1
            est.windows += len(job.messages)
            est.prompt_tokens += job.est_tokens_in
            est.output_tokens += EXPECTED_OUTPUT_TOKENS * len(job.messages)
            est.per_trace_max_tokens = max(est.per_trace_max_tokens, job.est_tokens_in)
            est.coverage_min = min(est.coverage_min, job.rendered.coverage.fraction)
        if self.price.known:
            est.cost_usd = self.price.cost(est.prompt_tokens, est.output_tokens, batch=self.batch)
        return est

    # -- results -> Output ------------------------------------------------------------------
    def _output(self, tid: str, v: Verdicts, coverage: dict, tokens_in: int, tokens_out: int,
                cost: float) -> Output:
        frac = coverage.get("fraction", 1.0) if coverage else 1.0
        note = f" (judge saw {frac:.0%} of the trace text)" if frac < 0.995 else ""
        ann = [Annotation(mode=m.mode, label=Label.PRESENT if m.present else Label.ABSENT,
                          annotator=self.annotator, taxonomy=self.tax.id, confidence=m.confidence,
                          evidence_steps=list(m.evidence_steps), rationale=(m.rationale + note).strip(),
                          trace_id=tid)
               for m in v.modes.values()]
        att = []
        if v.root_cause and any(m.present for m in v.modes.values()):
            att.append(Attribution(annotator=self.annotator, agent=v.root_cause.agent, step=v.root_cause.step,
                                   rationale=v.root_cause.rationale, trace_id=tid))
        return Output(annotations=ann, attributions=att, trace_ids=[tid], tokens_in=tokens_in,
                      tokens_out=tokens_out, cost_usd=cost)

    def _finish(self, store, res: JobResult, *, batch: bool = False, defer_cache: bool = False) -> Output:
        job = res.job
        tid = job.trace_id
        cost = self.price.cost(res.tokens_in, res.tokens_out, batch=batch)
        self.stats.tokens_in += res.tokens_in
        self.stats.tokens_out += res.tokens_out
        self.stats.cost_usd += cost
        if res.verdicts is None:
            self.stats.failed += 1
            storage.record_failure(store, trace_id=tid, session=self.session, model=self.model,
                                   prompt_version=self.tpl.version, kind=res.kind or "call_failed",
                                   reason=res.reason or "unknown", prompt=res.prompt, reply=res.reply)
            return Output(failed={tid: f"{res.kind}: {res.reason}"}, trace_ids=[tid], tokens_in=res.tokens_in,
                          tokens_out=res.tokens_out, cost_usd=cost)
        self.stats.judged += 1
        cov = job.rendered.coverage.as_dict()
        row = storage.cache_row(job.key, trace_id=tid, model=self.model, prompt_version=self.tpl.version,
                                taxonomy=f"{self.tax.id}@{self.tax.version}", params=self.params(),
                                result=res.verdicts.to_json(), coverage=cov, tokens_in=res.tokens_in,
                                tokens_out=res.tokens_out, cost_usd=cost if self.price.known else None)
        if defer_cache:
            self._pending_cache.append(row)
        else:
            storage.cache_put_many(store, [row])
        return self._output(tid, res.verdicts, cov, res.tokens_in, res.tokens_out, cost)

    def _finish_many(self, store, results: list[JobResult]) -> Output:
        outs = [self._finish(store, r, defer_cache=True) for r in results]
        storage.cache_put_many(store, self._pending_cache)
        self._pending_cache = []
        return _merge_outputs(outs)

    def _from_cache(self, job: Job, hit: dict) -> Output:
        self.stats.cached += 1
        return self._output(job.trace_id, Verdicts.from_json(hit["result"]), hit.get("coverage") or {}, 0, 0, 0.0)

    def _parse(self, text: str | None, job: Job) -> Verdicts:
        r = job.rendered
        return parse_reply(text, self.tax.mode_ids, r.n_steps, r.agents)

    # -- classify ---------------------------------------------------------------------------
    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        self._setup()
        self.stats = JudgeStats(traces=len(trace_ids))
        self.stats.cost_known = self.price.known
        if self.budget is not None and not self.price.known:
            raise UsageError(f"--budget needs a price for model {self.model!r}",
                             "Add it to a price table and point MAST_JUDGE_PRICES at it.")
        if self.batch:
            from mast.classify.judge.batch import run_batch
            yield from run_batch(self, store, list(trace_ids))
            return
        yield from self._online(store, list(trace_ids))

    def _client(self, sync: bool = False):
        import openai

        key = self._api_key or current_settings().api_key
        if not key:
            if not self.base_url:
                raise UsageError("no API key", "Set OPENAI_API_KEY, or point --base-url at a local endpoint.")
            key = "unused"  # local servers (vLLM, Ollama) accept any key
        cls = openai.OpenAI if sync else openai.AsyncOpenAI
        return cls(api_key=key, base_url=self.base_url, max_retries=0 if not sync else self.policy.max_retries,
                   timeout=self.policy.timeout)

    async def _judge(self, client, job: Job) -> JobResult:
        res = JobResult(job)
        parts: list[Verdicts] = []
        for w, msgs in enumerate(job.messages, 1):
            res.prompt = msgs
            try:
                reply = await chat(client, self.model, msgs, self.schema, temperature=self.temperature,
                                   max_tokens=self.max_tokens, policy=self.policy, caps=self.caps, rng=self.rng)
            except CallFailed as e:
                res.kind, res.reason = "call_failed", f"window {w}/{len(job.messages)}: {e}"
                return res
            res.attempts += reply.attempts
            res.tokens_in += reply.tokens_in
            res.tokens_out += reply.tokens_out
            res.reply = reply.text
            try:
                parts.append(self._parse(reply.text, job))
            except Unclassified as e:
                res.kind = "unclassified"
                res.reason = str(e) if len(job.messages) == 1 else f"window {w}/{len(job.messages)}: {e}"
                return res
        res.verdicts = merge(parts)
        return res

    def _online(self, store, ids: list[str]) -> Iterator[Output]:
        """Workers in an event-loop thread send requests; this thread reads and writes the store.

        ``concurrency`` worker coroutines pull prepared jobs from a queue, so a slot is
        refilled the moment a reply arrives, even while this thread is committing.  The
        queue is kept ``concurrency`` jobs ahead; the budget counts queued jobs as spent.
        """
        client = self._client()
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
                    results.put((job, await self._judge(client, job), None))
                except BaseException as e:  # noqa: BLE001 - a bug: re-raised in the main thread
                    results.put((job, None, e))

        workers = [asyncio.run_coroutine_threadsafe(worker(), loop) for _ in range(self.concurrency)]
        pending: dict[str, Job] = {}       # queued or in flight
        depth = 2 * self.concurrency if self.budget is None else self.concurrency
        jobs = self._prepare(store, ids)
        exhausted = False
        cached: list[Output] = []
        try:
            while True:
                while not exhausted and len(pending) < depth:
                    nxt = next(jobs, None)
                    if nxt is None:
                        exhausted = True
                        break
                    job, hit = nxt
                    if hit is not None:
                        cached.append(self._from_cache(job, hit))
                        if len(cached) >= _CHUNK:   # cache hits are committed in groups too
                            yield _merge_outputs(cached)
                            cached = []
                        continue
                    # Cached traces are free and still served after the budget is spent.
                    if self.budget is not None and (self.stats.budget_stopped or
                            self.stats.cost_usd + sum(j.est_cost for j in pending.values()) >= self.budget):
                        self.stats.budget_stopped = True
                        self.stats.skipped_budget += 1
                        continue
                    self.stats.requests += len(job.messages)
                    pending[job.trace_id] = job
                    loop.call_soon_threadsafe(jobq.put_nowait, job)
                if cached:
                    yield _merge_outputs(cached)
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
                yield self._finish_many(store, [res for _, res, _ in done])
        finally:
            for _ in workers:
                loop.call_soon_threadsafe(jobq.put_nowait, None)
            for w in workers:
                w.cancel()
            with _suppress():
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            self.stats.notes.extend(n for n in self.caps.notes if n not in self.stats.notes)


async def _make_queue() -> asyncio.Queue:
    return asyncio.Queue()


def _merge_outputs(outs: list[Output]) -> Output:
    if len(outs) == 1:
        return outs[0]
    merged = Output()
    for o in outs:
        merged.annotations += o.annotations
        merged.attributions += o.attributions
        merged.failed.update(o.failed)
        merged.trace_ids += o.trace_ids
        merged.tokens_in += o.tokens_in
        merged.tokens_out += o.tokens_out
        merged.cost_usd += o.cost_usd
    return merged


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


