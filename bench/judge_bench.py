"""Judge benchmark: throughput against a local server, and prompt cost against the MAST reference.

1. Throughput: ``--traces`` (2,000) synthetic multi-agent traces in a fresh store, judged
   through :func:`mast.classify.runner.run` (each trace committed on its own) against
   ``tests/_openai_server.py`` started as a separate process with a fixed ``--latency``
   (0.3 s), at ``--concurrency`` 32.  Target: >= 0.8 x concurrency / latency traces/s.
2. Cost: prompt tokens per trace for the 19 traces of the MAST human file
   (../shared/datasets/mast-human), ours (every window exactly as the judge would send
   it) versus the MAST reference approach: one prompt with the whole raw trace, the full
   definitions and a few-shot block.  Both counted with the same estimator
   (:func:`mast.classify.judge.prices.estimate_tokens`, ceil(chars/4)).

The reference prompt is built here (``reference_prompt``) because the MAST authors'
prompt text is not part of the data set:
- instructions: a paraphrase of "read the whole trace, answer yes/no for each mode, then
  summarise", ~1 kB;
- full definitions: for each of the 14 modes, the definition the human annotators saw
  (embedded in the MAD human file's final-code records) plus mast-v1's definition and
  evidence text;
- few-shot: one worked example per mode, a 1,500-character excerpt of a MAD human trace
  whose majority label has the mode (any trace when none does) with its yes/no answer line.

Run: ``.venv/bin/python bench/judge_bench.py`` (``--skip-throughput`` / ``--skip-cost``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAD_HUMAN = ROOT.parent / "shared" / "datasets" / "mast-human" / "MAD_human_labelled_dataset.json"
sys.path.insert(0, str(ROOT))


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "_openai_server.py"), "--latency", str(latency)],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("READY "):
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return p, line.split(" ", 1)[1]


def synthetic_traces(n: int):
    from mast.model import Step, StepKind, Trace

    agents = ["planner", "coder", "executor", "reviewer"]
    out = []
    for i in range(n):
        steps = [Step("user", f"Task {i}: compute the checksum of dataset shard {i} and report it.", role="user")]
        for k in range(9):
            a = agents[k % 4]
            kind = StepKind.TOOL_RESULT if a == "executor" else StepKind.MESSAGE
            steps.append(Step(a, f"{a} turn {k} on task {i}: " + ("ran the script, exit code 0, output 0x%08x" % (i * 2654435761 % 2**32)
                                                                 if kind == StepKind.TOOL_RESULT else
                                                                 f"next I will check shard {i} part {k} carefully."),
                              kind=kind))
        out.append(Trace("bench-mas", "synthetic", "generic", "bench", i, steps, task=f"checksum shard {i}"))
    return out


def throughput(n: int, concurrency: int, latency: float) -> dict:
    from mast.classify import create
    from mast.classify.runner import Selection, run
    from mast.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    db = tmp / "bench.duckdb"
    with Store(db) as st, st.transaction():
        st.write_traces(synthetic_traces(n))
    proc, url = start_server(latency)
    try:
        clf = create("judge", model="gpt-4o-mini", base_url=url, concurrency=concurrency, timeout=30)
        with Store(db) as st:
            srv0 = _proc_cpu(proc.pid)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            res = run(st, clf, Selection())
            dt = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            srv = _proc_cpu(proc.pid) - srv0
            clf2 = create("judge", model="gpt-4o-mini", base_url=url, concurrency=concurrency)
            t1 = time.perf_counter()
            res2 = run(st, clf2, Selection())
            dt2 = time.perf_counter() - t1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"traces": n, "done": res.done, "failed": res.failed, "seconds": dt, "per_s": res.done / dt,
            "target_per_s": 0.8 * concurrency / latency, "ideal_per_s": concurrency / latency,
            "tokens_in": res.tokens_in, "tokens_out": res.tokens_out, "cost_usd": res.cost_usd,
            "rerun_seconds": dt2, "rerun_cached": clf2.stats.cached, "rerun_requests": clf2.stats.requests,
            "load": os.getloadavg()[0], "client_cpu_ms": 1000 * cpu / n, "server_cpu_ms": 1000 * srv / n}


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_only(n: int, concurrency: int, latency: float) -> dict:
    """The bare ``openai`` client (our retry wrapper, no store, no rendering) against the same
    server: the ceiling this machine allows right now, to read the judge's figure against."""
    import asyncio
    import random

    import openai

    from mast.classify.judge.client import Capabilities, Policy, chat

    proc, url = start_server(latency)
    msgs = [{"role": "system", "content": "x" * 6000 + "\n1.1 | a\nvalid step numbers are 0 to 9"},
            {"role": "user", "content": "BEGIN TRACE DATA ab\n[0] a message: hi\nEND TRACE DATA ab"}]

    async def main() -> float:
        c = openai.AsyncOpenAI(api_key="unused", base_url=url, max_retries=0)
        sem = asyncio.Semaphore(concurrency)
        pol, caps, rng = Policy(), Capabilities(), random.Random(0)

        async def one():
            async with sem:
                await chat(c, "m", msgs, {}, temperature=0, max_tokens=100, policy=pol, caps=caps, rng=rng)

        t = time.perf_counter()
        await asyncio.gather(*[one() for _ in range(n)])
        return time.perf_counter() - t

    try:
        dt = asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"requests": n, "seconds": dt, "per_s": n / dt, "load": os.getloadavg()[0]}


