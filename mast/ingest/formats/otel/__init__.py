"""OpenTelemetry spans (the ``otel`` importer)."""

from mast.ingest.formats.otel.importer import OTelImporter, load_spans

__all__ = ["OTelImporter", "load_spans"]
