"""The judge as a classifier (:mod:`mast.classify.contract`): its options, what it
covers, the arguments that reproduce a run, its estimate and run summary, and
:meth:`JudgeClassifier.classify`, which hands the run to :mod:`.online` or :mod:`.batch`
with one :class:`~.jobs.JudgeJobs` built from the options.

Settings (model, endpoint, key, price table) arrive as options filled from
:class:`mast.settings.Settings` by the registry; the API key alone may still be taken
from :func:`mast.settings.current` when none was given, and is never stored.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict
from typing import Any, Callable, Iterator, Sequence

from mast.classify.contract import ClassifierBase, Option, Output, flag
from mast.classify.judge.batch import run_batch
from mast.classify.judge import storage
from mast.classify.judge.client import Capabilities, Policy, open_client
from mast.classify.judge.jobs import Estimate, JudgeJobs, JudgeStats, render_options
from mast.classify.judge.online import Limits, run_online
from mast.classify.judge.prompt import DEFAULT_PROMPT, EXAMPLES_PROMPT, load_template
from mast.classify.judge.structured import CHOICES, Negotiation, check_choice
from mast.errors import UsageError
from mast.settings import current as current_settings
from mast.taxonomy import DEFAULT_TAXONOMY

VERSION = "1.0"


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
        Option("trace_deadline", "Seconds one trace may take in all (windows, retries, waits); 0: no limit.",
               parse=float),
        Option("run_deadline", "Seconds the run may take; then no trace starts and those in flight fail; "
                               "0: no limit.", parse=float),
        Option("grace", "After Ctrl-C, seconds to wait for the replies in flight (they are stored).",
               parse=float),
        Option("progress_every", "Seconds between progress lines while waiting for replies.", parse=float),
        Option("stop_after_failures", "Stop starting traces once this many calls failed in a row before any "
                                      "succeeded (the endpoint looks down); 0: never.", parse=int),
        Option("max_retries", "Retries per request.", parse=int),
        Option("prompt", "Prompt version (a folder of classifiers/judge): v1, or v2 (few-shot, leaner, "
                         "prefix-cacheable)."),
        Option("examples", "Few-shot examples file (mast-judge-examples JSON, e.g. from `mast labels examples`) "
                           "instead of the prompt's own; needs a prompt with examples (v2, chosen when no prompt "
                           "is given).", setting="judge_examples"),
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
        Option("max_wait", "Longest single wait, seconds: backoff is capped there, and a longer Retry-After "
                           "fails the trace.", parse=float),
        Option("seed", "Seed of the retry jitter.", parse=int),
        Option("response_format", "Structured output: " + ", ".join(CHOICES) + " (auto: the strongest the "
                                  "endpoint takes, remembered per endpoint and model).",
               setting="judge_response_format"),
    )

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int | None = 8, budget: float | None = None, batch: bool | str = False,
                 timeout: float | None = 120.0, max_retries: int | None = 4, prompt: str | None = None,
                 taxonomy: str = DEFAULT_TAXONOMY, temperature: float | None = 0.0, max_tokens: int = 2000,
                 window_tokens: int = 50_000, max_step_chars: int = 8_000, hints: bool = True,
                 prices: str | None = None, poll_interval: float = 15.0, poll_timeout: float | None = None,
                 batch_id: str | None = None, base_wait: float = 0.5, max_wait: float = 60.0, seed: int | None = None,
                 trace_deadline: float | None = 300.0, run_deadline: float | None = None, grace: float = 10.0,
                 progress_every: float = 15.0, stop_after_failures: int | None = 8,
                 response_format: str | None = "auto", examples: str | None = None):
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
        self.examples = examples or None
        # Own examples need a prompt that shows examples: without a prompt named, that is v2.
        self.prompt = prompt or (EXAMPLES_PROMPT if self.examples else DEFAULT_PROMPT)
        self.taxonomy_id = taxonomy
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.window_tokens = window_tokens
        self.render_opts = render_options(max_step_chars, window_tokens)
        self.hints = hints
        self.prices_path = prices
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.rng = random.Random(seed)
        # 0 (or None) switches a deadline off; a negative one is a mistake worth stopping for.
        for name, v in (("trace_deadline", trace_deadline), ("run_deadline", run_deadline), ("grace", grace),
                        ("progress_every", progress_every), ("stop_after_failures", stop_after_failures)):
            if v is not None and v < 0:
                raise UsageError(f"option {name}={v:g}: must be 0 or more seconds")
        self.limits = Limits(trace_deadline=trace_deadline or None, run_deadline=run_deadline or None,
                             grace=float(grace or 0.0), progress_every=float(progress_every or 0.0),
                             stop_after_failures=int(stop_after_failures or 0) or None)
        #: called with a line of progress while the run waits (the CLI prints it on stderr)
        self.on_progress: Callable[[str], None] | None = None
        self.response_format = check_choice(response_format)
        self.caps = Capabilities(formats=Negotiation.start(self.response_format))
        self.stats = JudgeStats()
        self._remembered: str | None = None   # the mode judge_endpoints holds for this endpoint
        self.session = uuid.uuid4().hex[:12]
        # A bad prompt folder or examples file stops here, before a run is recorded.
        self._jobs0 = self.jobs(need_model=False)

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
                "max_retries": self.policy.max_retries, "trace_deadline": self.limits.trace_deadline,
                "run_deadline": self.limits.run_deadline, "response_format": self.response_format}

    def params(self) -> dict[str, Any]:
        """Everything besides model, prompt and taxonomy that changes the judge's answer."""
        return self._jobs0.params

    def run_details(self) -> dict[str, Any]:
        return {"judge": asdict(self.stats)}

    def run_notes(self) -> list[str]:
        notes = []
        if self.stats.response_format_how:
            notes.append(f"judge: {self.stats.response_format_how}")
        if self.stats.budget_stopped:
            notes.append(f"budget reached: {self.stats.skipped_budget} trace(s) not started")
        if self.stats.failing_stopped:
            notes.append(f"the first {self.limits.stop_after_failures} trace(s) all failed their calls: "
                         f"{self.stats.skipped_failing} trace(s) not started (the endpoint looks down; "
                         "-C stop_after_failures=0 tries every trace)")
        if self.stats.deadline_stopped:
            notes.append(f"run deadline of {self.limits.run_deadline:g} s reached: {self.stats.skipped_deadline} "
                         "trace(s) not started (raise -C run_deadline, or rerun: finished traces are cached)")
        return notes

    def jobs(self, *, need_model: bool = True, stats: JudgeStats | None = None) -> JudgeJobs:
        """The jobs API for this classifier's options (loads taxonomy, prompt and prices)."""
        if need_model and not self.model:
            raise UsageError("no judge model given", "Pass --model NAME or set MAST_JUDGE_MODEL.")
        return JudgeJobs(model=self.model, prompt=self.prompt, taxonomy=self.taxonomy_id,
                         temperature=self.temperature, max_tokens=self.max_tokens, render=self.render_opts,
                         hints=self.hints, batch=self.batch, prices=self.prices_path, annotator=self.annotator,
                         session=self.session, stats=stats, mode=self.caps.formats.mode, examples=self.examples)

    def estimate(self, store, trace_ids: Sequence[str]) -> Estimate:
        """Expected tokens and cost of judging ``trace_ids``; sends nothing."""
        self._start_formats(store)
        return self.jobs(need_model=False).estimate(store, list(trace_ids))

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        self._start_formats(store)
        jobs = self.jobs(stats=JudgeStats(traces=len(trace_ids)))
        self.stats = jobs.stats
        self.stats.cost_known = jobs.price.known
        if self.budget is not None and not jobs.price.known:
            raise UsageError(f"--budget needs a price for model {self.model!r}",
                             "Add it to a price table and point MAST_JUDGE_PRICES at it.")
        if self.batch:
            outputs = run_batch(jobs, store, list(trace_ids), self._client(sync=True), caps=self.caps,
                                batch_id=self.batch_id, poll_interval=self.poll_interval,
                                poll_timeout=self.poll_timeout)
        else:
            outputs = run_online(jobs, store, list(trace_ids), self._client(), concurrency=self.concurrency,
                                 budget=self.budget, policy=self.policy, caps=self.caps, rng=self.rng,
                                 limits=self.limits, progress=self.on_progress)
        try:
            for out in outputs:
                self._remember_format(store)
                yield out
        finally:
            f = self.caps.formats
            self.stats.response_format = f.mode
            # A run served wholly from the cache asked the endpoint nothing: nothing to say.
            self.stats.response_format_how = f.describe() if f.confirmed or f.refused else None

    def _start_formats(self, store) -> None:
        """Start from the mode this endpoint and model took last time (auto), so a run is
        not refused again for what an earlier one learned; the mode decides the cache key."""
        self._remembered = storage.endpoint_mode(store, self.base_url, self.model) if self.model else None
        self.caps.formats = Negotiation.start(self.response_format, self._remembered)

    def _remember_format(self, store) -> None:
        """Store the mode an auto run found, as soon as a reply has confirmed it (a forced
        mode says what the user wants, not what the endpoint takes)."""
        f = self.caps.formats
        if f.forced or not f.confirmed or f.mode == self._remembered:
            return
        storage.remember_endpoint_mode(store, self.base_url, self.model, f.mode, f.refused)
        self._remembered = f.mode

    def _client(self, sync: bool = False):
        key = self._api_key or current_settings().api_key
        if not key:
            if not self.base_url:
                raise UsageError("no API key", "Set OPENAI_API_KEY, or point --base-url at a local endpoint.")
            key = "unused"  # local servers (vLLM, Ollama) accept any key
        return open_client(api_key=key, base_url=self.base_url, policy=self.policy, sync=sync)
