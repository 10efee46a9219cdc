"""`mast collect`: a live OTLP/HTTP endpoint for traces."""

from __future__ import annotations

import signal

import click

from mast.cli._render import err, print_json
from mast.cli.options import default_system_option, json_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes the endpoint to the network).")
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port; the one chosen is printed).")
@click.option("--idle-timeout", "idle", default=30.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Seconds without a new span after which a trace whose root has not ended is stored anyway.")
@click.option("--horizon", default=900.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Seconds a stored trace's spans stay staged after its last span, so that late spans and "
                   "pieces extend it; after that they are removed (a later span starts a trace of its own).")
@click.option("--max-body", default=16 * 1024 * 1024, show_default=True, type=click.IntRange(min=1024),
              help="Largest request body in bytes, compressed or not (larger: 413).")
@click.option("--queue", "queue_size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Requests waiting to be committed before new ones get 503 with Retry-After.")
@click.option("--max-backlog", default=1_000_000, show_default=True, type=click.IntRange(min=1),
              help="Spans committed and not built into traces yet before new requests get 503 with "
                   "Retry-After (a stream faster than the build is pushed back).")
@click.option("--build-processes", default=1, show_default=True, type=click.IntRange(min=0),
              help="Processes that map spans to traces while this one stores them (0: map here).")
@default_system_option
@json_option
@click.pass_obj
def collect(obj, host, port, idle, horizon, max_body, queue_size, max_backlog, build_processes, default_system,
            as_json):
    """Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces) into the store.

    Point an exporter at it with OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT (protobuf
    or JSON, gzip or not).  A request is answered 200 only once its spans are committed;
    the OTel traces of one run (tied by links, a parent in another trace or a run id, as
    `mast ingest` stitches them) are stored as one trace when every root has ended or
    after the idle timeout, and stored again (replacing the earlier version, with its
    labels) if late spans or pieces arrive.  Stops on Ctrl-C or
    SIGTERM after answering the requests in flight; with --json, prints the counts then.
    """
    from mast.classify.hooks import ingest_hooks
    from mast.ingest.collect import Collector, Receiver
    from mast.store import Store

    def on_build(rep):
        ids = rep.otel_trace_ids
        pieces = f"OTel trace {rep.otel_trace_id}" if len(ids) <= 1 else \
            f"OTel traces {', '.join(ids[:4])}" + (f" and {len(ids) - 4} more" if len(ids) > 4 else "") + " stitched"
        if rep.copy_of or rep.empty:
            # as `mast ingest` leaves them out of a file: the same call is a step of that
            # trace; a span tree with nothing in it (AgentChat's agent construction) is no run
            why = (f"a copy of an LLM call inside OTel trace {rep.copy_of}" if rep.copy_of
                   else "no LLM, tool or agent span in it, beside other traces")
            click.echo(f"dropped {pieces}: {why}"
                       + (f", removing {', '.join(rep.replaced)}" if rep.replaced else ""), err=True)
        elif rep.error:
            err.print(f"error: trace {rep.otel_trace_id}"
                      + (f" ({pieces})" if len(rep.otel_trace_ids) > 1 else "") + f": {rep.error}",
                      style="red", highlight=False, markup=False, soft_wrap=True)
        else:
            # one line per stored trace, from the builder thread: plain text (rich's
            # rendering, ~0.2 ms a line, was a tenth of the build's CPU)
            click.echo(f"stored {rep.trace_id} ({pieces}, {rep.spans} span(s), {rep.steps} step(s))"
                       + (f", replacing {', '.join(rep.replaced)} and {rep.labels_replaced} label(s) of them"
                          if rep.replaced else ""), err=True)

    with Store(obj.db) as store:
        col = Collector(store, ingest_hooks(obj), idle=idle, system=default_system, on_build=on_build,
                        horizon=horizon)
        rec = Receiver(col, host, port, max_body=max_body, queue_size=queue_size, max_backlog=max_backlog,
                       build_processes=build_processes,
                       log=lambda m: err.print(m, highlight=False, markup=False, soft_wrap=True))
        h, p = rec.address
        def on_signal(*_):
            if rec.stopping.is_set():
                err.print("stopping now: traces not stored yet stay staged for the next run",
                          highlight=False, markup=False, soft_wrap=True)
            else:
                err.print("stopping: storing the traces whose root has ended (signal again to leave them staged)",
                          highlight=False, markup=False, soft_wrap=True)
            rec.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        err.print(f"listening on http://{h}:{p}/v1/traces (store {store.path}); "
                  f"OTEL_EXPORTER_OTLP_ENDPOINT=http://{h}:{p}", highlight=False, markup=False, soft_wrap=True)
        rec.serve()
    c = col.counters
    summary = {"requests": c.requests, "spans": c.spans, "traces_stored": c.traces_built,
               "traces_replaced": c.traces_replaced, "labels_replaced": c.labels_replaced, "build_errors": c.build_errors,
               "traces_dropped": c.traces_dropped, "traces_pruned": c.traces_pruned}
    if as_json:
        print_json(summary)
    else:
        err.print(f"stopped: {c.requests} request(s), {c.spans} span(s), {c.traces_built} trace(s) stored "
                  f"(replacing {c.traces_replaced} earlier version(s) and {c.labels_replaced} label(s) of them), "
                  f"{c.build_errors} could not be built, {c.traces_dropped} left out as `mast ingest` leaves them",
                  highlight=False, markup=False, soft_wrap=True)
