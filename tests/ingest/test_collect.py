"""`mast collect`: the real OpenTelemetry SDK exporter against the real receiver.

The server runs as a subprocess (`python -m mast collect --port 0`) on a real store in a
temp dir; spans come from a small instrumented two-agent run (GenAI attributes, a tool
call) exported by the official OTLP/HTTP exporter (protobuf), or posted as the
exporter's JSON form.  What the endpoint stores is compared with `mast ingest` of the
same spans written as an OTLP/JSON file.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")

from google.protobuf import json_format  # noqa: E402  (comes with the exporter)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402

from mast.ingest.collect import Collector, Receiver, decode_request  # noqa: E402
from mast.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# -- an instrumented run ---------------------------------------------------------------

def run_two_agents(provider: TracerProvider, task: str = "What is the weather in Paris?", fail_tool: bool = False):
    """A planner calls a tool and hands over to a reviewer; spans as GenAI semconv has them."""
    tr = provider.get_tracer("demo.agents")
    with tr.start_as_current_span("invoke_workflow weather") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_workflow")
        root.set_attribute("input.value", task)
        for agent, reply in (("planner", "Looking it up."), ("reviewer", "The answer is sunny, 21 C.")):
            with tr.start_as_current_span(f"invoke_agent {agent}") as a:
                a.set_attribute("gen_ai.operation.name", "invoke_agent")
                a.set_attribute("gen_ai.agent.name", agent)
                with tr.start_as_current_span("chat gpt-4o-mini") as llm:
                    llm.set_attribute("gen_ai.operation.name", "chat")
                    llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                    llm.set_attribute("gen_ai.prompt.0.role", "user")
                    llm.set_attribute("gen_ai.prompt.0.content", task)
                    llm.set_attribute("gen_ai.completion.0.role", "assistant")
                    llm.set_attribute("gen_ai.completion.0.content", reply)
                    llm.set_attribute("gen_ai.usage.input_tokens", 12)
                    llm.set_attribute("gen_ai.usage.output_tokens", 5)
                if agent == "planner":
                    with tr.start_as_current_span("execute_tool lookup_weather") as tool:
                        tool.set_attribute("gen_ai.operation.name", "execute_tool")
                        tool.set_attribute("gen_ai.tool.name", "lookup_weather")
                        tool.set_attribute("gen_ai.tool.call.arguments", '{"city": "Paris"}')
                        if fail_tool:
                            tool.set_status(Status(StatusCode.ERROR, "weather service down"))
                        else:
                            tool.set_attribute("gen_ai.tool.call.result", "sunny, 21 C")


def provider_for(*exporters, batch: bool = True) -> TracerProvider:
    p = TracerProvider(resource=Resource.create({"service.name": "weather-agents"}))
    for e in exporters:
        p.add_span_processor(BatchSpanProcessor(e) if batch and not isinstance(e, InMemorySpanExporter)
                             else SimpleSpanProcessor(e))
    return p


def otlp_json(spans) -> dict:
    """The exporter's JSON form of spans (the protobuf request, in protobuf's JSON mapping)."""
    return json.loads(json_format.MessageToJson(encode_spans(spans)))


# -- the server as a subprocess ------------------------------------------------------

class Server:
    def __init__(self, db: Path, *args: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "mast", "-d", str(db), "collect", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: list[str] = []
        line = self.proc.stderr.readline()
        self.lines.append(line)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v1/traces", line)
        assert m, f"no address announced: {line!r} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.url = f"http://127.0.0.1:{m.group(1)}"
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, n: int = 1, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(bool(re.search(pattern, x)) for x in list(self.lines)) >= n:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} x{n} not seen; stderr:\n{''.join(self.lines)}")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out = self.proc.stdout.read()
        rc = self.proc.wait(timeout=60)
        self._t.join(timeout=10)
        return rc, out, "".join(self.lines)

    def post(self, body: bytes, ctype: str = "application/x-protobuf", headers: dict | None = None):
        req = urllib.request.Request(self.url + "/v1/traces", data=body, method="POST",
                                     headers={"Content-Type": ctype, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)


@pytest.fixture
def server(tmp_path):
    started = []

    def start(*args: str, db: Path | None = None) -> Server:
        s = Server(db or tmp_path / "collect.duckdb", *args)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def steps_of(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as st:
        ids = [r[0] for r in st.fetchall("SELECT trace_id FROM traces ORDER BY trace_id")]
        out = []
        for t in st.load_traces(ids):
            out.append((t.trace_id, t.system, t.task, t.outcome.value,
                        [(s.agent, s.kind.value, s.role, s.tool_name, s.target_agent, s.content, s.span_id,
                          s.tokens_in, s.tokens_out, s.status) for s in t.steps]))
        return out


# -- the tests ---------------------------------------------------------------------

def test_real_exporter_protobuf_stores_what_ingest_of_the_same_spans_gives(server, tmp_path, mast):
    srv = server("--idle-timeout", "30")
    mem = InMemorySpanExporter()
    provider = provider_for(OTLPSpanExporter(endpoint=srv.url + "/v1/traces"), mem)
    run_two_agents(provider)
    run_two_agents(provider, task="And in Rome?", fail_tool=True)
    assert provider.force_flush(30_000)  # True only once every export got its 200
    provider.shutdown()
    srv.wait_for(r"^stored t1-", n=2)  # both roots ended: no idle wait
    rc, out, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err

    # the same spans as an OTLP/JSON file, through `mast ingest`
    f = tmp_path / "same.otlp.json"
    f.write_text(json.dumps(otlp_json(mem.get_finished_spans())))
    other = tmp_path / "file.duckdb"
    mast("-d", other, "ingest", f)
    live, filed = steps_of(tmp_path / "collect.duckdb"), steps_of(other)
    assert len(live) == 2
    assert live == filed  # same trace ids (content hashes), systems, tasks, steps
    agents = {s[0] for t in live for s in t[4]} - {None}
    assert agents == {"planner", "reviewer"}
    kinds = [s[1] for t in live for s in t[4]]
    assert "handoff" in kinds and "tool_call" in kinds
    assert [s[9] for t in live for s in t[4] if s[1] == "tool_result"] == ["ok", "error"] or \
        [s[9] for t in live for s in t[4] if s[1] == "tool_result"] == ["error", "ok"]  # Rome's tool failed
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        # the rules' feature hook ran on the collected traces, as on an ingest
        assert st.fetchall("SELECT count(DISTINCT trace_id) FROM rule_feature_traces")[0][0] == 2
        assert st.fetchall("SELECT min(source_path) FROM traces")[0][0].startswith("otlp:")


def test_json_and_gzip_encodings(server, tmp_path):
    srv = server()
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    spans = mem.get_finished_spans()
    doc = otlp_json(spans)
    code, body, headers = srv.post(gzip.compress(json.dumps(doc).encode()), "application/json",
                                   {"Content-Encoding": "gzip"})
    assert code == 200 and json.loads(body) == {} and headers["Content-Type"] == "application/json"
    srv.wait_for(r"^stored t1-")
    # the same spans again, as gzip protobuf: a retried export changes nothing
    code, _, _ = srv.post(gzip.compress(encode_spans(spans).SerializeToString()), headers={"Content-Encoding": "gzip"})
    assert code == 200
    rc, out, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 1
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == 2 * len(spans)


def test_decoder_matches_protobufs_own_json_mapping():
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider, fail_tool=True)
    req = encode_spans(mem.get_finished_spans())
    mine = decode_request(req.SerializeToString())
    theirs = json.loads(json_format.MessageToJson(req))
    from mast.ingest.formats.otel.spans import load_doc_spans
    a = load_doc_spans(Path("pb"), mine)
    b = load_doc_spans(Path("json"), theirs)
    key = lambda s: (s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns, s.status,  # noqa: E731
                     s.status_msg, s.attrs, s.resource, s.scope, [(e["name"], e["time_ns"]) for e in s.events])
    assert [key(s) for s in a] == [key(s) for s in b] and len(a) == 6


def test_late_spans_rebuild_the_trace_and_replace_the_old_version(server, tmp_path):
    srv = server("--idle-timeout", "0.5")
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    spans = list(mem.get_finished_spans())
    root = next(s for s in spans if s.parent is None)
    reviewer = [s for s in spans if "reviewer" in s.name or (s.parent and s.parent.span_id in {
        x.context.span_id for x in spans if x.name == "invoke_agent reviewer"})]
    early = [s for s in spans if s not in reviewer]
    assert srv.post(encode_spans(early).SerializeToString())[0] == 200
    srv.wait_for(r"^stored t1-")  # the root has ended: built without the reviewer
    assert srv.post(encode_spans(reviewer).SerializeToString())[0] == 200
    srv.wait_for(r"replacing t1-")
    rc, _, err = srv.stop()
    assert rc == 0, err
    first = re.search(r"stored (t1-\w+)", err).group(1)
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        (tid, n_agents), = st.fetchall("SELECT trace_id, n_agents FROM traces")
        assert tid != first and n_agents == 2
        assert st.fetchall("SELECT stored_trace_id FROM collect_traces")[0][0] == tid
        assert st.fetchall("SELECT count(*) FROM steps WHERE trace_id = ?", [first])[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM rule_feature_traces WHERE trace_id = ?", [first])[0][0] == 0
    assert root in early


def test_idle_timeout_stores_a_trace_whose_root_never_came(server, tmp_path):
    srv = server("--idle-timeout", "0.3")
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    spans = [s for s in mem.get_finished_spans() if s.parent is not None]
    assert srv.post(encode_spans(spans).SerializeToString())[0] == 200
    srv.wait_for(r"^stored t1-")
    rc, _, err = srv.stop()
    assert rc == 0, err


@pytest.mark.parametrize("body, ctype, headers, reason", [
    (b"\x0a\xff\xff\xff\x0f\x01", "application/x-protobuf", {}, "past the end"),        # length past the end
    (b"\x0b\x00", "application/x-protobuf", {}, "wire type 3"),                           # a group
    (b'{"resourceSpans": [', "application/json", {}, "invalid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "<script>alert(1)</script>", '
     b'"spanId": "00f067aa0ba902b7", "name": "x", "startTimeUnixNano": "1"}]}]}]}', "application/json", {},
     "neither hex nor base64"),
    (b'{"hello": "world"}', "application/json", {}, "resourceSpans"),
    (b"\x1f\x8b\x08\x00garbage", "application/x-protobuf", {"Content-Encoding": "gzip"}, "bad gzip"),
])
def test_malformed_bodies_get_400_with_a_reason_and_nothing_is_stored(server, tmp_path, body, ctype, headers, reason):
    srv = server()
    code, answer, hdrs = srv.post(body, ctype, headers)
    assert code == 400
    text = answer.decode("utf-8", "replace")
    assert reason in text
    assert "<script>" not in text  # never reflected raw
    rc, _, err = srv.stop()
    assert rc == 0 and "Traceback" not in err
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 0


def test_size_limit_413_and_wrong_paths(server, tmp_path):
    srv = server("--max-body", "2048")
    assert srv.post(b"\x00" * 4096)[0] == 413
    # a small gzip that inflates past the limit is refused too
    assert srv.post(gzip.compress(b"\x00" * 100_000), headers={"Content-Encoding": "gzip"})[0] == 413
    req = urllib.request.Request(srv.url + "/v1/metrics", data=b"", method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 404
    assert srv.post(b"{}", "text/html")[0] == 415
    rc, _, err = srv.stop()
    assert rc == 0 and "Traceback" not in err


def test_acknowledged_spans_survive_kill_9_and_are_built_on_restart(server, tmp_path):
    db = tmp_path / "collect.duckdb"
    srv = server("--idle-timeout", "3600", db=db)
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    spans = list(mem.get_finished_spans())
    children = [s for s in spans if s.parent is not None]
    assert srv.post(encode_spans(children).SerializeToString())[0] == 200
    srv.proc.kill()  # SIGKILL right after the 200: no flush, no clean-up
    srv.proc.wait()
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == len(children)
    srv2 = server("--idle-timeout", "3600", db=db)
    root = [s for s in spans if s.parent is None]
    assert srv2.post(encode_spans(root).SerializeToString())[0] == 200
    srv2.wait_for(r"^stored t1-")
    rc, _, err = srv2.stop()
    assert rc == 0, err
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT n_agents FROM traces")[0][0] == 2


def test_full_queue_answers_503_with_retry_after(tmp_path):
    """In-process: a collector whose commit is held, so the queue (size 1) fills."""
    gate, entered = threading.Event(), threading.Event()

    class HeldCollector(Collector):
        def stage(self, batches):
            entered.set()
            gate.wait(30)
            return super().stage(batches)

    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    body = encode_spans(mem.get_finished_spans()).SerializeToString()
    with Store(tmp_path / "q.duckdb") as st:
        rec = Receiver(HeldCollector(st), "127.0.0.1", 0, queue_size=1, tick=0.05)
        t = threading.Thread(target=rec.serve)
        t.start()
        url = "http://127.0.0.1:%d/v1/traces" % rec.address[1]
        results: list = []

        def post():
            req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    results.append((r.status, None))
            except urllib.error.HTTPError as e:
                results.append((e.code, e.headers.get("Retry-After")))

        posters = [threading.Thread(target=post) for _ in range(4)]

        def until(cond):
            end = time.monotonic() + 20
            while not cond() and time.monotonic() < end:
                time.sleep(0.02)

        posters[0].start()
        until(entered.is_set)  # the writer holds the first request
        posters[1].start()
        until(rec.queue.full)  # the second waits in the queue (size 1)
        posters[2].start()
        posters[3].start()
        until(lambda: sum(c == 503 for c, _ in results) >= 2)
        gate.set()
        for p in posters:
            p.join(30)
        rec.stop()
        t.join(30)
        assert sorted(c for c, _ in results) == [200, 200, 503, 503]
        assert all(ra == "1" for c, ra in results if c == 503)
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == 2 * 6


# -- keeping up with a stream, and pushing back when the build falls behind -------------

def _bodies(n: int) -> list[bytes]:
    """``n`` requests, each one run of its own (fresh trace ids)."""
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    out = []
    for i in range(n):
        run_two_agents(provider, task=f"What is the weather in city {i}?")
        out.append(encode_spans(mem.get_finished_spans()).SerializeToString())
        mem.clear()
    return out


def _post(url: str, body: bytes) -> tuple[int, str | None, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, None, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Retry-After"), e.read()


def test_the_builder_waits_through_a_burst_but_not_past_a_batch_or_a_second():
    from mast.ingest.collect.server import MAX_DEFER, defer
    assert defer(True, 0.1, 10, 20_000)  # requests arriving, little waiting: acknowledge first
    assert not defer(True, 0.1, 20_000, 20_000)  # a batch waiting: build beside the requests
    assert not defer(True, MAX_DEFER, 10, 20_000)  # waited long enough
    assert not defer(False, 0.0, 10, 20_000)  # requests paused


def test_a_stream_that_never_pauses_has_its_traces_stored_while_it_goes_on(tmp_path):
    """In-process: requests back to back for up to 4 s (the builder that waited for a pause
    waited 5 s first, then built 2,000 spans per 5 s): traces are stored before it ends."""
    bodies = _bodies(200)
    with Store(tmp_path / "s.duckdb") as st:
        col = Collector(st, idle=0)
        rec = Receiver(col, "127.0.0.1", 0, tick=0.05, defer_below=1)
        t = threading.Thread(target=rec.serve)
        t.start()
        url = "http://127.0.0.1:%d/v1/traces" % rec.address[1]
        built_while_sending = sent = 0
        try:
            end = time.monotonic() + 4
            for body in bodies:
                assert _post(url, body)[0] == 200
                sent += 1
                built_while_sending = col.counters.traces_built
                if built_while_sending or time.monotonic() > end:
                    break
        finally:
            rec.stop()
            t.join(30)
        assert built_while_sending > 0, f"nothing stored while {sent} requests came"
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == sent


def test_a_backlog_past_the_limit_answers_503_and_stores_nothing_of_the_request(tmp_path):
    """In-process: a collector that builds nothing, so the spans committed stay waiting;
    with ``max_backlog`` 6 the first request (6 spans) is taken, the next is pushed back."""

    class NoBuild(Collector):
        def build_ready(self, *a, **k):
            return 0

    first, second = _bodies(2)
    with Store(tmp_path / "p.duckdb") as st:
        rec = Receiver(NoBuild(st), "127.0.0.1", 0, tick=0.05, max_backlog=6)
        t = threading.Thread(target=rec.serve)
        t.start()
        url = "http://127.0.0.1:%d/v1/traces" % rec.address[1]
        try:
            assert _post(url, first)[0] == 200
            code, retry, body = _post(url, second)
        finally:
            rec.hurry.set()
            rec.stop()
            t.join(30)
        assert (code, retry) == (503, "1")
        assert b"6 spans wait to be built (limit 6)" in body
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == 6


def _early_and_late() -> tuple[bytes, bytes]:
    """One run in two requests: everything but the reviewer's spans (the root among them), then those."""
    mem = InMemorySpanExporter()
    run_two_agents(provider_for(mem))
    spans = list(mem.get_finished_spans())
    rev = next(x.context.span_id for x in spans if x.name == "invoke_agent reviewer")
    late = [x for x in spans if x.context.span_id == rev or (x.parent and x.parent.span_id == rev)]
    early = [x for x in spans if x not in late]
    return encode_spans(early).SerializeToString(), encode_spans(late).SerializeToString()


