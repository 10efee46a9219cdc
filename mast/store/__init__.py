"""The store: one DuckDB file holding traces, steps, labels and runs.

This package hands names on: :class:`Store` (:mod:`mast.store.store`, the only code in
mast that talks to DuckDB), the Arrow encoding of what is written
(:mod:`mast.store.encode`), write hooks (:mod:`mast.store.hooks`) and the schema's
migrations (:mod:`mast.store.schema`).
"""

from mast.store.hooks import WriteHook, WrittenBatch
from mast.store.files import Replaced
from mast.store.store import Store, WriteResult, default_path

_ENCODE = ("TraceTables", "encode_annotations", "encode_attributions", "encode_traces")


def __getattr__(name: str):
    # The Arrow encoding is imported when first named: pyarrow (with numpy) is ~0.15 s of
    # start, and a small ingest writes without it (mast.store.rows).
    if name in _ENCODE:
        from mast.store import encode

        return getattr(encode, name)
    raise AttributeError(f"module 'mast.store' has no attribute {name!r}")

__all__ = ["Replaced", "Store", "TraceTables", "WriteHook", "WriteResult", "WrittenBatch", "default_path",
           "encode_annotations", "encode_attributions", "encode_traces"]
