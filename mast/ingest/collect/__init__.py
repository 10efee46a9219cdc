"""`mast collect`: a live OTLP/HTTP endpoint that stages spans and stores finished traces.

:mod:`proto` checks and indexes OTLP protobuf requests (with what ties each span's trace
to others) and reads them into the otel importer's spans, :mod:`staging` keeps open
traces (request bodies and a span index) in the store, stitches the traces of one run
into groups and builds finished ones, :mod:`mapping` maps a batch of their spans to
traces with the otel importer's mapping (in a build process of its own, or here), and
:mod:`server` is the HTTP receiver with its bounded queue and writer thread.
Write hooks (the rules' features) are passed in by the caller, as for ``mast ingest``.
"""

from mast.ingest.collect.proto import WireError, decode_request, index_request
from mast.ingest.collect.server import MAX_BODY, Receiver
from mast.ingest.collect.mapping import SOURCE_PREFIX
from mast.ingest.collect.staging import BuildReport, Collector, Staged, index_json

__all__ = ["MAX_BODY", "SOURCE_PREFIX", "BuildReport", "Collector", "Receiver", "Staged", "WireError",
           "decode_request", "index_json", "index_request"]