class _HeldPool:
    """A pool whose mapping runs only when the test says so (the futures it hands out)."""

    def __init__(self):
        from concurrent.futures import Future

        self.jobs: list[tuple[Future, object]] = []
        self._future = Future

    def submit(self, fn, arg):
        f = self._future()
        self.jobs.append((f, lambda: fn(arg)))
        return f

    def run_all(self):
        for f, job in self.jobs:
            if not f.done():
                f.set_result(job())


def test_a_batch_being_mapped_holds_its_groups_until_it_is_stored(tmp_path):
    """The build process maps batch N+1 while batch N is stored.  Late spans of a group in
    a batch not stored yet must not put that group in the next batch: read before the first
    version is stored, that batch would not know to replace it (two traces for one run)."""
    from mast.ingest.collect import Staged, index_request
    from mast.ingest.collect.staging import Pipeline

    early, late = _early_and_late()
    with Store(tmp_path / "p.duckdb") as st:
        col = Collector(st, idle=0)
        pool = _HeldPool()
        pipe = Pipeline(col, pool)
        col.stage([Staged("protobuf", early, *index_request(early))])
        assert pipe.step() == 1  # the run's first version is being mapped
        col.stage([Staged("protobuf", late, *index_request(late))])  # its late spans arrive
        pool.run_all()
        pipe.step()  # stores the first version; the group is not taken again while it was out
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 1
        for _ in range(10):  # bounded: a regression that builds again and again fails, not hangs
            pool.run_all()
            if not pipe.step():
                break
        pool.run_all()
        pipe.drain()
        (tid, n_agents), = st.fetchall("SELECT trace_id, n_agents FROM traces")
        assert n_agents == 2  # the version with the reviewer, replacing the first
        assert col.counters.traces_built == 2 and col.counters.traces_replaced == 1
        assert st.fetchall("SELECT DISTINCT stored_trace_id FROM collect_traces")[0][0] == tid


