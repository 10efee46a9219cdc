"""What the real OpenTelemetry Python exporter can send on this machine, and where its time goes.

    .venv/bin/python bench/collect_ceiling.py [--spans 40000] [--batch 4096] [--procs 1,2,3]
        [--encoding protobuf,json] [--via export,bsp] [--target sink,collect] [--skip-phases]

Spans are made by the SDK beforehand (the two-agent runs of ``collect_bench.py``), in
each exporter process, before the clock starts; then each process sends its share:

- ``export``: ``OTLPSpanExporter.export(batch)`` called directly, batch after batch, from
  one thread (the BatchSpanProcessor's worker is one thread too);
- ``bsp``: every span handed to a ``BatchSpanProcessor`` (``on_end``, as a span ending in
  the application does) with ``max_export_batch_size=--batch`` and a queue that holds
  them all, then ``force_flush``.

Targets: ``sink`` (a standard-library ThreadingHTTPServer that reads the body and
answers 200: the raw HTTP ceiling) and ``collect`` (``mast collect`` on a temp store;
spans/s acknowledged, i.e. committed).  Spans/s is all spans over first send → last 200;
"client CPU" the exporter processes' user+sys during the send, per span; "server CPU"
the server process's over the same interval.

Phases (``--skip-phases`` to leave out): one process, one batch size, each phase of
``export`` timed alone by CPU: the SDK's ``encode_spans`` (ReadableSpan → protobuf
message objects, in Python), ``SerializePartialToString`` (C) or the JSON exporter's
``to_json``, and the HTTP send of the encoded body through the exporter's own client
(``requests`` / urllib3) to the sink.

Prints one JSON object; record it in bench/RESULTS.md with `uptime`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_bench import _cpu_s, make_spans, sink  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()


def _exporter(endpoint: str, encoding: str):
    if encoding == "json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=endpoint, timeout=120)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(a) -> int:
    """Make spans, wait for "go", send them, print wall and CPU of the send."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    spans = make_spans(a.spans)
    ex = _exporter(a.endpoint, a.encoding)
    bsp = None
    if a.via == "bsp":
        bsp = BatchSpanProcessor(ex, max_queue_size=len(spans) + 1, max_export_batch_size=a.batch,
                                 schedule_delay_millis=50, export_timeout_millis=120_000)
    batches = [spans[i:i + a.batch] for i in range(0, len(spans), a.batch)]
    print(json.dumps({"ready": len(spans)}), flush=True)
    sys.stdin.readline()
    c0, t0 = _cpu(), time.time()
    if bsp is None:
        for b in batches:
            if ex.export(b) is not SpanExportResult.SUCCESS:
                raise RuntimeError("export failed")
    else:
        for s in spans:
            bsp.on_end(s)
        if not bsp.force_flush(600_000):
            raise RuntimeError("force_flush timed out")
    t1, c1 = time.time(), _cpu()
    print(json.dumps({"t0": t0, "t1": t1, "cpu": c1 - c0}), flush=True)
    if bsp is not None:
        bsp.shutdown()
    return 0


