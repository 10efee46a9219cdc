"""Where one `mast collect` POST's time goes, stage by stage, in-process.

    .venv/bin/python bench/collect_profile.py [--spans 20000] [--batch 512]

The same SDK-made spans as bench/collect_bench.py, cut into batches of ``--batch``.  Each
stage is timed alone over every batch and reported as µs per span and spans/s:

- the exporter's own work per request (``encode_spans`` + ``SerializeToString``, and gzip
  when compression is on): what bounds the client, whatever the server does;
- the receiver's: gunzip, the check and index of a request (protobuf: the generated
  message's upb parse; JSON: ``json.loads`` and the structure/id check), and the commit
  of a request's body and span index to the store (one request per transaction, as under
  light load, and 8 per transaction, as the writer groups them under load); the full
  decode (hand-written reader) and span check, which now happen at build time, beside;
- building the staged traces (the collector's batches, one per transaction, rules' feature
  hook included), and the build's reader of a request alone.

``--build-only`` times only the staging and the build (the builder, paired runs).
Prints one JSON object; record it in bench/RESULTS.md with `uptime`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from collect_bench import make_spans  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402


def timed(fn, items) -> tuple[float, float]:
    """Wall and CPU seconds (the process's, DuckDB's threads included) of ``fn`` over ``items``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for x in items:
        fn(x)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--build-only", action="store_true", help="time only staging and building")
    a = ap.parse_args()
    spans = make_spans(a.spans)
    n = len(spans)
    batches = [spans[i:i + a.batch] for i in range(0, n, a.batch)]
    res: dict = {"spans": n, "batch": a.batch, "load_before": os.getloadavg()[0], "stages": {}}

    def put(name: str, dt: tuple[float, float]) -> None:
        wall, cpu = dt
        res["stages"][name] = {"us_per_span": round(wall / n * 1e6, 2), "cpu_us_per_span": round(cpu / n * 1e6, 2),
                               "spans_per_s": round(n / wall)}
        print(f"{name}: {wall / n * 1e6:.2f} us/span wall, {cpu / n * 1e6:.2f} cpu", file=sys.stderr, flush=True)

    from mast.ingest.collect import Staged, index_json, index_request, staging
    from mast.ingest.collect.proto import decode_request
    from mast.ingest.collect.server import _gunzip

    bodies = [encode_spans(b).SerializeToString() for b in batches]
    if not a.build_only:
        put("client: encode_spans + SerializeToString", timed(lambda b: encode_spans(b).SerializeToString(), batches))
        put("client: gzip (exporter compression)", timed(gzip.compress, bodies))
        gz = [gzip.compress(b) for b in bodies]
        put("server: gunzip", timed(lambda b: _gunzip(b, 1 << 30), gz))
        put("server: protobuf decode (hand-written, to OTLP/JSON)", timed(decode_request, bodies))
        docs = [decode_request(b) for b in bodies]
        put("server: span check (load_doc_spans)", timed(lambda d: staging.load_doc_spans(Path("r"), d), docs))
        from google.protobuf.internal import api_implementation
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        res["protobuf_backend"] = api_implementation.Type()
        put(f"server: protobuf parse only, opentelemetry-proto ({api_implementation.Type()})",
            timed(ExportTraceServiceRequest.FromString, bodies))
        put("server: index_request (parse + check + index; what a protobuf POST does now)", timed(index_request, bodies))
        from mast.ingest.collect import proto
        if hasattr(proto, "request_spans"):  # the build's reader: parsed protobuf straight to spans
            want = {s.context.trace_id.to_bytes(16, "big").hex() for s in spans}
            put("build: request_spans (parsed protobuf -> the importer's spans)",
                timed(lambda b: proto.request_spans(b, want), bodies))
        jbodies = [json.dumps(d).encode() for d in docs]
        put("server: json.loads of the JSON form", timed(json.loads, jbodies))
        put("server: index_json (after json.loads)", timed(index_json, docs))
    rows = [[Staged("protobuf", b, *index_request(b))] for b in bodies]

    from mast.classify.hooks import ingest_hooks
    from mast.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        for group in (1, 8):
            with Store(Path(tmp) / f"p{group}.duckdb") as st:
                col = staging.Collector(st)
                chunks = [[r[0] for r in rows[i:i + group]] for i in range(0, len(rows), group)]
                put(f"server: stage + commit, {group} request(s) per transaction", timed(col.stage, chunks))
                hooks = ingest_hooks()
                col.hooks = hooks
                col.idle = 0
                t0, c0 = time.perf_counter(), time.process_time()
                while col.build_ready():
                    pass
                if group == 1:
                    put(f"server: build staged traces (a batch per transaction, {len(hooks)} hook(s))",
                        (time.perf_counter() - t0, time.process_time() - c0))
    res["load_after"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