def test_if_the_build_process_dies_the_batch_is_mapped_here_and_stored(tmp_path):
    from concurrent.futures.process import BrokenProcessPool

    from mast.ingest.collect import Staged, index_request
    from mast.ingest.collect.staging import Pipeline

    class DeadPool:
        def submit(self, fn, arg):
            from concurrent.futures import Future

            f = Future()
            f.set_exception(BrokenProcessPool("a process died"))
            return f

    said: list[str] = []
    bodies = _bodies(2)
    with Store(tmp_path / "d.duckdb") as st:
        col = Collector(st, idle=0)
        pipe = Pipeline(col, DeadPool(), said.append)
        col.stage([Staged("protobuf", bodies[0], *index_request(bodies[0]))])
        pipe.step()
        col.stage([Staged("protobuf", bodies[1], *index_request(bodies[1]))])
        for _ in range(10):
            if not pipe.step():
                break
        pipe.drain()
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 2
    assert pipe.pool is None and len(said) == 1 and "BrokenProcessPool" in said[0]


# -- staging by request (m170): the request is checked and indexed, decoded when built ---

def test_a_span_refused_at_build_fails_only_its_own_trace(server, tmp_path):
    """A request is acknowledged once its structure and ids are sound; the importer's
    full check runs when a trace is built, and a span it refuses fails that trace alone,
    with the reason, while the other trace of the same request is stored."""
    srv = server()
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    run_two_agents(provider, task="And in Rome?")
    doc = otlp_json(mem.get_finished_spans())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    bad_trace = spans[0]["traceId"]
    spans[0]["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "lots"}})
    code, body, _ = srv.post(json.dumps(doc).encode(), "application/json")
    assert code == 200, body
    srv.wait_for(r"^stored t1-")
    srv.wait_for(r"^error: trace ")
    rc, _, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err
    assert "is not a number" in err
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 1
        rows = dict(st.fetchall("SELECT otel_trace_id, error FROM collect_traces"))
    assert len(rows) == 2
    bad = next(t for t in rows if t.lower() == base64_or_hex(bad_trace))
    assert "is not a number" in rows[bad]
    assert [e for t, e in rows.items() if t != bad] == [None]


def base64_or_hex(v: str) -> str:
    import base64
    import binascii
    try:
        return base64.b64decode(v, validate=True).hex()
    except (binascii.Error, ValueError):
        return v.lower()


def test_a_request_is_acknowledged_while_a_trace_is_being_built(tmp_path):
    """In-process: a build held open must not hold back the next request's 200 (the
    writer commits on its own connection; building is another thread's)."""
    gate, building = threading.Event(), threading.Event()

    class SlowBuild(Collector):
        def build_many(self, ids):
            if ids:
                building.set()
                gate.wait(60)
            return super().build_many(ids)

    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    first = encode_spans(mem.get_finished_spans()).SerializeToString()
    mem.clear()
    run_two_agents(provider, task="And in Rome?")
    second = encode_spans(mem.get_finished_spans()).SerializeToString()
    with Store(tmp_path / "b.duckdb") as st:
        rec = Receiver(SlowBuild(st), "127.0.0.1", 0, tick=0.05)
        t = threading.Thread(target=rec.serve)
        t.start()
        url = "http://127.0.0.1:%d/v1/traces" % rec.address[1]

        def post(body):
            req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status

        try:
            assert post(first) == 200
            assert building.wait(30)  # the first trace's root ended: its build started, and is held
            assert post(second) == 200 and not gate.is_set()
            assert st.fetchall("SELECT count(DISTINCT otel_trace_id) FROM collect_spans")[0][0] == 2
        finally:
            gate.set()
            rec.stop()
            t.join(30)
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 2


def _field(fn: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    def varint(n):
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    return varint(fn << 3 | 2) + varint(len(payload)) + payload


def test_an_old_sdks_instrumentation_library_spans_are_indexed_and_built(server, tmp_path):
    """OTLP < 0.19 puts spans under ResourceSpans field 1000, which the generated message
    no longer knows: the request falls back to the hand-written reader."""
    srv = server()
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    req = encode_spans(mem.get_finished_spans())
    rs = req.resource_spans[0]
    old_rs = _field(1, rs.resource.SerializeToString()) + b"".join(
        _field(1000, ss.SerializeToString()) for ss in rs.scope_spans)
    code, body, _ = srv.post(_field(1, old_rs))
    assert code == 200, body
    srv.wait_for(r"^stored t1-")
    rc, _, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT n_agents FROM traces")[0][0] == 2
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == 6


def test_a_span_id_of_the_wrong_length_gets_400(server, tmp_path):
    srv = server()
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    req = encode_spans(mem.get_finished_spans())
    req.resource_spans[0].scope_spans[0].spans[2].span_id = b"\x01\x02\x03"
    code, body, _ = srv.post(req.SerializeToString())
    assert code == 400 and b"span 2" in body and b"wrong length" in body
    rc, _, err = srv.stop()
    assert rc == 0 and "Traceback" not in err
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM collect_spans")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM collect_requests")[0][0] == 0


def test_spans_staged_before_m170_are_still_built(tmp_path):
    """A store staged by the previous receiver (one OTLP/JSON body per span, counted in
    collect_traces when staged) is built alongside spans staged by request."""
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    spans = list(mem.get_finished_spans())
    root = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None]
    with Store(tmp_path / "old.duckdb") as st:
        tid = format(root[0].context.trace_id, "032x")
        for i, s in enumerate(children):  # the m120 layout: body per span, no req
            st.execute("INSERT INTO collect_spans (otel_trace_id, span_id, seq, body) VALUES (?, ?, ?, ?)",
                       [tid, format(s.context.span_id, "016x"), i + 1, json.dumps(otlp_json([s]))])
        # (grp: its own group, as m200 leaves the traces staged before it)
        st.execute("INSERT INTO collect_traces (otel_trace_id, first_seen, last_seen, spans, root_ended, built_spans, "
                   "stored_trace_id, error, grp) VALUES (?, now(), now(), ?, false, 0, NULL, NULL, ?)",
                   [tid, len(children), tid])
        st.execute("UPDATE collect_folded SET seq = ?", [len(children)])
        col = Collector(st)
        body = encode_spans(root).SerializeToString()
        from mast.ingest.collect import Staged, index_request
        assert col.stage([Staged("protobuf", body, *index_request(body))]) == 1
        assert col.build_ready() == 1
        assert st.fetchall("SELECT n_agents, n_steps > 0 FROM traces") == [(2, True)]
        assert st.fetchall("SELECT seq, req IS NULL FROM collect_spans ORDER BY seq")[-1] == (len(children) + 1, False)


