"""MAST-Data (MAD) records: the importer and the splitter of their raw trace text."""

from mast.ingest.formats.mad.importer import MadImporter
from mast.ingest.formats.mad.split import Split, split_trace

__all__ = ["MadImporter", "Split", "split_trace"]
