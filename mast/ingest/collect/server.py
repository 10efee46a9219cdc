"""The OTLP/HTTP receiver: ``POST /v1/traces`` (protobuf or JSON, optionally gzip).

Request threads (a ``ThreadingHTTPServer``) read, decompress, check and index a body
(:func:`~mast.ingest.collect.proto.index_request`), then hand it to the one writer
thread through a bounded queue and wait: the writer commits the body and its span index
for every request waiting (one transaction for the group), and only then are they
answered 200.  A full queue is answered 503 with ``Retry-After``
at once (the OTel exporters retry on 503), so memory is bounded by the queue size times
the body limit.  A builder thread, on a connection of its own, builds the traces that are
ready (:mod:`mast.ingest.collect.staging`) meanwhile: the writer only appends span rows
and the builder never touches them, so their transactions do not conflict, and a request
never waits for a build.  With ``build_processes`` the builder maps each batch's spans to
traces in a process of its own while it stores the batch before
(:class:`~mast.ingest.collect.staging.Pipeline`).

Acknowledging comes first, but building keeps up: building costs several times the CPU
per span of acknowledging, under the same GIL.  While requests are arriving (one in
flight, or one began less than ``BUSY`` seconds ago) and fewer than ``DEFER_BELOW`` spans
wait to be built, the builder waits (at most ``MAX_DEFER`` seconds), so a burst is
acknowledged at the rate a server that does nothing would acknowledge it; past that it
builds full batches beside the requests, so a sustained stream has its traces stored as
it goes instead of behind it.  A stream faster than the build is pushed back: once
``max_backlog`` spans wait to be built, requests are answered 503 with ``Retry-After``
(the exporters retry), so what waits on disk is bounded too.  Spans wait committed on
disk, never in memory.

Answers: 200 with an empty ``ExportTraceServiceResponse`` (protobuf, or ``{}`` for
JSON); 400 with a ``google.rpc.Status`` (protobuf) or ``{"code", "message"}`` (JSON)
whose message says what is wrong without echoing the body; 404, 405, 408 (a body that
stalls before its Content-Length), 411, 413, 415; 500 if the store failed; 503 when the queue
or the backlog is full, or shutting down.
"""

from __future__ import annotations

import gzip
import html
import json
import queue
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from mast.errors import IngestError, MastError
from mast.ingest.collect.proto import WireError, index_request
from mast.ingest.collect.staging import Collector, Pipeline, Staged, index_json

#: default limit on a request body, compressed and decompressed (the Collector's default is 4 MiB per gRPC message)
MAX_BODY = 16 * 1024 * 1024
#: the builder's yielding to requests (see above): seconds since the last request began
#: that count as busy, the longest a ready trace waits for a build while busy, and the
#: spans waiting below which a busy builder waits.  A builder that yielded until requests
#: paused (at most 5 s, then 2,000 spans) stored ~400 spans/s of a stream that never paused.
BUSY = 1.0
MAX_DEFER = 1.0
DEFER_BELOW = 20_000
#: spans committed and not built yet past which requests get 503 (about a minute of building)
MAX_BACKLOG = 1_000_000
#: the WAL DuckDB lets grow before it checkpoints: each checkpoint rewrites the last, partly
#: filled row group of every table written (bodies, span index, traces, steps), and at the
#: default 16 MB that was every second or two of a stream; 256 MB took the server's CPU from
#: 38-43 to 27-28 us per span, its shutdown's last checkpoint included (bench/RESULTS.md)
CHECKPOINT = "256MB"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass
class _Job:
    staged: Staged
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


def _status_pb(code: int, message: str) -> bytes:
    """A google.rpc.Status (code = field 1, message = field 2) in protobuf."""
    m = message.encode("utf-8")
    out = bytearray(b"\x08")
    c = code
    while True:
        b, c = c & 0x7F, c >> 7
        out.append(b | (0x80 if c else 0))
        if not c:
            break
    out.append(0x12)
    n = len(m)
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + m