def test_each_staged_trace_knows_its_first_arrival_number_and_m250_fills_it_in(tmp_path):
    """A build reads its spans with ``seq >=`` its traces' first (collect_traces.first_seq),
    so that must be the first span's, late spans and pieces included; and a store staged
    before m250 gets it from the spans it holds."""
    import duckdb

    from mast.ingest.collect import Staged, index_request
    from mast.store.schema import MIGRATIONS

    early, late = _early_and_late()
    other = _bodies(1)[0]
    with Store(tmp_path / "f.duckdb") as st:
        col = Collector(st, idle=0)
        for body in (early, other, late):  # the late piece arrives after another run's spans
            col.stage([Staged("protobuf", body, *index_request(body))])
        col.fold()
        got = st.fetchall("SELECT otel_trace_id, first_seq FROM collect_traces ORDER BY 1")
        want = st.fetchall("SELECT otel_trace_id, min(seq) FROM collect_spans GROUP BY 1 ORDER BY 1")
        assert got == want and len(got) == 2
        while col.build_ready():
            pass
        assert st.fetchall("SELECT count(*), sum(n_agents) FROM traces")[0] == (2, 4)
    con = duckdb.connect(":memory:")
    for name, fn in MIGRATIONS:
        if name < "m250":
            fn(con)
    con.execute("INSERT INTO collect_spans (otel_trace_id, span_id, seq) VALUES ('a', '1', 5), ('a', '2', 9), ('b', '3', 7)")
    con.execute("INSERT INTO collect_traces (otel_trace_id, first_seen, last_seen, spans, root_ended, built_spans, grp) "
                "VALUES ('a', now(), now(), 2, true, 0, 'a'), ('b', now(), now(), 1, true, 0, 'b')")
    dict(MIGRATIONS)["m250_collect_first_seq"](con)
    assert con.execute("SELECT otel_trace_id, first_seq FROM collect_traces ORDER BY 1").fetchall() == [("a", 5), ("b", 7)]


