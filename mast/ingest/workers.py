"""The parser processes of :mod:`mast.ingest.pipeline`: their pool, and what each keeps.

A parser process parses and encodes chunks of small files, then makes their rows ready
for the store (:mod:`mast.store.ready`) with the write hooks it was given at start-up (those
with ``rows`` that pickle: the rest run in the writer) on an in-memory store of its own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Sequence

from mast.store import Store, WriteHook
from mast.store.ready import ReadyTables, prepare

if TYPE_CHECKING:
    from mast.store.encode import TraceTables

#: In a parser process: the write hooks it runs (those with ``rows``) and its in-memory store.
WORKER: dict = {}


def trim() -> None:
    """Give the pages the last chunk freed back to the OS (glibc keeps them otherwise):
    a parser then holds one chunk's memory at a time, not its high-water mark."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        pass


@functools.cache
def _libc():
    import ctypes  # only in a parser process, once

    return ctypes.CDLL("libc.so.6")


def _ready(tables: TraceTables) -> TraceTables | ReadyTables:
    """``tables`` made ready in this parser process (its store is made on first use)."""
    store = WORKER.get("store")
    try:
        if store is None:
            # one DuckDB thread: the parser processes and the writer share the cores; and no
            # progress bar, which DuckDB prints on this process's stdout (the CLI's data)
            store = WORKER["store"] = Store(":memory:")
            store.execute("SET threads = 1")
            store.execute("SET enable_progress_bar = false")
        return prepare(store, tables, WORKER["hooks"])
    except Exception:  # the boundary: the writer then redacts the batch itself, as it always could
        # ...with the same statements, so a value that fails them fails there too, and the
        # group's retry names the file (not this process: it cannot tell the files apart).
        WORKER.pop("store", None)
        with contextlib.suppress(Exception):
            store.close()
        return tables


def _parser_hooks(hooks: Sequence[WriteHook]) -> list[WriteHook] | None:
    """The hooks the parser processes run: those with ``rows`` that pickle (others run in the writer)."""
    import pickle  # with the pool only, as multiprocessing (see _pool)

    out = []
    for h in hooks:
        if getattr(h, "rows", None) is None:
            continue
        try:
            pickle.dumps(h)
        except Exception:  # the boundary: a hook holding a lock or a connection stays in the writer
            continue
        out.append(h)
    return out


def broken(e: BaseException) -> bool:
    """Whether ``e``, raised by a parser's future, says the pool broke (a process died)."""
    from concurrent.futures import BrokenExecutor  # loaded with the pool already (see _pool)

    return isinstance(e, BrokenExecutor)


def _pool(workers: int, hooks: Sequence[WriteHook] = ()):
    # Imported here, though standard library: multiprocessing (with pickle, logging, queues
    # and sockets) is 0.016 s of every start, and only a job big enough for parser
    # processes uses it (bench/RESULTS.md, "Start-up, session 7").
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: the parent holds a DuckDB connection and its threads, which must not be
    # forked; preloading this module (instead of __main__) keeps worker start-up cheap and
    # never re-runs the CLI's entry point.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["mast.ingest.pipeline"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(), _parser_hooks(hooks)))


def _worker_init(writer_pid: int, hooks: list[WriteHook] | None = None) -> None:
    if hooks is not None:
        WORKER["hooks"] = hooks
        # A parser's Arrow buffers from the C allocator, whose freed pages trim() hands back:
        # Arrow's own pool keeps what a chunk's tables took for the next one, ~20 MB more
        # RSS per process at the same speed (bench/RESULTS.md, session 6).
        from mast._arrow import pa  # heavy; a parser process that makes ready rows loads it anyway

        pa.set_memory_pool(pa.system_memory_pool())

    # Ctrl-C reaches the whole process group: the parent stops the ingest (committed
    # groups stay); workers just end with it instead of printing their own tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # A worker waits on a queue whose write end it holds itself, so it would outlive a
    # writer killed with SIGKILL forever (with the fork server as its parent, it is not
    # even orphaned): leave as soon as the writer is gone.
    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(writer_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # the pid exists (reused by another user's process: rare; keep going)

    threading.Thread(target=watch, daemon=True, name="mast-writer-watch").start()


