"""`mast collect` throughput: the real OTLP/HTTP exporters against the endpoint, beside the HTTP ceiling.

    .venv/bin/python bench/collect_bench.py [--spans 20000] [--batch 512] [--procs 2] [--threads 2]
        [--encoding protobuf|json|both] [--gzip] [--skip-raw] [--skip-replay]

Spans are made by the OpenTelemetry SDK (two-agent runs of 8 spans with GenAI
attributes, distinct trace ids) in ``--procs`` exporter processes, each exporting its
share in batches of ``--batch`` (the BatchSpanProcessor's ``max_export_batch_size``;
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` for a user) from ``--threads`` threads, through the
real exporter of each encoding: ``opentelemetry-exporter-otlp-proto-http`` (protobuf)
and ``opentelemetry-exporter-otlp-json-http`` (JSON); ``--gzip`` sets
``OTEL_EXPORTER_OTLP_COMPRESSION=gzip`` in the exporter processes, as a user would.
Spans/s is every span over the wall time from the first export to the last 200.
Paired in one session, each against a server process of its own:

1. raw HTTP ceiling: a standard-library ThreadingHTTPServer that reads each body and
   answers 200 (nothing decoded, nothing stored), fed by the same exporters;
2. ``mast collect`` (on a temp store): spans/s acknowledged (committed), then the time
   until every trace is built and stored (rules' features included);
3. replay (not the exporter): the same requests, encoded beforehand, posted by plain
   keep-alive HTTP clients, to show the receiver's own ceiling without the exporter's
   encoding cost.

The JSON exporter needs ``pip install opentelemetry-exporter-otlp-json-http`` (it pins
a matching proto-http exporter).  Prints one JSON object; record it in
bench/RESULTS.md with `uptime`.
"""

from __future__ import annotations

import argparse
import http.client
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

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()


def make_spans(n: int):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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


# -- an exporter process -------------------------------------------------------------

def child(a) -> int:
    """Make spans, wait for "go" on stdin, export them, print the wall-clock span of the export."""
    spans = make_spans(a.spans)
    batches = [spans[i:i + a.batch] for i in range(0, len(spans), a.batch)]
    traces = len({s.context.trace_id for s in spans})
    if a.mode == "replay":
        bodies = _bodies(batches, a.encoding, a.gzip)
    else:  # made (and their module imported) before the clock starts
        import queue
        exporters: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(a.threads):
            exporters.put(_exporter(a.endpoint, a.encoding))
    print(json.dumps({"ready": len(spans), "traces": traces}), flush=True)
    sys.stdin.readline()
    t0 = time.time()
    if a.mode == "replay":
        _replay(a.endpoint, bodies, a.threads, a.encoding, a.gzip)
    else:
        _export(exporters, batches, a.threads)
    print(json.dumps({"t0": t0, "t1": time.time()}), flush=True)
    return 0


def _exporter(endpoint: str, encoding: str):
    if encoding == "json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=endpoint, timeout=60)  # compression: OTEL_EXPORTER_OTLP_COMPRESSION