def test_the_builds_reader_gives_the_spans_the_hand_written_reader_gives():
    """Traces are built from the generated message straight into spans (request_spans);
    every value kind, events, links, status, place and refusal read as the otel importer
    reads the hand-written reader's OTLP/JSON form (checked against protobuf's own JSON
    mapping above)."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    from mast.errors import IngestError
    from mast.ingest.collect.proto import request_spans
    from mast.ingest.formats.otel.spans import load_doc_spans
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider, fail_tool=True)
    tr = provider.get_tracer("other.scope", "2.0")
    with tr.start_as_current_span("odd values") as sp:
        sp.set_attribute("f", 2.5)
        sp.set_attribute("b", False)
        sp.set_attribute("list", ["a", "b"])
        sp.add_event("thinking", {"n": 3})
    req = encode_spans(mem.get_finished_spans())
    odd = req.resource_spans[0].scope_spans[-1].spans[-1]
    odd.attributes.append(KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\xff")))
    odd.attributes.append(KeyValue(key="unset"))
    kv = odd.attributes.add(key="nested")
    kv.value.kvlist_value.values.add(key="inner").value.array_value.values.add(int_value=-7)
    odd.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    odd.links.add(trace_id=b"\x03" * 16)
    odd.events.add(time_unix_nano=0)  # no name, no time
    body = req.SerializeToString()
    want = {s.trace_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    mine = [sp for _, sp in request_spans(body, want)]
    theirs = load_doc_spans(Path("pb"), decode_request(body))
    key = lambda s: (s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns, s.status,  # noqa: E731
                     s.status_msg, s.attrs, s.resource, s.scope, s.events, s.links, s.where)
    assert [key(s) for s in mine] == [key(s) for s in theirs] and len(mine) == 7
    assert mine[-1].attrs["nested"] == {"inner": [-7]} and mine[-1].links == [("01" * 16, "02" * 8), ("03" * 16, None)]
    one = next(iter(want))
    assert {t for t, _ in request_spans(body, {one})} == {one}  # only the spans of the traces asked for
    # a span the importer refuses is refused for the same reason, and only that span
    odd.name = ""
    odd.links.add(span_id=b"\x04" * 8)
    body = req.SerializeToString()
    got = request_spans(body, want, "request 3, ", "otlp:")
    bad = [x for _, x in got if isinstance(x, Exception)]
    with pytest.raises(IngestError) as file_err:
        load_doc_spans(Path("otlp:" + odd.trace_id.hex()), decode_request(body), "request 3, ")
    assert len(bad) == 1 and str(bad[0]) == str(file_err.value) and "missing required field: name" in str(bad[0])


def test_a_second_stop_leaves_the_traces_not_built_yet_staged_for_the_next_run(tmp_path):
    """In-process: stop() twice while a build is held: serve returns without building the
    rest, which stays staged and is built by the next collector on the store."""
    gate, building = threading.Event(), threading.Event()

    class OneAtATime(Collector):
        def build_many(self, ids):
            if ids and not building.is_set():
                building.set()
                gate.wait(60)
            return super().build_many(list(ids)[:1])

    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    run_two_agents(provider)
    run_two_agents(provider, task="And in Rome?")
    body = encode_spans(mem.get_finished_spans()).SerializeToString()
    with Store(tmp_path / "s.duckdb") as st:
        rec = Receiver(OneAtATime(st), "127.0.0.1", 0, tick=0.05)
        t = threading.Thread(target=rec.serve)
        t.start()
        req = urllib.request.Request("http://127.0.0.1:%d/v1/traces" % rec.address[1], data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        assert building.wait(30)
        rec.stop()
        rec.stop()  # again: leave the rest staged
        gate.set()
        t.join(30)
        assert not t.is_alive()
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 1
        assert st.fetchall("SELECT count(*) FROM collect_traces WHERE built_spans = 0")[0][0] == 1
        assert Collector(st).build_ready() == 1  # the next run builds it
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 2


def test_smolagents_spans_sent_live_are_stored_as_their_file_is_ingested(server, tmp_path, mast, db):
    # the OTLP/JSON request the smolagents generator encoded (tests/fixtures/frameworks/smolagents/):
    # agents named from span names, the managed agent's handoff, the task, the code steps
    fix = Path(__file__).resolve().parents[1] / "fixtures" / "frameworks" / "smolagents" / "smolagents_managed.otlp.json"
    srv = server()
    code, _, _ = srv.post(fix.read_bytes(), "application/json")
    assert code == 200
    srv.wait_for(r"^stored t1-")
    rc, _, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    mast("ingest", fix)
    [live], [filed] = steps_of(tmp_path / "collect.duckdb"), steps_of(db)
    assert live[2:] == filed[2:]
    assert ("CodeAgent", "handoff", None, None, "search_agent") in [s[:5] for s in live[4]]


def test_a_body_shorter_than_its_content_length_gets_408_not_an_internal_error(server, tmp_path):
    # the client says 200 bytes, sends 21 and waits: the read timed out and was answered
    # 500 "internal error", logged as a failed request
    srv = server()
    host, port = srv.url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 200\r\n\r\n" + b'{"resourceSpans": []}')
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 408"), answer
    assert b"Content-Length of 200 bytes" in answer
    rc, _, err = srv.stop()
    assert rc == 0 and "request failed" not in err and "Traceback" not in err
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM collect_requests")[0][0] == 0


# -- stitching: the OTel traces of one run, sent live in pieces ------------------------------

FW = Path(__file__).resolve().parents[1] / "fixtures" / "frameworks"


def _value(v: dict):
    k, x = next(iter(v.items()))
    if k == "intValue":
        return int(x)
    if k == "arrayValue":
        return tuple(_value(i) for i in x.get("values", []))
    return x


def readable_spans(fixture: Path):
    """A fixture's spans (OTLP/JSON, made by running the framework) as the SDK's own
    ReadableSpans, so that the real exporter encodes and sends them as the framework's
    process would have."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

    def ctx(t: str, s: str) -> SpanContext:
        return SpanContext(int(t, 16), int(s, 16), is_remote=False, trace_flags=TraceFlags(1))

    def attrs(kvs):
        return {a["key"]: _value(a["value"]) for a in kvs or [] if a.get("value")}

    out = []
    for rs in json.loads(fixture.read_text())["resourceSpans"]:
        res = Resource(attrs(rs["resource"]["attributes"]))
        for ss in rs["scopeSpans"]:
            scope = InstrumentationScope(ss["scope"]["name"], ss["scope"].get("version"))
            for s in ss["spans"]:
                st = s.get("status") or {}
                code = {"STATUS_CODE_OK": StatusCode.OK, "STATUS_CODE_ERROR": StatusCode.ERROR}.get(st.get("code"),
                                                                                                  StatusCode.UNSET)
                out.append(ReadableSpan(
                    name=s["name"], context=ctx(s["traceId"], s["spanId"]),
                    parent=ctx(s["traceId"], s["parentSpanId"]) if s.get("parentSpanId") else None,
                    resource=res, attributes=attrs(s.get("attributes")),
                    events=[Event(e["name"], attrs(e.get("attributes")), int(e["timeUnixNano"])) for e in s.get("events") or []],
                    links=[Link(ctx(ln["traceId"], ln.get("spanId") or "1"), attrs(ln.get("attributes")))
                           for ln in s.get("links") or []],
                    kind=SpanKind[s.get("kind", "SPAN_KIND_INTERNAL").replace("SPAN_KIND_", "")],
                    status=Status(code, st.get("message") if code is StatusCode.ERROR else None),
                    start_time=int(s["startTimeUnixNano"]), end_time=int(s["endTimeUnixNano"]),
                    instrumentation_scope=scope))
    return out


