"""LLM-judge classifier: any OpenAI-compatible endpoint, evidence per mode, cached,
resumable, cost-bounded.  This module only hands names on.

Contract (on top of :mod:`mast.classify`):
- ``create("judge", model=..., base_url=..., concurrency=..., budget=..., batch=...,
  timeout=..., max_retries=..., prompt="v1", ...)``; ``model`` defaults to
  ``MAST_JUDGE_MODEL``, ``base_url`` to ``OPENAI_BASE_URL``, the key to
  ``OPENAI_API_KEY`` (all through :mod:`mast.settings`; a local endpoint given by
  ``base_url`` may run without a key).
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
- Structured output: ``response_format="auto"`` (default) starts in the mode the
  endpoint and model took last time (``judge_endpoints``), else ``json_schema``, and
  steps down once per mode the endpoint refuses (``json_object`` + schema, then the
  schema in the prompt); a forced mode never steps down.  The run summary says which
  mode was used and why; replies are validated the same way in every mode.
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

Where things are, each module depending only on those listed before it:
:mod:`.transcript` (a stored trace as step-numbered text, windows, coverage),
:mod:`.prompt` (templates in ``classifiers/judge/<version>/``, reply schema, messages),
:mod:`.reply` (validate and merge replies), :mod:`.prices` (token estimates, prices),
:mod:`.storage` (the judge's SQL), :mod:`.structured` (structured-output modes: json_schema,
json_object + schema, the schema in the prompt, and their negotiation with an endpoint),
:mod:`.client` (one chat request with retries),
:mod:`.jobs` (traces -> jobs, replies -> Outputs, cache, estimate),
:mod:`.online` (the concurrent loop with budget), :mod:`.batch` (the Batch API),
:mod:`.classifier` (the contract, dispatching to online or batch).
"""

from mast.classify.judge.batch import BatchPending
from mast.classify.judge.classifier import VERSION, JudgeClassifier
from mast.classify.judge.jobs import (EXPECTED_OUTPUT_TOKENS, Estimate, Job, JobResult, JudgeJobs, JudgeStats,
                                      Prepared)

__all__ = ["BatchPending", "EXPECTED_OUTPUT_TOKENS", "Estimate", "Job", "JobResult", "JudgeClassifier",
           "JudgeJobs", "JudgeStats", "Prepared", "VERSION"]
