"""The judge's jobs: traces in, prompts out; replies in, Outputs out.  No network.

Both ways of sending prompts (:mod:`.online`, :mod:`.batch`) use only this module's
public API, through one :class:`JudgeJobs` built per run:

- :meth:`JudgeJobs.prepare` reads the store a chunk at a time and yields one
  :class:`Prepared` (a :class:`Job` plus its cache hit, if any) per stored trace;
  :meth:`JudgeJobs.jobs_for` builds the jobs of given traces without the cache lookup.
  A job holds the rendered trace (:mod:`.transcript`), one message list per window
  (:mod:`.prompt`, with the rules' findings as hints), its cache key and its estimated
  tokens and cost (:mod:`.prices`).
- :meth:`JudgeJobs.parse` validates one window's reply against the job's trace
  (:mod:`.reply`); the caller merges windows into a :class:`JobResult`.
- :meth:`JudgeJobs.finish` turns results into one :class:`mast.classify.Output`:
  verdicts become annotations and a root cause, and are cached (one statement for all
  of them) before the Output is handed back; a failure becomes a ``judge_failures`` row
  and an entry in ``Output.failed``.  :meth:`JudgeJobs.from_cache` serves a hit.
- :meth:`JudgeJobs.estimate` totals the expected tokens and cost of a selection.

The cache key (:func:`cache_key`) covers the trace id (a content hash), the prompt
version, the taxonomy id and version, the model, :func:`judge_params`, the reply shape
(:data:`~.prompt.REPLY_SHAPE`: the schema is sent beside the messages, not in them) and
the exact messages: any change to what the judge would be asked is a miss.  The messages
are those of the structured-output mode (:mod:`.structured`): the text mode appends the
schema to the prompt, so its verdicts are keyed apart; ``json_schema`` and
``json_object`` send the same prompt and share them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, NamedTuple, Sequence

from mast.classify.contract import Output
from mast.classify.judge import storage
from mast.classify.judge.examples import ExampleSet, load_examples
from mast.classify.judge.prices import Price, load_table, message_tokens, price_for
from mast.classify.judge.prompt import REPLY_SHAPE, Template, build_messages, load_template, reply_schema
from mast.classify.judge.reply import Verdicts, parse_reply
from mast.classify.judge.structured import prompt_variant, with_mode
from mast.classify.judge.transcript import Rendered, RenderOptions, render_trace
from mast.errors import UsageError
from mast.model import Annotation, Attribution, Label, Trace
from mast.taxonomy import load as load_taxonomy

#: expected completion tokens per request (14 short verdicts + root cause), for estimates
EXPECTED_OUTPUT_TOKENS = 750
#: traces loaded from the store per query
CHUNK = 64


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
    mode: str | None = None
    tokens_cached: int = 0        # of tokens_in, served from the endpoint's prefix cache       # the structured-output mode the replies came in


class Prepared(NamedTuple):
    job: Job
    hit: dict | None              # the cached result, or None: the job must be sent


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
    #: of tokens_in, what the endpoint reported served from its prefix cache
    tokens_cached: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    budget_stopped: bool = False
    #: traces not started because the run deadline had passed
    skipped_deadline: int = 0
    deadline_stopped: bool = False
    #: traces not started because the first calls all failed (the endpoint looks down)
    skipped_failing: int = 0
    failing_stopped: bool = False
    #: Ctrl-C: the run stopped sending; ``abandoned`` traces were in flight past the grace period
    interrupted: bool = False
    abandoned: int = 0
    batch_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the structured-output mode used, and how it was chosen (:mod:`.structured`)
    response_format: str | None = None
    response_format_how: str | None = None


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


def render_options(max_step_chars: int, window_tokens: int) -> RenderOptions:
    """The transcript caps that follow from the two user-facing sizes."""
    return RenderOptions(max_step_chars=max_step_chars, head_chars=max(1, max_step_chars * 5 // 8),
                         window_chars=window_tokens * 4, overlap_chars=min(8_000, window_tokens * 4 // 10))


def lean(opts: RenderOptions) -> RenderOptions:
    """The lean rendering (prompt folders with ``"render": "lean"``): escaped newlines split,
    blank lines dropped, short repeated lines joining runs of repeats, short markers, a step
    cap 1.5 times the standard one, and then the longest steps cut in the middle as far as
    the trace's coverage stays at or above :data:`LEAN_COVERAGE_FLOOR` (steps other
    classifiers point to, and their neighbours, are never capped)."""
    return replace(opts, split_escaped=True, drop_blank=True, absorb_short=True, min_repeat_line=24,
                   max_step_chars=opts.max_step_chars * 3 // 2, head_chars=opts.head_chars * 3 // 2,
                   short_markers=True, coverage_floor=LEAN_COVERAGE_FLOOR)


#: the share of a trace's text the lean rendering keeps at least (bar single lines longer
#: than ``max_line_chars``): 0.95 takes the 19 MAST human traces to 0.34x the tokens of a
#: whole-trace prompt at 0.96 mean coverage (bench/RESULTS.md, "Judge prompt v2.1")
LEAN_COVERAGE_FLOOR = 0.95


def render_for(template: Template, opts: RenderOptions) -> RenderOptions:
    return lean(opts) if template.render == "lean" else opts


#: render options added after cache keys were first made: left out of the key while at their
#: default, so a run of an unchanged prompt (v1) still finds the verdicts cached before them
_LATER_RENDER_FIELDS = ("short_markers", "coverage_floor", "floor_keep_chars")


def _render_key(render: RenderOptions) -> dict[str, Any]:
    d = asdict(render)
    for name in _LATER_RENDER_FIELDS:
        if d[name] == RenderOptions.__dataclass_fields__[name].default:
            del d[name]
    return d


def judge_params(*, temperature: float | None, max_tokens: int, render: RenderOptions, hints: bool,
                 examples: str | None = None) -> dict[str, Any]:
    """Everything besides model, prompt and taxonomy that changes the judge's answer
    (``examples``: the digest of a user's examples file; a folder's own examples are part of
    its prompt version)."""
    out = {"temperature": temperature, "max_tokens": max_tokens, "render": _render_key(render), "hints": hints}
    if examples:
        out["examples"] = examples
    return out


def cache_key(trace_id: str, messages: list[list[dict]], *, prompt_version: str, taxonomy: str,
              model: str | None, params: dict[str, Any]) -> str:
    """``j2-`` + 40 hex digits of SHA-256 over the run's identity, the reply shape and the
    exact messages (``j1-`` keys were made before the reply shape was part of the key)."""
    h = hashlib.sha256()
    h.update(json.dumps({"trace": trace_id, "prompt": prompt_version, "taxonomy": taxonomy, "model": model,
                         "params": params, "reply": REPLY_SHAPE}, sort_keys=True).encode())
    h.update(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return "j2-" + h.hexdigest()[:40]


def merge_outputs(outs: list[Output]) -> Output:
    """One Output (one transaction) for several traces' Outputs."""
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
        merged.tokens_cached += o.tokens_cached
        merged.cost_usd += o.cost_usd
    return merged