def reference_prompt(record: dict, records: list[dict], taxonomy) -> str:
    intro = (
        "Below is the execution trace of a multi-agent system. Read all of it and analyse the failure modes "
        "and inefficiencies it shows, using the definitions of the Multi-Agent System Failure Taxonomy and the "
        "examples given below. For every failure mode answer yes or no on its own line in the form "
        "'<code> <name>: yes|no'. Then give a short summary of what went wrong and say whether the task was "
        "completed (yes/no). Be careful: a failure mode is present only when the trace shows it; consider the "
        "conversation from the first turn to the last, including the final answer and any verification steps, "
        "and the role each agent was given. The definitions come first, then the examples, then the trace.\n\n")
    annot_defs = {}
    for r in records:
        if r["round"].lower().startswith("gener"):
            for a in r["annotations"]:
                code = a["failure mode"].split()[0]
                annot_defs[code] = a["failure mode"]
    defs = ["DEFINITIONS"]
    for m in taxonomy.modes:
        defs.append(f"{annot_defs.get(m.id, m.id + ' ' + m.name)}\n{m.definition}\nEvidence: {m.evidence}\n")
    shots = ["EXAMPLES"]
    for m in taxonomy.modes:
        src = next((r for r in records if r["round"].lower().startswith("gener") and any(
            a["failure mode"].startswith(m.id + " ") and sum(a[f"annotator_{k}"] for k in (1, 2, 3)) >= 2
            for a in r["annotations"])), records[len(shots) % len(records)])
        text = src["trace"] if isinstance(src["trace"], str) else json.dumps(src["trace"])
        shots.append(f"Example for {m.id} {m.name}:\n{text[:1500]}\nAnswer: {m.id} {m.name}: yes\n")
    trace = record["trace"] if isinstance(record["trace"], str) else json.dumps(record["trace"])
    return intro + "\n".join(defs) + "\n" + "\n".join(shots) + "\nTRACE\n" + trace + "\nANSWERS\n"


def served_cache(jobs: list) -> dict:
    """Send every window, in record order, to the loopback server, which reports
    ``usage.prompt_tokens_details.cached_tokens`` by the longest prefix shared with an
    earlier request (OpenAI's rule: from 1,024 tokens, in steps of 128); sum what it says."""
    import openai

    proc, url = start_server(0.0)
    try:
        c = openai.OpenAI(api_key="unused", base_url=url, max_retries=0)
        prompt = cached = 0
        for job in jobs:
            for msgs in job.messages:
                u = c.chat.completions.create(model="m", messages=msgs, max_tokens=10).usage
                prompt += u.prompt_tokens
                cached += (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"prompt_tokens": prompt, "cached_tokens": cached, "share": cached / prompt if prompt else 0.0}


