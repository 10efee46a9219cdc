"""The store: one DuckDB file holding traces, steps, labels and runs.

This package hands names on: :class:`Store` (:mod:`mast.store.store`, the only code in
mast that talks to DuckDB), the Arrow encoding of what is written
(:mod:`mast.store.encode`), write hooks (:mod:`mast.store.hooks`) and the schema's
migrations (:mod:`mast.store.schema`).
"""

from mast.store.encode import TraceTables, encode_annotations, encode_attributions, encode_traces
from mast.store.hooks import WriteHook, WrittenBatch
from mast.store.files import Replaced
from mast.store.store import Store, WriteResult, default_path

__all__ = ["Replaced", "Store", "TraceTables", "WriteHook", "WriteResult", "WrittenBatch", "default_path",
           "encode_annotations", "encode_attributions", "encode_traces"]