def _export(exporters, batches, threads: int) -> None:
    """Each batch through one of the exporters (one per thread, as one per process would be)."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    def one(b):
        ex = exporters.get()
        try:
            r = ex.export(b)
        finally:
            exporters.put(ex)
        if r is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"export failed: {r}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, batches))


def _bodies(batches, encoding: str, gz: bool) -> list[bytes]:
    import gzip
    if encoding == "json":
        from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
        out = [encode_spans(b).to_json().encode() for b in batches]
    else:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        out = [encode_spans(b).SerializeToString() for b in batches]
    return [gzip.compress(b) for b in out] if gz else out


def _replay(endpoint: str, bodies, threads: int, encoding: str, gz: bool) -> None:
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", endpoint)
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    headers = {"Content-Type": "application/json" if encoding == "json" else "application/x-protobuf"}
    if gz:
        headers["Content-Encoding"] = "gzip"
    local = threading.local()

    def one(body):
        for _ in range(100):  # 503 under back-pressure: retry after the server's delay, as exporters do
            c = getattr(local, "c", None)
            if c is None:
                c = local.c = http.client.HTTPConnection(host, port, timeout=60)
            c.request("POST", path, body, headers)
            r = c.getresponse()
            r.read()
            if r.will_close:
                c.close()
                local.c = None
            if r.status == 200:
                return
            if r.status != 503:
                raise RuntimeError(f"replay: HTTP {r.status}")
            time.sleep(float(r.getheader("Retry-After") or 1))
        raise RuntimeError("replay: still 503 after 100 tries")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, bodies))


# -- the raw HTTP ceiling's server -----------------------------------------------------

class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type") or "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def sink() -> int:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}/v1/traces", file=sys.stderr, flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), httpd.shutdown()), daemon=True).start()
    httpd.serve_forever()
    return 0


# -- the driver ------------------------------------------------------------------------

def run_clients(a, endpoint: str, encoding: str, mode: str) -> dict:
    """Start ``--procs`` exporter processes, let them make their spans, then export at once."""
    env = dict(os.environ)
    if a.gzip:
        env["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip"
    share = a.spans // a.procs
    procs = [subprocess.Popen([sys.executable, str(HERE), "--child", "--endpoint", endpoint, "--spans", str(share),
                               "--batch", str(a.batch), "--threads", str(a.threads), "--encoding", encoding,
                               "--mode", mode] + (["--gzip"] if a.gzip else []),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for _ in range(a.procs)]
    ready = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    spans = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait(timeout=60)
        if p.returncode:
            raise RuntimeError(f"exporter process failed ({p.returncode})")
    n = sum(r["ready"] for r in ready)
    dt = max(s["t1"] for s in spans) - min(s["t0"] for s in spans)
    return {"spans": n, "traces": sum(r["traces"] for r in ready), "seconds": round(dt, 2),
            "spans_per_s": round(n / dt)}


def measure_raw(a, encoding: str) -> dict:
    srv = subprocess.Popen([sys.executable, str(HERE), "--sink"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT)
    port = re.search(r":(\d+)/v1/traces", srv.stderr.readline()).group(1)
    try:
        return run_clients(a, f"http://127.0.0.1:{port}/v1/traces", encoding, "export")
    finally:
        srv.stdin.close()
        srv.wait(timeout=30)


def _cpu_s(pid: int) -> float:
    """User+sys CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (a build process hangs from the fork server, below it)."""
    sys.path.insert(0, str(HERE.parent))
    from ingest_bench import _children_map  # the harness's own /proc walk

    kids = _children_map()
    out, todo = [], list(kids.get(pid, []))
    while todo:
        k = todo.pop()
        out.append(k)
        todo += kids.get(k, [])
    return out


def _peak_rss_mb(pid: int) -> float | None:
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return round(int(m.group(1)) / 1024, 1) if m else None


def measure_collect(a, encoding: str, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "mast", "-d", str(db), "collect", "--port", "0", "--json",
                                 *a.collect_arg],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=a.code or ROOT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1",
                                         **({"PYTHONPATH": str(a.code)} if a.code else {})))
        port = re.search(r":(\d+)/v1/traces", proc.stderr.readline()).group(1)
        stored = [0]
        want = [None]
        done = threading.Event()
        t_first = [None]

        def drain():
            for ln in proc.stderr:
                if ln.startswith("stored "):
                    stored[0] += 1
                    if want[0] is not None and stored[0] >= want[0]:
                        done.set()

        threading.Thread(target=drain, daemon=True).start()
        t_first[0] = time.time()
        res = run_clients(a, f"http://127.0.0.1:{port}/v1/traces", encoding, mode)
        want[0] = res["traces"]
        if stored[0] >= want[0]:
            done.set()
        t_acked = time.time()
        done.wait(1800)
        # from the first export (the clients' own clock is the same wall clock)
        res["all_stored_after_last_ack_s"] = round(time.time() - t_acked, 2)
        res["end_to_end_spans_per_s"] = round(res["spans"] / (res["seconds"] + time.time() - t_acked))
        # the server's CPU (user+sys, all its threads) until every trace was stored: on a
        # shared machine, wall time is mostly waiting for a core
        res["server_cpu_s"] = _cpu_s(proc.pid)
        res["server_cpu_us_per_span"] = round(res["server_cpu_s"] / res["spans"] * 1e6, 1)
        # with its build process (and the fork server that started it)
        below = []
        for k in _descendants(proc.pid):
            try:
                below.append((_cpu_s(k), _peak_rss_mb(k) or 0.0))
            except OSError:
                pass
        res["server_tree_cpu_us_per_span"] = round((res["server_cpu_s"] + sum(c for c, _ in below))
                                                   / res["spans"] * 1e6, 1)
        res["build_process_peak_rss_mb"] = max((m for _, m in below), default=None)
        # peak resident memory: bounded by the queue and one build batch, not by the spans
        res["server_peak_rss_mb"] = _peak_rss_mb(proc.pid)
        proc.terminate()
        out = proc.stdout.read()
        # and with its shutdown (the last checkpoint writes what the WAL still holds): the
        # server's own rusage, reaped here
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        res["server_cpu_with_close_us_per_span"] = round((ru.ru_utime + ru.ru_stime) / res["spans"] * 1e6, 1)
        res["summary"] = json.loads(out)
        res["store_mb"] = round(db.stat().st_size / 1e6, 1)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--encoding", choices=["protobuf", "json", "both"], default="both")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--skip-raw", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--code", type=Path, default=None,
                    help="run the `mast collect` of this checkout (a before/after pair)")
    ap.add_argument("--collect-arg", action="append", default=[],
                    help="an argument for `mast collect` (repeat), e.g. --collect-arg=--build-processes=0")
    # internal: the exporter and sink processes
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="export", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if a.sink:
        return sink()
    res: dict = {"spans": a.spans, "batch": a.batch, "procs": a.procs, "threads": a.threads, "gzip": a.gzip,
                 "runs": {}}
    for enc in (["protobuf", "json"] if a.encoding == "both" else [a.encoding]):
        runs = [("raw_http", lambda: measure_raw(a, enc))] if not a.skip_raw else []
        runs.append(("collect", lambda: measure_collect(a, enc, "export")))
        if not a.skip_replay:
            runs.append(("collect_replay", lambda: measure_collect(a, enc, "replay")))
        for name, fn in runs:
            before = os.getloadavg()[0]
            r = fn()
            r["load_before"], r["load_after"] = before, os.getloadavg()[0]
            res["runs"][f"{enc} {name}"] = r
            print(f"{enc} {name}: {r['spans_per_s']} spans/s (load {before:.1f}-{r['load_after']:.1f})",
                  file=sys.stderr, flush=True)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