def cost(window_tokens: int, max_step_chars: int, prompt: str = "v1", rules: bool = False) -> dict:
    from mast.classify import create
    from mast.classify.judge.prices import estimate_tokens, message_tokens
    from mast.model import Trace
    from mast.store import Store
    from mast.taxonomy import load

    records = json.loads(MAD_HUMAN.read_text(encoding="utf-8"))
    tax = load()
    tmp = Path(tempfile.mkdtemp(prefix="judge-cost-"))
    db = tmp / "mad.duckdb"
    subprocess.run([sys.executable, "-m", "mast", "-d", str(db), "ingest", str(MAD_HUMAN)], check=True,
                   capture_output=True, cwd=ROOT)
    if rules:
        # The rules' findings become hints (and, for a lean prompt, steps never capped).
        subprocess.run([sys.executable, "-m", "mast", "-d", str(db), "classify", "--with", "rules"], check=True,
                       capture_output=True, cwd=ROOT)
    clf = create("judge", model="gpt-4o-mini", window_tokens=window_tokens, max_step_chars=max_step_chars,
                 prompt=prompt)
    jobs = clf.jobs()
    rows = []
    with Store(db) as st:
        meta = {tid: json.loads(m) for tid, m in st.fetchall("SELECT trace_id, metadata FROM traces")}
        by_index = {(m.get("trace_id")): tid for tid, m in meta.items()}
        jobs_by_id = {j.trace_id: j for j in jobs.jobs_for(st, list(meta))}
        traces = {t.trace_id: t for t in st.load_traces(list(meta))}
        systems: set[str] = set()
        for rec in records:
            tid = by_index[rec["trace_id"]]
            job = jobs_by_id[tid]
            ours = sum(message_tokens(m) for m in job.messages)
            # With prefix caching a system message already sent is billed once: the
            # cache-adjusted count leaves out the repeats of one seen before.
            fresh = 0
            for m in job.messages:
                fresh += message_tokens(m[1:])
                if m[0]["content"] not in systems:
                    systems.add(m[0]["content"])
                    fresh += message_tokens(m[:1])
            swapped = sum(e.source_trace == tid for e in jobs.examples.examples) if jobs.examples else 0
            ref = estimate_tokens(reference_prompt(rec, records, tax)) + 4
            raw = rec["trace"] if isinstance(rec["trace"], str) else json.dumps(rec["trace"])
            rows.append({"trace": rec["trace_id"], "system": rec["mas_name"], "steps": len(traces[tid].steps),
                         "raw_chars": len(raw), "ours": ours, "reference": ref, "ratio": ours / ref,
                         "ours_cached": fresh, "swapped": swapped,
                         "windows": len(job.messages), "coverage": job.rendered.coverage.fraction})
    total_ours = sum(r["ours"] for r in rows)
    total_ref = sum(r["reference"] for r in rows)
    fixed_ours = message_tokens(jobs.job(Trace(None, None, "bench", "", 0, trace_id="x")).messages[0][:1])
    ref_fixed = estimate_tokens(reference_prompt({"trace": ""}, records, tax))
    total_cached = sum(r["ours_cached"] for r in rows)
    served = served_cache([jobs_by_id[by_index[rec["trace_id"]]] for rec in records])
    return {"rows": rows, "total_ours": total_ours, "total_cached": total_cached,
            "ratio_cached": total_cached / total_ref, "prompt": prompt, "rules": rules,
            "distinct_systems": len(systems), "served": served, "total_ref": total_ref, "ratio_total": total_ours / total_ref,
            "ratio_median": statistics.median(r["ratio"] for r in rows), "fixed_ours": fixed_ours,
            "fixed_ref": ref_fixed, "window_tokens": window_tokens, "max_step_chars": max_step_chars,
            "coverage_mean": statistics.mean(r["coverage"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--window-tokens", type=int, default=50_000)
    ap.add_argument("--max-step-chars", type=int, default=8_000)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--prompt", default="v1", help="judge prompt folder for the cost figures (v1, v2)")
    ap.add_argument("--rules", action="store_true", help="run the rules first (hints; protected steps for v2)")
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--client-only", action="store_true", help="also time the bare client (the machine's ceiling)")
    args = ap.parse_args()
    if not args.skip_throughput:
        t = throughput(args.traces, args.concurrency, args.latency)
        print(f"throughput: {t['done']}/{t['traces']} traces ({t['failed']} failed) in {t['seconds']:.1f} s = "
              f"{t['per_s']:.1f} traces/s (target {t['target_per_s']:.1f}, ideal {t['ideal_per_s']:.1f}); "
              f"rerun from cache {t['rerun_seconds']:.1f} s, {t['rerun_cached']} cached, "
              f"{t['rerun_requests']} requests; load {t['load']:.1f}; CPU per trace: judge process "
              f"{t['client_cpu_ms']:.1f} ms, server {t['server_cpu_ms']:.1f} ms")
    if args.client_only:
        b = client_only(args.traces, args.concurrency, args.latency)
        print(f"bare client: {b['requests']} requests in {b['seconds']:.1f} s = {b['per_s']:.1f}/s; "
              f"load {b['load']:.1f}")
    if not args.skip_cost:
        c = cost(args.window_tokens, args.max_step_chars, args.prompt, args.rules)
        print("trace system steps raw_chars ours reference ratio windows coverage ours_cache_adjusted swapped")
        for r in c["rows"]:
            print(f"{r['trace']:>2} {r['system']:<10} {r['steps']:>5} {r['raw_chars']:>8,} {r['ours']:>8,} "
                  f"{r['reference']:>8,} {r['ratio']:.3f} {r['windows']:>2} {r['coverage']:.3f} "
                  f"{r['ours_cached']:>8,} {r['swapped']}")
        print(f"total ours {c['total_ours']:,} vs reference {c['total_ref']:,} tokens: ratio {c['ratio_total']:.3f}, "
              f"median per-trace ratio {c['ratio_median']:.3f}; fixed part per request ours {c['fixed_ours']:,}, "
              f"reference {c['fixed_ref']:,} (window budget {c['window_tokens']:,} tokens, step cap "
              f"{c['max_step_chars']:,} chars; mean coverage {c['coverage_mean']:.3f}); prompt {c['prompt']}"
              f"{' with rules run first' if c['rules'] else ''}; cache-adjusted (each distinct system message billed "
              f"once; {c['distinct_systems']} distinct) {c['total_cached']:,} tokens: ratio {c['ratio_cached']:.3f}")
        sv = c["served"]
        print(f"prefix-caching loopback server: {sv['cached_tokens']:,} of {sv['prompt_tokens']:,} prompt tokens "
              f"reported cached ({sv['share']:.1%}); uncached {sv['prompt_tokens'] - sv['cached_tokens']:,} = "
              f"{(sv['prompt_tokens'] - sv['cached_tokens']) / c['total_ref']:.3f} x reference")


if __name__ == "__main__":
    main()
