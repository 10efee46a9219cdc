"""Ingest: read trace files of every supported format into :class:`mast.model.Trace`.

Layout (each concern in one place):
- :mod:`mast.ingest.registry`: the importer contract, the built-ins in detection order,
  plugins, :func:`detect`;
- :mod:`mast.ingest.formats`: one module (or package) per source format; each defines
  importer classes and nothing registers itself;
- :mod:`mast.ingest._util`, :mod:`mast.ingest.langchain_messages`,
  :mod:`mast.ingest.autogen_common`: what several formats share (file and line reading
  with errors that name the record, timestamps; LangChain and AgentChat messages);
- :mod:`mast.ingest.pipeline`: files into a store.

Format notes (what each artefact is and what maps to what) are in docs/formats/.
"""

from mast.ingest.registry import (HEAD_BYTES, Importer, companion_note, detect, get, importers, read_head,
                                  register)

__all__ = ["HEAD_BYTES", "Importer", "companion_note", "detect", "get", "importers", "read_head", "register"]