def pieces_by_trace(spans) -> list[list]:
    """The spans of each OTel trace, one request per trace, in the order the traces began
    (as a process flushing after every turn sends them)."""
    by: dict[int, list] = {}
    for s in spans:
        by.setdefault(s.context.trace_id, []).append(s)
    return sorted(by.values(), key=lambda g: min(s.start_time for s in g))


@pytest.mark.parametrize("fixture, traces", [
    ("ag2x/workflow/telemetry.otlp.json", 1),       # 5 OTel traces: envelopes linked to their channel
    ("ag2x/failing/telemetry.otlp.json", 1),        # 4, with errors
    ("otel/split_run.otlp.json", 1),                # 2, joined by a link and a parent in the other trace
    ("openai_agents/openinference.otlp.json", 3),   # 3 runs: nothing ties them, none is merged
    ("smolagents/smolagents_managed.otlp.json", 1),
    # OpenInference's CrewAI event mode re-emits each LLM call as a trace of its own: dropped
    ("crewai/research/openinference_events.otlp.json", 1),       # 4 OTel traces, 3 of them copies
    ("crewai/hierarchical/openinference_events.otlp.json", 1),   # 7, 6 of them copies
    # AgentChat: 23 OTel traces; its agent-construction roots (nothing happened in them) left out
    ("autogen/0.7.5/selector/otel.otlp.json", 1),
    # one trace each, a dialect each: already equal, kept so
    ("crewai/research/crewai_native.otlp.json", 1),
    ("crewai/hierarchical/openinference_wrappers.otlp.json", 1),
    ("otel/genai_legacy.otlp.json", 1),
    ("ag2/toolfail/otel.otlp.json", 1),
    ("langgraph/supervisor/openinference.otlp.json", 1),
    ("langgraph/loop/langsmith_otel.otlp.json", 1),
])
def test_a_run_sent_live_in_pieces_is_stitched_as_ingest_of_the_same_spans(server, tmp_path, mast, db, fixture, traces):
    spans = readable_spans(FW / fixture)
    srv = server()
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces")
    for piece in pieces_by_trace(spans):  # one request per OTel trace: stitched across requests
        from opentelemetry.sdk.trace.export import SpanExportResult
        assert exporter.export(piece) is SpanExportResult.SUCCESS
    exporter.shutdown()
    rc, out, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    # the same spans, as the exporter encoded them, written to a file and ingested
    (tmp_path / "same.otlp.json").write_text(json.dumps(otlp_json(spans)))
    mast("ingest", tmp_path / "same.otlp.json")
    live, filed = steps_of(tmp_path / "collect.duckdb"), steps_of(db)
    assert len(live) == len(filed) == traces
    assert live == filed


def test_crewais_re_emitted_llm_calls_stored_before_their_crew_are_removed_when_it_comes(server, tmp_path, mast, db):
    """The copies' roots end first (each is a call inside the crew's run), so they can be
    stored before the crew trace arrives: they go when it is built, as `mast ingest` of
    the same spans never stores them."""
    spans = readable_spans(FW / "crewai/research/openinference_events.otlp.json")
    crew, *calls = sorted(pieces_by_trace(spans), key=len, reverse=True)
    assert len(calls) == 3 and all(len(c) == 1 for c in calls)
    srv = server("--json")
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces")
    for piece in calls:
        exporter.export(piece)
    srv.wait_for(r"^stored t1-", n=3)  # the copies, alone: nothing yet says they are copies
    exporter.export(crew)
    exporter.shutdown()
    srv.wait_for(r"^dropped OTel trace .*: a copy of an LLM call inside OTel trace .*, removing t1-", n=3)
    rc, out, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["traces_dropped"] == 3 and summary["traces_stored"] == 4 and summary["traces_replaced"] == 0
    (tmp_path / "same.otlp.json").write_text(json.dumps(otlp_json(spans)))
    mast("ingest", tmp_path / "same.otlp.json")
    live, filed = steps_of(tmp_path / "collect.duckdb"), steps_of(db)
    assert len(live) == 1 and live == filed
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        crew_id = f"{crew[0].context.trace_id:032x}"
        assert st.fetchall("SELECT copy_of, stored_trace_id IS NULL FROM collect_traces ORDER BY copy_of NULLS LAST") \
            == [(crew_id, True)] * 3 + [(None, False)]


