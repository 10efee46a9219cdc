"""OpenTelemetry spans (the ``otel`` importer): reading, dialects, per-framework mappings, steps."""

from mast.ingest.formats.otel.importer import OTelImporter
from mast.ingest.formats.otel.spans import Span, load_spans

__all__ = ["OTelImporter", "Span", "load_spans"]