def load_judge_examples(template: Template, taxonomy, path: str | None) -> ExampleSet | None:
    """The user's examples file when given, else the prompt folder's own (None: no examples)."""
    if path:
        if not template.examples:
            raise UsageError(f"judge prompt {template.folder!r} shows no examples, so -C examples={path} would "
                             "change nothing", "Use a prompt with examples: -C prompt=v2.")
        return load_examples(path, taxonomy.mode_ids, user=True)
    if template.examples:
        return load_examples(template.examples, taxonomy.mode_ids, user=False)
    return None


class JudgeJobs:
    """One run's fixed configuration (model, prompt, taxonomy, parameters, prices) and
    the jobs made from it.  ``stats`` is updated as jobs are finished or served."""

    def __init__(self, *, model: str | None, prompt: str, taxonomy: str, temperature: float | None,
                 max_tokens: int, render: RenderOptions, hints: bool, batch: bool, prices: str | None,
                 annotator: str, session: str, stats: JudgeStats | None = None, mode: str = "json_schema",
                 examples: str | None = None):
        self.model = model
        #: the structured-output mode the run starts in: it decides the prompt, so the cache key
        self.mode = mode
        self.taxonomy = load_taxonomy(taxonomy)
        self.template: Template = load_template(prompt)
        self.examples: ExampleSet | None = load_judge_examples(self.template, self.taxonomy, examples)
        render = render_for(self.template, render)
        self.schema = reply_schema(self.taxonomy.mode_ids)
        self.price: Price = price_for(model or "", load_table(prices))
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.render = render
        self.hints = hints
        self.batch = batch            # Batch API prices for estimates and spent cost
        self.annotator = annotator
        self.session = session
        self.stats = stats if stats is not None else JudgeStats()
        self.params = judge_params(temperature=temperature, max_tokens=max_tokens, render=render, hints=hints,
                                   examples=self.examples.digest if self.examples and self.examples.user else None)

    @property
    def prompt_version(self) -> str:
        return self.template.version

    @property
    def taxonomy_version(self) -> str:
        return f"{self.taxonomy.id}@{self.taxonomy.version}"

    # -- traces -> jobs ---------------------------------------------------------------------
    def job(self, trace: Trace, hints: Sequence[str] = (), keep: Sequence[int] = ()) -> Job:
        """The job for one stored trace (as :meth:`mast.store.Store.load_traces` gives it);
        ``keep``: steps other classifiers point to (never capped)."""
        trace_id = trace.trace_id
        r = render_trace(trace.steps, trace.task, self.render, keep=keep)
        hints = list(hints)
        # Never an example drawn from the trace being judged: for_trace swaps it.
        shots = self.examples.for_trace(trace_id, self.taxonomy.mode_ids) if self.examples else []
        msgs = []
        for w, (text, (first, last)) in enumerate(zip(r.windows, r.window_steps), 1):
            msgs.append(build_messages(self.template, self.taxonomy, text, window=w, n_windows=len(r.windows),
                                       first_step=first, last_window_step=last, last_step=r.n_steps - 1,
                                       agents=r.agents, task=r.task, hints=hints, examples=shots))
        est_in = sum(message_tokens(with_mode(m, self.mode, self.schema)) for m in msgs)
        est_cost = self.price.cost(est_in, EXPECTED_OUTPUT_TOKENS * len(msgs), batch=self.batch)
        return Job(trace_id, r, msgs, self.key_for(trace_id, msgs, self.mode), est_in, est_cost)

    def key_for(self, trace_id: str, messages: list[list[dict]], mode: str) -> str:
        """The cache key of ``messages`` as sent in ``mode``."""
        sent = [with_mode(m, mode, self.schema) for m in messages]
        return cache_key(trace_id, sent, prompt_version=self.prompt_version, taxonomy=self.taxonomy_version,
                         model=self.model, params=self.params)

    def jobs_for(self, store, trace_ids: Sequence[str]) -> list[Job]:
        """The jobs of the stored ones of ``trace_ids``, in that order, from one read."""
        traces = store.load_traces(trace_ids)
        ids = [t.trace_id for t in traces]
        hints = storage.rule_hints(store, ids) if self.hints else {}
        keep = storage.pointed_steps(store, ids) if self.template.render == "lean" else {}
        return [self.job(t, hints.get(t.trace_id, []), sorted(keep.get(t.trace_id, ()))) for t in traces]

    def prepare(self, store, trace_ids: Sequence[str]) -> Iterator[Prepared]:
        """A job and its cache hit (or None) per stored trace, one chunk of the store at a time."""
        ids = list(trace_ids)
        for k in range(0, len(ids), CHUNK):
            jobs = self.jobs_for(store, ids[k:k + CHUNK])
            hits = storage.cache_get(store, [j.key for j in jobs])
            for job in jobs:
                yield Prepared(job, hits.get(job.key))

    def estimate(self, store, trace_ids: Sequence[str]) -> Estimate:
        """Expected tokens and cost of judging ``trace_ids``; sends nothing."""
        est = Estimate(self.model or "(none)", 0, 0, 0, 0, 0, 0, 0.0 if self.price.known else None, self.batch)
        for job, hit in self.prepare(store, trace_ids):
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

    # -- replies -> Outputs -------------------------------------------------------------------
    def parse(self, text: str | None, job: Job) -> Verdicts:
        """One window's reply as verdicts; raises :class:`~.reply.Unclassified` with the reason."""
        r = job.rendered
        return parse_reply(text, self.taxonomy.mode_ids, r.n_steps, r.agents)

    def from_cache(self, prepared: Prepared) -> Output:
        self.stats.cached += 1
        hit = prepared.hit
        return self._output(prepared.job.trace_id, Verdicts.from_json(hit["result"]), hit.get("coverage") or {},
                            0, 0, 0.0)

    def finish(self, store, results: Sequence[JobResult]) -> Output:
        """Store what ``results`` produced (failures, then cache rows in one statement) and
        return it as one Output."""
        outs: list[Output] = []
        rows: list[list] = []
        for res in results:
            out, row = self._finish_one(store, res)
            outs.append(out)
            if row is not None:
                rows.append(row)
        storage.cache_put_many(store, rows)
        return merge_outputs(outs)

    def _finish_one(self, store, res: JobResult) -> tuple[Output, list | None]:
        job = res.job
        tid = job.trace_id
        cost = self.price.cost(res.tokens_in, res.tokens_out, batch=self.batch)
        self.stats.tokens_in += res.tokens_in
        self.stats.tokens_out += res.tokens_out
        self.stats.tokens_cached += res.tokens_cached
        self.stats.cost_usd += cost
        if res.verdicts is None:
            self.stats.failed += 1
            storage.record_failure(store, trace_id=tid, session=self.session, model=self.model,
                                   prompt_version=self.prompt_version, kind=res.kind or "call_failed",
                                   reason=res.reason or "unknown", prompt=res.prompt, reply=res.reply)
            return Output(failed={tid: f"{res.kind}: {res.reason}"}, trace_ids=[tid], tokens_in=res.tokens_in,
                          tokens_out=res.tokens_out, cost_usd=cost, tokens_cached=res.tokens_cached), None
        self.stats.judged += 1
        cov = job.rendered.coverage.as_dict()
        # A run that fell back to the text mode mid-way asked with another prompt than its keys assumed.
        key = job.key if prompt_variant(res.mode or self.mode) == prompt_variant(self.mode) else \
            self.key_for(tid, job.messages, res.mode)
        row = storage.cache_row(key, trace_id=tid, model=self.model, prompt_version=self.prompt_version,
                                taxonomy=self.taxonomy_version, params=self.params,
                                result=res.verdicts.to_json(), coverage=cov, tokens_in=res.tokens_in,
                                tokens_out=res.tokens_out, cost_usd=cost if self.price.known else None,
                                tokens_cached=res.tokens_cached)
        out = self._output(tid, res.verdicts, cov, res.tokens_in, res.tokens_out, cost)
        out.tokens_cached = res.tokens_cached
        return out, row

    def _output(self, tid: str, v: Verdicts, coverage: dict, tokens_in: int, tokens_out: int,
                cost: float) -> Output:
        frac = coverage.get("fraction", 1.0) if coverage else 1.0
        note = f" (judge saw {frac:.0%} of the trace text)" if frac < 0.995 else ""
        ann = [Annotation(mode=m.mode, label=Label.PRESENT if m.present else Label.ABSENT,
                          annotator=self.annotator, taxonomy=self.taxonomy.id, confidence=m.confidence,
                          evidence_steps=list(m.evidence_steps), rationale=(m.rationale + note).strip(),
                          trace_id=tid)
               for m in v.modes.values()]
        att = []
        if v.root_cause and any(m.present for m in v.modes.values()):
            att.append(Attribution(annotator=self.annotator, agent=v.root_cause.agent, step=v.root_cause.step,
                                   rationale=v.root_cause.rationale, trace_id=tid))
        return Output(annotations=ann, attributions=att, trace_ids=[tid], tokens_in=tokens_in,
                      tokens_out=tokens_out, cost_usd=cost)