def safe_reason(msg: str, limit: int = 300) -> str:
    """An error message fit to send back: printable ASCII, markup escaped, bounded.
    Messages may quote a value from the body (a bad id): it is never sent back raw."""
    s = msg.encode("ascii", "backslashreplace").decode("ascii")
    s = "".join(ch if ch.isprintable() else "?" for ch in s)
    if len(s) > limit:
        s = s[:limit] + "..."
    return html.escape(s)


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise OverflowError
    if not d.eof:
        raise ValueError("gzip body is truncated")
    return out


def defer(busy: bool, since_build: float, backlog: int, below: int = DEFER_BELOW) -> bool:
    """Whether the builder waits: while requests arrive, fewer than ``below`` spans wait
    to be built, and its last build was less than :data:`MAX_DEFER` seconds ago."""
    return busy and backlog < below and since_build < MAX_DEFER


class Receiver:
    """The HTTP server, its queue and its writer thread."""

    def __init__(self, collector: Collector, host: str = "127.0.0.1", port: int = 4318, *,
                 max_body: int = MAX_BODY, queue_size: int = 64, tick: float = 0.5,
                 max_backlog: int = MAX_BACKLOG, defer_below: int = DEFER_BELOW, build_processes: int = 0,
                 log: Callable[[str], None] | None = None):
        self.collector = collector
        self.max_body = max_body
        self.max_backlog = max_backlog
        self.defer_below = defer_below
        #: processes that map batches of spans to traces while this one stores (0: none)
        self.build_processes = build_processes
        #: spans committed and not built yet: counted by the builder after each build
        #: (from the store), and raised by the writer as it commits between builds
        self.backlog = 0
        self._backlog_lock = threading.Lock()
        self.tick = tick
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.queue: queue.Queue[_Job] = queue.Queue(maxsize=queue_size)
        self.stopping = threading.Event()
        #: set by a second stop(): build nothing more, leave it staged
        self.hurry = threading.Event()
        self._writer_done = threading.Event()
        #: set once every request thread has finished: the writer may then stop
        self._handlers_done = threading.Event()
        self.fatal: BaseException | None = None
        #: requests between their body read and their answer, and when the last began
        #: (monotonic): the builder waits while they come
        self._inflight = 0
        self._last_post = 0.0
        self._busy_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        # request threads are joined on close, so a request in flight is finished
        self.httpd.daemon_threads = False
        self.httpd.block_on_close = True
        self._writer = threading.Thread(target=self._write_loop, name="mast-collect-writer")
        self._builder = threading.Thread(target=self._build_loop, name="mast-collect-builder")

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    # -- the writer ------------------------------------------------------------------
    def _write_loop(self) -> None:
        """Commit what the request threads hand over; nothing else, so that a request
        never waits for a trace being built."""
        col = self.collector
        try:
            while True:
                try:
                    first = self.queue.get(timeout=self.tick)
                except queue.Empty:
                    if self._handlers_done.is_set():
                        break
                    continue
                jobs = [first]
                while len(jobs) < 256:
                    try:
                        jobs.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    n = col.stage(j.staged for j in jobs)
                    with col.counters.lock:
                        col.counters.requests += len(jobs)
                        col.counters.spans += n
                    with self._backlog_lock:
                        self.backlog += n
                except MastError as e:
                    for j in jobs:
                        j.error = str(e)
                for j in jobs:
                    j.done.set()
        except BaseException as e:  # the store failed: answer the waiting, stop serving
            self._fail_all(e)
        finally:
            self._writer_done.set()

    def _build_loop(self) -> None:
        """Build ready traces on the store's own connection (the writer commits on
        another) until the writer has finished; then those whose root has ended."""
        col = self.collector
        built_at = time.monotonic()
        pipe = Pipeline(col, self._start_pool(), self.log)
        try:
            while not self._writer_done.is_set() and not self.hurry.is_set():
                now = time.monotonic()
                busy = self._inflight > 0 or now - self._last_post < BUSY
                if defer(busy, now - built_at, self.backlog, self.defer_below):
                    self._writer_done.wait(0.05)
                    continue
                built = pipe.step()
                built_at = time.monotonic()
                waiting = col.backlog()
                with self._backlog_lock:
                    self.backlog = waiting
                if not built:
                    self._writer_done.wait(self.tick)
            if not self.hurry.is_set():
                pipe.drain()
            while not self.hurry.is_set() and col.build_ready(final=True):
                pass
        except BaseException as e:
            self._fail_all(e)
        finally:
            if pipe.pool is not None:
                pipe.pool.shutdown(wait=True, cancel_futures=True)

    def _start_pool(self):
        """The build process(es), or None.  Started from the builder thread: the fork server
        is a new process, not a fork of this one, so the threads running here do not matter."""
        if self.build_processes <= 0:
            return None
        from mast.ingest.collect.mapping import warm
        from mast.ingest.workers import _pool

        pool = _pool(self.build_processes)
        for _ in range(self.build_processes):
            pool.submit(warm)  # its imports now, before the first batch waits for them
        return pool

    def _fail_all(self, e: BaseException) -> None:
        if self.fatal is None:
            self.fatal = e
        while True:
            try:
                j = self.queue.get_nowait()
            except queue.Empty:
                break
            j.error = "store failure"
            j.done.set()
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()

    # -- lifecycle -------------------------------------------------------------------
    def serve(self) -> None:
        """Serve until :meth:`stop` (from another thread or a signal handler)."""
        with self.collector.store.checkpoint_threshold(CHECKPOINT):
            self.collector.open_stager()
            self._writer.start()
            self._builder.start()
            try:
                self.httpd.serve_forever(poll_interval=0.2)
            finally:
                self.stopping.set()
                self.httpd.server_close()  # joins the request threads: every request answered
                self._handlers_done.set()
                self._writer.join()
                self._builder.join()
                self.collector.close_stager()
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        """Stop accepting, finish what is in flight (safe to call from a signal handler).
        A second call also stops building: the traces not built yet stay staged, and the
        next run on the store builds them (a backlog can take minutes to store)."""
        if not self.stopping.is_set():
            self.stopping.set()
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        else:
            self.hurry.set()

    # -- requests --------------------------------------------------------------------
    def _handler_class(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "mast-collect"
            sys_version = ""
            timeout = 2.0  # an idle keep-alive connection is closed, so shutdown never waits on one

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass  # one line per request would drown the progress lines

            def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if rec.stopping.is_set():
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def _fail(self, code: int, reason: str, as_json: bool, close: bool = False) -> None:
                reason = safe_reason(reason)
                if close:
                    self.close_connection = True
                if as_json:
                    self._send(code, json.dumps({"code": 3 if code == 400 else 13, "message": reason}).encode(), JSON)
                elif code in (400, 413, 500, 503):
                    self._send(code, _status_pb(3 if code == 400 else 8 if code in (413, 503) else 13, reason), PROTOBUF)
                else:
                    self._send(code, reason.encode() + b"\n")

            def do_GET(self):
                self._fail(405 if self.path.split("?")[0] == "/v1/traces" else 404,
                           "POST OTLP trace requests to /v1/traces", False)

            def do_POST(self):
                try:
                    self._post()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                except Exception as e:  # a bug here must not drop the connection unanswered
                    rec.log(f"error: request failed: {type(e).__name__}: {e}")
                    self._fail(500, "internal error", False, close=True)

            def _post(self):
                with rec._busy_lock:
                    rec._inflight += 1
                    rec._last_post = time.monotonic()
                try:
                    self._post_body()
                finally:
                    with rec._busy_lock:
                        rec._inflight -= 1

            def _post_body(self):
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                as_json = ctype == JSON
                if self.path.split("?")[0] != "/v1/traces":
                    self._fail(404, "only /v1/traces is served (traces; not metrics or logs)", as_json, close=True)
                    return
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or self.headers.get("Content-Length") is None:
                    self._fail(411, "a Content-Length is required", as_json, close=True)
                    return
                try:
                    length = int(self.headers["Content-Length"])
                    if length < 0:
                        raise ValueError
                except ValueError:
                    self._fail(400, "bad Content-Length", as_json, close=True)
                    return
                if length > rec.max_body:
                    # the body is not read: the connection is closed after the answer
                    self._fail(413, f"body of {length} bytes is over the limit of {rec.max_body}", as_json, close=True)
                    return
                try:
                    body = self.rfile.read(length)
                except TimeoutError:
                    # a client that stalls mid-body (or sent a Content-Length longer than its
                    # body) is the client's fault, not an internal error: say so, store nothing
                    self._fail(408, f"the body stopped before its Content-Length of {length} bytes "
                               f"(nothing for {self.timeout:g} s)", as_json, close=True)
                    return
                if len(body) < length:
                    self.close_connection = True
                    return  # the client went away mid-body: nothing to answer, nothing stored
                if ctype not in (PROTOBUF, JSON):
                    self._fail(415, f"Content-Type must be {PROTOBUF} or {JSON}", as_json)
                    return
                enc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
                if enc == "gzip":
                    try:
                        body = _gunzip(body, rec.max_body)
                    except OverflowError:
                        self._fail(413, f"decompressed body is over the limit of {rec.max_body} bytes", as_json)
                        return
                    except (zlib.error, ValueError, EOFError, gzip.BadGzipFile) as e:
                        self._fail(400, f"bad gzip body: {e}", as_json)
                        return
                elif enc != "identity":
                    self._fail(415, "Content-Encoding must be gzip or identity", as_json)
                    return
                try:
                    if as_json:
                        try:
                            doc = json.loads(body)
                        except (ValueError, UnicodeDecodeError) as e:
                            raise WireError(f"invalid JSON: {getattr(e, 'msg', 'not UTF-8')}") from None
                        staged = Staged("json", body, *index_json(doc))
                    else:
                        staged = Staged("protobuf", body, *index_request(body))
                except WireError as e:
                    self._fail(400, f"malformed {'JSON' if as_json else 'protobuf'} body: {e}", as_json)
                    return
                except IngestError as e:
                    self._fail(400, f"{e.record}: {e.reason}" if e.record is not None else e.reason, as_json)
                    return
                except RecursionError:
                    self._fail(400, "body nested too deep", as_json)
                    return
                if rec.stopping.is_set() and rec._writer_done.is_set():
                    self._fail(503, "shutting down", as_json, close=True)
                    return
                if len(staged) and rec.backlog >= rec.max_backlog:
                    # the build is behind by more than the limit: the exporter retries later
                    msg = f"{rec.backlog} spans wait to be built (limit {rec.max_backlog})"
                    self._send(503, _status_pb(8, msg) if not as_json else json.dumps({"code": 8, "message": msg}).encode(),
                               JSON if as_json else PROTOBUF, {"Retry-After": "1"})
                    return
                if len(staged):
                    job = _Job(staged)
                    try:
                        rec.queue.put_nowait(job)
                    except queue.Full:
                        self._send(503, _status_pb(8, "queue full") if not as_json else b'{"code":8,"message":"queue full"}',
                                   JSON if as_json else PROTOBUF, {"Retry-After": "1"})
                        return
                    while not job.done.wait(0.5):
                        if rec._writer_done.is_set():
                            job.error = job.error or "shutting down"
                            break
                    if job.error:
                        self._fail(500, f"not stored: {job.error}", as_json)
                        return
                self._send(200, b"{}" if as_json else b"", JSON if as_json else PROTOBUF)

        return Handler