def test_an_agentchat_construction_root_stored_alone_goes_when_the_run_comes(server, tmp_path, mast, db):
    """AgentChat's `create_agent` roots (nothing happened in them) are left out of a file
    holding the run; the first one, sent alone to an empty store, is stored (it is all
    there is), then removed once the run's traces are staged beside it."""
    spans = readable_spans(FW / "autogen/0.7.5/selector/otel.otlp.json")
    first, *rest = pieces_by_trace(spans)
    assert [s.name for s in first] == ["create_agent researcher"]
    srv = server("--json")
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces")
    exporter.export(first)
    srv.wait_for(r"^stored t1-")
    for piece in rest:
        exporter.export(piece)
    exporter.shutdown()
    srv.wait_for(r"^dropped OTel trace .*: no LLM, tool or agent span in it, beside other traces, removing t1-")
    rc, out, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    (tmp_path / "same.otlp.json").write_text(json.dumps(otlp_json(spans)))
    mast("ingest", tmp_path / "same.otlp.json")
    live, filed = steps_of(tmp_path / "collect.duckdb"), steps_of(db)
    assert len(live) == 1 and live == filed


def test_a_late_piece_extends_the_stored_trace_and_its_labels_go(server, tmp_path, mast, db):
    """The first envelopes of an ag2 1.x workflow are stored as a trace; the rest of the
    run (linked to the same channel) arrives later: the trace is rebuilt whole, replacing
    the stored one, whose labels go with it (and are reported, as re-ingest does)."""
    from mast.model import Annotation, Label
    spans = readable_spans(FW / "ag2x/workflow/telemetry.otlp.json")
    pieces = pieces_by_trace(spans)
    srv = server("--json")
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces")
    for piece in pieces[:2]:
        exporter.export(piece)
    srv.wait_for(r"^stored t1-")
    first = [x for x in srv.lines if x.startswith("stored ")][-1].split()[1]
    # a label on the first version (DuckDB has one writing process: between two runs)
    rc, _, _ = srv.stop(signal.SIGINT)
    assert rc == 0
    with Store(tmp_path / "collect.duckdb") as st:
        assert st.write_annotations([Annotation("1.1", Label.PRESENT, "human", trace_id=first)]) == 1
    srv = server("--json")
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces")
    for piece in pieces[2:]:
        exporter.export(piece)
    exporter.shutdown()
    srv.wait_for(r"replacing " + first)
    rc, out, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    line = next(x for x in srv.lines if "replacing " + first in x)
    assert "OTel traces" in line and "stitched" in line and "1 label(s) of them" in line, line
    summary = json.loads(out)
    assert summary["traces_replaced"] >= 1 and summary["labels_replaced"] == 1
    (tmp_path / "same.otlp.json").write_text(json.dumps(otlp_json(spans)))
    mast("ingest", tmp_path / "same.otlp.json")
    live, filed = steps_of(tmp_path / "collect.duckdb"), steps_of(db)
    assert live == filed and len(live) == 1 and live[0][0] != first
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM annotations")[0][0] == 0
        assert st.fetchall("SELECT count(DISTINCT stored_trace_id), count(*) FROM collect_traces") == [(1, 5)]


def test_pieces_posted_as_json_are_stitched_too(server, tmp_path, mast, db):
    """The exporter's JSON form (protobuf's JSON mapping: base64 ids), one request per OTel trace."""
    spans = readable_spans(FW / "otel/split_run.otlp.json")
    srv = server()
    for piece in pieces_by_trace(spans):
        code, _, _ = srv.post(json.dumps(otlp_json(piece)).encode(), "application/json")
        assert code == 200
    rc, _, err = srv.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    (tmp_path / "same.otlp.json").write_text(json.dumps(otlp_json(spans)))
    mast("ingest", tmp_path / "same.otlp.json")
    live, filed = steps_of(tmp_path / "collect.duckdb"), steps_of(db)
    assert len(live) == 1 and live == filed


