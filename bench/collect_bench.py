"""`mast collect` throughput: the real OTLP/HTTP exporter against the endpoint, beside the HTTP ceiling.

    .venv/bin/python bench/collect_bench.py [--spans 60000] [--batch 512] [--threads 4]

Spans are made once by the OpenTelemetry SDK (two-agent runs of 8 spans with GenAI
attributes, distinct trace ids) and cut into batches of ``--batch`` (the
BatchSpanProcessor's default export size).  Then, paired in the same session:

1. raw HTTP ceiling: a standard-library ThreadingHTTPServer that reads each body and
   answers 200 (nothing decoded, nothing stored), fed by the same exporter;
2. decode only: the endpoint's protobuf decoding and checking of the same bodies, in-process;
3. ``mast collect`` (a subprocess on a temp store): every batch sent through
   ``OTLPSpanExporter.export`` from ``--threads`` threads; spans/s counts acknowledged
   (committed) spans; then the time until every trace is built and stored.

Needs the test extras (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http).
Prints one JSON object; record it in bench/RESULTS.md with `uptime`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parent.parent


def make_spans(n: int):
    mem = InMemorySpanExporter()
    p = TracerProvider(resource=Resource.create({"service.name": "bench-agents"}))
    p.add_span_processor(SimpleSpanProcessor(mem))
    tr = p.get_tracer("bench")
    for i in range(1, n // 8 + 2):
        i += 1
        with tr.start_as_current_span("invoke_workflow bench") as root:
            root.set_attribute("input.value", f"task {i}: plan a trip")
            for agent in ("planner", "reviewer"):
                with tr.start_as_current_span(f"invoke_agent {agent}") as a:
                    a.set_attribute("gen_ai.operation.name", "invoke_agent")
                    a.set_attribute("gen_ai.agent.name", agent)
                    with tr.start_as_current_span("chat gpt-4o-mini") as llm:
                        llm.set_attribute("gen_ai.operation.name", "chat")
                        llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                        llm.set_attribute("gen_ai.prompt.0.role", "user")
                        llm.set_attribute("gen_ai.prompt.0.content", f"task {i}: plan a trip " * 4)
                        llm.set_attribute("gen_ai.completion.0.role", "assistant")
                        llm.set_attribute("gen_ai.completion.0.content", "Here is the plan. " * 6)
                        llm.set_attribute("gen_ai.usage.input_tokens", 40)
                        llm.set_attribute("gen_ai.usage.output_tokens", 20)
                    with tr.start_as_current_span("execute_tool search") as t:
                        t.set_attribute("gen_ai.operation.name", "execute_tool")
                        t.set_attribute("gen_ai.tool.name", "search")
                        t.set_attribute("gen_ai.tool.call.arguments", '{"q": "trains"}')
                        t.set_attribute("gen_ai.tool.call.result", "3 trains found")
    return list(mem.get_finished_spans())[:n]


def send_all(endpoint: str, batches, threads: int) -> float:
    """Export every batch through real exporters (one per thread, as one per process would be)."""
    local = threading.local()

    def one(b):
        ex = getattr(local, "ex", None)
        if ex is None:
            ex = local.ex = OTLPSpanExporter(endpoint=endpoint, timeout=60)
        r = ex.export(b)
        if r is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"export failed: {r}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, batches))
    return time.perf_counter() - t0


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    t0 = time.perf_counter()
    spans = make_spans(a.spans)
    made = time.perf_counter() - t0
    batches = [spans[i:i + a.batch] for i in range(0, len(spans), a.batch)]
    n = len(spans)
    print(f"made {n} spans in {made:.1f}s", file=sys.stderr, flush=True)
    res: dict = {"spans": n, "batch": a.batch, "threads": a.threads, "sdk_make_s": round(made, 2),
                 "load_before": os.getloadavg()[0]}

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    dt = send_all(f"http://127.0.0.1:{httpd.server_address[1]}/v1/traces", batches, a.threads)
    httpd.shutdown()
    res["raw_http_spans_per_s"] = round(n / dt)
    print(f"raw http {res['raw_http_spans_per_s']} spans/s", file=sys.stderr, flush=True)

    from mast.ingest.collect import decode_request, rows_of
    bodies = [encode_spans(b).SerializeToString() for b in batches]
    t0 = time.perf_counter()
    for body in bodies:
        rows_of(decode_request(body))
    res["decode_check_spans_per_s"] = round(n / (time.perf_counter() - t0))
    print(f"decode {res['decode_check_spans_per_s']} spans/s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "mast", "-d", str(db), "collect", "--port", "0", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        line = proc.stderr.readline()
        port = re.search(r":(\d+)/v1/traces", line).group(1)
        stored = [0]
        done = threading.Event()
        want = len({s.context.trace_id for s in spans})

        def drain():
            for ln in proc.stderr:
                if ln.startswith("stored "):
                    stored[0] += 1
                    if stored[0] >= want:
                        done.set()

        threading.Thread(target=drain, daemon=True).start()
        t_send = time.perf_counter()
        dt = send_all(f"http://127.0.0.1:{port}/v1/traces", batches, a.threads)
        res["collect_ack_spans_per_s"] = round(n / dt)
        done.wait(600)
        res["collect_all_stored_s"] = round(time.perf_counter() - t_send, 2)
        res["collect_end_to_end_spans_per_s"] = round(n / (time.perf_counter() - t_send))
        res["traces"] = want
        proc.terminate()
        out, _ = proc.communicate(timeout=120)
        res["collect_summary"] = json.loads(out)
        res["store_mb"] = round(db.stat().st_size / 1e6, 1)
    res["load_after"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
