"""Write hooks: derived rows computed from each batch of traces as the store writes it.

The store knows nothing of what is derived from its traces (the rules' per-step
features are one such thing, see :func:`mast.classify.hooks.ingest_hooks`).  A caller that
wants derived rows kept in step with the traces passes hooks to the write
(:meth:`Store.write_parts`, and :meth:`Store.begin_staging` for a streamed file); the
ingest pipeline passes them through from :func:`mast.ingest.pipeline.ingest_paths`.

Contract of a hook:

- ``tables``: the store tables it writes.  While a big file is staged, these are staged
  with the trace tables and published in the same transaction, so a file's derived rows
  are stored whole with its traces or not at all.
- ``on_write(store, batch)``: called once per batch, inside the transaction that writes
  the batch's traces and steps, after they are written.  ``batch`` names relations that
  hold exactly the batch's *new* rows, as stored (redacted, cast; a temporary table, or a
  view over the batch when its INSERT only casts: read them, never write them), and where
  each of the hook's tables is written to (:meth:`WrittenBatch.into`).  A hook reads and writes only
  through :class:`Store` methods; an error it raises fails the batch (and so the file).
  It may be called on a thread other than the one that started the ingest (the ingest's
  writer thread), never on two batches at once.
- ``rows(store, batch)`` (optional): a SELECT per table of ``tables`` giving the batch's
  rows, over the relations ``batch`` names (each with ``trace_id``), or None when there is
  nothing to compute.  A hook that has it can run in the parser processes: they run these
  SELECTs on an in-memory store of their own over the batch as it will be stored
  (:mod:`mast.store.ready`), and the writer only appends the rows.  ``on_write`` should
  then insert exactly these rows, so the store holds the same wherever they were made; a
  hook is pickled to the parser processes once per ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from mast.errors import StoreError


@dataclass(frozen=True)
class WrittenBatch:
    """What a hook is shown of one batch being written."""

    #: relation holding the batch's new trace rows, as stored
    traces: str
    #: relation holding the batch's new step rows, as stored
    steps: str
    #: the tables being written to are staging copies (a streamed file), or the store's own
    staged: tuple[str, ...] = ()
    prefix: str = ""

    def into(self, table: str) -> str:
        """The table to INSERT this batch's rows of ``table`` into."""
        if not self.prefix:
            return table
        if table not in self.staged:
            raise StoreError(f"write hook writes {table!r}, which is not staged",
                             "List every table a hook writes in its `tables`, and pass the same hooks "
                             "to begin_staging and to the writes.")
        return self.prefix + table


class WriteHook(Protocol):
    #: the store tables the hook writes
    tables: Sequence[str]

    def on_write(self, store: Any, batch: WrittenBatch) -> None:
        """``store`` is the :class:`mast.store.Store` writing the batch (typed loosely: it
        imports this module)."""