def test_ties_made_in_either_order_and_an_ambiguous_parent_ties_nothing(tmp_path):
    """In-process, on a real store: a span whose parent (in another trace) arrives later
    joins that trace when the parent comes, replacing the version stored alone; a parent
    id two traces use ties neither (as ``group_traces``); the groups are those of
    ``group_traces`` over the same spans."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from mast.ingest.collect import Staged, index_request
    from mast.ingest.formats.otel.spans import group_traces, load_doc_spans

    res = Resource.create({"service.name": "ties"})

    def span(t: int, s: int, parent: int | None, name: str, start: int) -> ReadableSpan:
        ctx = SpanContext(t, s, is_remote=False, trace_flags=TraceFlags(1))
        par = SpanContext(t, parent, is_remote=False, trace_flags=TraceFlags(1)) if parent else None
        return ReadableSpan(name=name, context=ctx, parent=par, resource=res,
                            attributes={"gen_ai.operation.name": "chat", "gen_ai.prompt.0.role": "user",
                                        "gen_ai.prompt.0.content": name},
                            start_time=start, end_time=start + 1000)

    late_parent = span(0xA, 0xA1, None, "root a", 1_000_000)
    child = span(0xB, 0xB1, 0xA1, "child in b", 2_000_000)  # parent exported under trace a
    first = [child,
             span(0xC, 0xC1, 0xE1, "child in c", 3_000_000),  # parent id e1: used by d and e
             span(0xD, 0xE1, None, "root d", 4_000_000), span(0xE, 0xE1, None, "root e", 5_000_000)]
    with Store(tmp_path / "ties.duckdb") as st:
        col = Collector(st, idle=0)

        def send(spans):
            body = encode_spans(spans).SerializeToString()
            col.stage([Staged("protobuf", body, *index_request(body))])

        send(first)
        col.build_ready()
        alone = st.fetchall("SELECT stored_trace_id FROM collect_traces WHERE otel_trace_id = ?", [f"{0xB:032x}"])[0][0]
        send([late_parent])
        reps = []
        col.on_build = reps.append
        col.build_ready()
        assert [(r.otel_trace_ids, r.replaced) for r in reps] == [([f"{0xA:032x}", f"{0xB:032x}"], [alone])]
        groups = {}
        for t, g in st.fetchall("SELECT otel_trace_id, grp FROM collect_traces"):
            groups.setdefault(g, set()).add(t)
        every = first + [late_parent]
        filed = group_traces(load_doc_spans(Path("f"), otlp_json(every)))
        assert sorted(map(sorted, groups.values())) == sorted(sorted({s.trace_id for s in g}) for g in filed)
        assert len(groups) == 4
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 4  # b's version alone is gone


# -- the bound on staged state: settled groups leave the index after the horizon ------------

def _staged_rows(st: Store) -> int:
    return sum(st.fetchall(f"SELECT count(*) FROM {t}")[0][0]
               for t in ("collect_spans", "collect_traces", "collect_requests", "collect_llm"))


def test_staged_rows_stay_bounded_while_many_more_traces_are_collected(tmp_path):
    """In-process, on a real store: 60 runs of 6 spans, one request each, built as they
    complete.  With the horizon at 0 a settled group leaves the index as soon as it is
    stored, and every run is stored.  Without the bound (horizon None) the rows grow with
    every run: one request, its spans, one trace row and 2 LLM rows each."""
    from mast.ingest.collect import Staged, index_request
    mem = InMemorySpanExporter()
    provider = provider_for(mem)
    for i in range(60):
        run_two_agents(provider, task=f"Weather, city {i}?")
    by_run = pieces_by_trace(mem.get_finished_spans())
    assert len(by_run) == 60

    def collect(db: Path, horizon: float | None) -> list[int]:
        with Store(db) as st:
            col = Collector(st, idle=3600, horizon=horizon)
            seen = []
            for run in by_run:
                body = encode_spans(run).SerializeToString()
                col.stage([Staged("protobuf", body, *index_request(body))])
                assert col.build_ready() == 1  # its root ended: built at once
                seen.append(_staged_rows(st))
            assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 60
            return seen

    bounded = collect(tmp_path / "bounded.duckdb", 0)
    assert max(bounded) == 0  # pruned in the same build_ready
    # a new run on the emptied index goes on numbering after the fold's mark, not from 0
    mem.clear()
    run_two_agents(provider, task="One more city?")
    with Store(tmp_path / "bounded.duckdb") as st:
        body = encode_spans(mem.get_finished_spans()).SerializeToString()
        col = Collector(st, idle=3600, horizon=0)
        col.stage([Staged("protobuf", body, *index_request(body))])
        assert col.build_ready() == 1
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 61
    unbounded = collect(tmp_path / "unbounded.duckdb", None)
    assert unbounded[-1] == 60 * (1 + len(by_run[0]) + 1 + 2)


def test_a_late_piece_within_the_horizon_stitches_and_one_after_it_is_a_trace_of_its_own(tmp_path, mast, db):
    """The two OTel traces of one run (a link and a parent in the other trace), the second
    sent after the first was stored: within the horizon they are one trace, as `mast
    ingest` of the same spans gives; after it (horizon 0) the first trace's spans are gone
    and the second piece is stored alone, beside the first trace, not replacing it."""
    from mast.ingest.collect import Staged, index_request
    spans = readable_spans(FW / "otel/split_run.otlp.json")
    first, second = pieces_by_trace(spans)

    def collect(path: Path, horizon: float) -> tuple[list[str], list[str]]:
        with Store(path) as st:
            col = Collector(st, idle=0, horizon=horizon)
            stored = []
            for piece in (first, second):
                body = encode_spans(piece).SerializeToString()
                col.stage([Staged("protobuf", body, *index_request(body))])
                assert col.build_ready() == 1
                stored.append(sorted(r[0] for r in st.fetchall("SELECT trace_id FROM traces")))
            return stored

    within = collect(tmp_path / "within.duckdb", 3600)
    (tmp_path / "same.otlp.json").write_text(json.dumps(otlp_json(spans)))
    mast("ingest", tmp_path / "same.otlp.json")
    assert within[1] == [t[0] for t in steps_of(db)]  # one trace, ingest's
    assert within[0] != within[1]  # the first version was replaced
    after = collect(tmp_path / "after.duckdb", 0)
    assert after[0] == within[0] and len(after[1]) == 2 and after[0][0] in after[1]
    with Store(tmp_path / "after.duckdb", read_only=True) as st:
        assert _staged_rows(st) == 0


def test_the_live_endpoint_prunes_while_the_exporter_sends(server, tmp_path):
    """The real exporter (4 threads' worth of batches) against `mast collect --horizon 0`:
    the builder removes settled rows while the writer commits new requests on its own
    connection; nothing conflicts, every run is stored, nothing stays staged."""
    srv = server("--horizon", "0", "--json")
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces")
    p = TracerProvider(resource=Resource.create({"service.name": "weather-agents"}))
    p.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=16, schedule_delay_millis=20))
    for i in range(40):
        run_two_agents(p, task=f"Weather, city {i}?")
        if i % 8 == 7:
            assert p.force_flush(30_000)
    assert p.force_flush(30_000)
    p.shutdown()
    srv.wait_for(r"^stored t1-", n=40)
    rc, out, err = srv.stop()
    assert rc == 0 and "Traceback" not in err and "error" not in err, err
    summary = json.loads(out)
    assert summary["spans"] == 240 and summary["traces_stored"] >= 40 and summary["traces_pruned"] >= 40
    with Store(tmp_path / "collect.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 40
        assert _staged_rows(st) == 0


def test_a_stored_copy_that_grows_in_the_batch_of_its_holder_is_dropped_once(tmp_path):
    """In-process: a re-emitted call stored alone, then a late span of it staged with the
    crew trace that holds it: one build, one report saying it was dropped, its old version
    gone, the crew stored."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from mast.ingest.collect import Staged, index_request
    spans = readable_spans(FW / "crewai/research/openinference_events.otlp.json")
    crew, call, *_ = sorted(pieces_by_trace(spans), key=len, reverse=True)
    [c] = call
    late = ReadableSpan(name=c.name, context=SpanContext(c.context.trace_id, 0xFEED, is_remote=False,
                                                         trace_flags=TraceFlags(1)),
                        parent=c.context, resource=c.resource, attributes=dict(c.attributes),
                        start_time=c.start_time + 1, end_time=c.end_time - 1, instrumentation_scope=c.instrumentation_scope)
    with Store(tmp_path / "grow.duckdb") as st:
        col = Collector(st, idle=0)

        def send(piece):
            body = encode_spans(piece).SerializeToString()
            col.stage([Staged("protobuf", body, *index_request(body))])

        send(call)
        col.build_ready()
        [(alone,)] = st.fetchall("SELECT trace_id FROM traces")
        reps = []
        col.on_build = reps.append
        send(crew + [late])
        col.build_ready()
        tid = f"{c.context.trace_id:032x}"
        mine = [r for r in reps if tid in r.otel_trace_ids]
        assert len(mine) == 1 and mine[0].copy_of and mine[0].replaced == [alone] and mine[0].trace_id is None
        assert alone not in {r[0] for r in st.fetchall("SELECT trace_id FROM traces")}
        assert col.counters.traces_dropped == 1