def _start_sink() -> tuple[subprocess.Popen, str]:
    srv = subprocess.Popen([sys.executable, str(HERE), "--sink"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT)
    port = re.search(r":(\d+)/v1/traces", srv.stderr.readline()).group(1)
    return srv, f"http://127.0.0.1:{port}/v1/traces"


def _start_collect(tmp: str) -> tuple[subprocess.Popen, str]:
    db = Path(tmp) / "bench.duckdb"
    srv = subprocess.Popen([sys.executable, "-m", "mast", "-d", str(db), "collect", "--port", "0", "--json",
                            "--queue", "256"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))
    port = re.search(r":(\d+)/v1/traces", srv.stderr.readline()).group(1)
    import threading
    threading.Thread(target=lambda: [None for _ in srv.stderr], daemon=True).start()  # keep its pipe drained
    return srv, f"http://127.0.0.1:{port}/v1/traces"


def run(a, procs: int, encoding: str, via: str, target: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        srv, endpoint = _start_sink() if target == "sink" else _start_collect(tmp)
        try:
            share = a.spans // procs
            kids = [subprocess.Popen([sys.executable, str(HERE), "--child", "--endpoint", endpoint, "--spans", str(share),
                                      "--batch", str(a.batch), "--encoding", encoding, "--via", via],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
                    for _ in range(procs)]
            n = sum(json.loads(k.stdout.readline())["ready"] for k in kids)
            load = os.getloadavg()[0]
            s0 = _cpu_s(srv.pid)
            for k in kids:
                k.stdin.write("go\n")
                k.stdin.flush()
            res = [json.loads(k.stdout.readline()) for k in kids]
            s1 = _cpu_s(srv.pid)
            for k in kids:
                k.wait(timeout=120)
            dt = max(r["t1"] for r in res) - min(r["t0"] for r in res)
            cpu = sum(r["cpu"] for r in res)
            return {"procs": procs, "encoding": encoding, "via": via, "target": target, "spans": n,
                    "seconds": round(dt, 2), "spans_per_s": round(n / dt),
                    "client_cpu_us_per_span": round(cpu / n * 1e6, 1),
                    "server_cpu_us_per_span": round((s1 - s0) / n * 1e6, 1),
                    "load_before": round(load, 1), "load_after": round(os.getloadavg()[0], 1)}
        finally:
            if target == "sink":
                srv.stdin.close()
            else:
                srv.terminate()
            srv.wait(timeout=600)


def phases(a, encoding: str) -> dict:
    """Each phase of one ``export`` call, timed alone by this process's CPU."""
    srv, endpoint = _start_sink()
    try:
        spans = make_spans(a.spans)
        batches = [spans[i:i + a.batch] for i in range(0, len(spans), a.batch)]
        ex = _exporter(endpoint, encoding)
        if encoding == "json":
            from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans

            def serialise(m):
                return m.to_json().encode()
        else:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            def serialise(m):
                return m.SerializePartialToString()
        n = len(spans)
        ex.export(batches[0])  # connection made and modules warm before the clock
        c = _cpu()
        msgs = [encode_spans(b) for b in batches]
        c_enc = _cpu() - c
        c = _cpu()
        bodies = [serialise(m) for m in msgs]
        c_ser = _cpu() - c
        c, t = _cpu(), time.time()
        for body in bodies:
            r = ex._client.export(body)  # the exporter's own HTTP client (requests / urllib3)
            if not r.success:
                raise RuntimeError("send failed")
        c_http, t_http = _cpu() - c, time.time() - t
        c, t = _cpu(), time.time()
        for b in batches:
            ex.export(b)
        c_all, t_all = _cpu() - c, time.time() - t
        us = lambda x: round(x / n * 1e6, 1)  # noqa: E731
        return {"encoding": encoding, "spans": n, "batch": a.batch, "body_bytes_per_span": round(sum(map(len, bodies)) / n),
                "encode_spans_cpu_us": us(c_enc), "serialise_cpu_us": us(c_ser), "http_send_cpu_us": us(c_http),
                "http_send_wall_us": us(t_http), "export_cpu_us": us(c_all), "export_wall_us": us(t_all),
                "one_core_spans_per_s": round(n / c_all), "load": round(os.getloadavg()[0], 1)}
    finally:
        srv.stdin.close()
        srv.wait(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--procs", default="1,2,3")
    ap.add_argument("--encoding", default="protobuf,json")
    ap.add_argument("--via", default="export,bsp")
    ap.add_argument("--target", default="sink,collect")
    ap.add_argument("--skip-phases", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.sink:
        return sink()
    if a.child:
        a.encoding = a.encoding.split(",")[0]
        a.via = getattr(a, "via").split(",")[0]
        return child(a)
    out: dict = {"cores": os.cpu_count(), "phases": [], "runs": []}
    encs = a.encoding.split(",")
    if not a.skip_phases:
        for enc in encs:
            out["phases"].append(phases(a, enc))
            print(json.dumps(out["phases"][-1]), file=sys.stderr, flush=True)
    for procs in map(int, a.procs.split(",")):
        for enc in encs:
            for via in a.via.split(","):
                for target in a.target.split(","):  # sink and collect interleaved: paired
                    r = run(a, procs, enc, via, target)
                    out["runs"].append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
