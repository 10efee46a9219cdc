"""MAD records (the MAST data set), both shapes.

- Human-labelled file: ``[{round, mas_name, benchmark_name, trace_id, trace, annotations:
  [{"failure mode": "<code> <name>...", annotator_1..3: bool}]}]``.  Rounds 1-3 use two
  older drafts of the taxonomy; codes are mapped onto mast-v1 with the taxonomy's maps
  (``mad-round1``, ``mad-round23``).  Each annotator's labels are stored as annotator
  ``human:annotator_N``, and the majority (>= 2 of 3) as ``human``.
- Full-dataset shape: ``{mas_name, llm_name, benchmark_name, trace: {trajectory}, mast_annotation:
  {code: 0|1}}``; labels are stored as annotator ``mad:o1`` (the MAST authors' o1 judge).
- mast-lint community records (MAD-style, no labels inside): labels are read from the
  sibling ``gold_labels<suffix>.json`` when it exists, as annotator ``community:mast-lint``.

The raw ``trace`` text is split into steps by :mod:`mast.ingest.formats.mad.split`; no character
of the original text is dropped.  When the trace is a JSON object (AG2, HyperAgent,
MetaGPT runs), the object minus the split field is kept in the trace's metadata as
``trace_wrapper`` (with ``trace_wrapper_field`` and ``trace_wrapper_form``), so the
problem statement, ``other_data`` and the annotators' ``note`` stay reachable.  The
record's own ``trace_id`` and ``round`` are kept in metadata and separate records whose
text is identical (records 3 and 8 of the human file).

A ``gold_labels<sfx>.json`` beside its ``raw_ag2_records<sfx>.json`` is a companion, not
a trace file: :meth:`MadImporter.companion` lets a folder walk skip it with a note.

Format notes: docs/formats/mad-whowhen.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import first_char, iter_records, load_json, require
from mast.ingest.formats.mad.split import split_trace
from mast.model import Annotation, Label, Outcome, Trace
from mast.taxonomy import load as load_taxonomy

_CODE_RX = re.compile(r"^\s*(?:FM-)?(\d+\.\d+)")
_FRAMEWORKS = {"AG2": "ag2", "AppWorld": "appworld", "HyperAgent": "hyperagent", "ChatDev": "chatdev",
               "MetaGPT": "metagpt", "Magentic": "autogen", "Magentic-One": "autogen",
               "OpenManus": "openmanus"}


def _draft_for_round(rnd: str | None) -> str | None:
    r = (rnd or "").lower()
    if r.startswith("round 1"):
        return "mad-round1"
    if r.startswith("round 2") or r.startswith("round 3"):
        return "mad-round23"
    return None  # "Generlazability" (sic) and anything newer: final codes


class MadImporter:
    name = "mad"
    description = "MAST MAD records: human-labelled file and full-dataset shape (mast_annotation)"
    example = '[{"round": "Round 1", "mas_name": "AppWorld", "trace_id": 0, "trace": "…", "mast_annotation": {"1.1": 0, …'

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) not in "[{":
            return False
        return b'"mas_name"' in head and b'"trace"' in head

    def companion(self, path: Path, head: bytes) -> str | None:
        """A note when ``path`` is a labels file this importer reads beside its records.

        ``gold_labels<sfx>.json`` next to ``raw_ag2_records<sfx>.json`` is not a trace
        file; a folder walk skips it with this note instead of failing on it.
        """
        if not (path.name.startswith("gold_labels") and path.suffix == ".json"):
            return None
        records_file = path.with_name("raw_ag2_records" + path.name[len("gold_labels"):])
        if records_file.exists() and b'"labels"' in head:
            return f"labels for {records_file.name}, read together with it (not a trace file)"
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        data = iter_records(path, "a JSON array of MAD records")  # streams big arrays
        gold = _community_gold(path)
        tax = load_taxonomy()
        codes = _Codes(tax)
        for i, rec in enumerate(data):
            yield self._record(path, i, rec, gold, codes)

    def _record(self, path: Path, index: int, rec: Any, gold: dict | None, codes: _Codes) -> Trace:
        require(path, index, rec, "mas_name", "trace")
        system = str(rec["mas_name"])
        bench = rec.get("benchmark_name")
        meta: dict[str, Any] = {k: rec[k] for k in ("round", "benchmark_name", "trace_id", "llm_name")
                                if k in rec}
        # Two GAIA records of the human file have the two fields swapped.
        if system == "GAIA" and bench in ("Magentic", "OpenManus"):
            system, meta["benchmark_name"] = bench, "GAIA"
            meta["fields_swapped_in_source"] = True
        meta["source_id"] = [rec.get("trace_id"), rec.get("round")]
        raw = rec["trace"]
        if not isinstance(raw, (str, dict)):
            raise IngestError(str(path), index, f"field trace has type {type(raw).__name__}, expected text")
        split = split_trace(system, raw)
        if split.wrapper is not None:
            # The JSON around the split field (problem statement, other_data, the
            # annotators' note...) stays reachable; see mast.ingest.formats.mad.split.
            meta["trace_wrapper"] = split.wrapper
            meta["trace_wrapper_field"] = split.field
            meta["trace_wrapper_form"] = split.form
        anns: list[Annotation] = []
        if "annotations" in rec:
            anns = _human_labels(path, index, rec, codes)
        elif "mast_annotation" in rec:
            anns = _full_labels(path, index, rec["mast_annotation"], codes)
        if gold is not None and str(rec.get("trace_id")) in gold:
            anns.extend(_gold_labels(gold[str(rec.get("trace_id"))], codes))
        return Trace(system=system, framework=_FRAMEWORKS.get(system, system.lower()),
                     source_format=self.name, source_path=str(path), source_index=index,
                     steps=split.steps, task=split.task, metadata={**meta, "splitter": split.method},
                     outcome=split.outcome or Outcome.UNKNOWN, annotations=anns)


class _Codes:
    """The taxonomy's mode ids, and the mode each label text of a file names (remembered: the
    human file repeats the same 14 "failure mode" texts in every record)."""

    def __init__(self, tax) -> None:
        self.tax = tax
        self.ids = tax.mode_ids  # a list: the order _gold_labels writes
        self.known = frozenset(self.ids)
        self._modes: dict[tuple, tuple[str, str | None] | None] = {}

    def mode(self, draft: str | None, text: Any) -> tuple[str, str | None] | None:
        """``(source code, mast-v1 mode or None)`` of a "failure mode" text; None if it has no code."""
        key = (draft, text) if type(text) is str else None
        hit = self._modes.get(key, False) if key is not None else False
        if hit is not False:
            return hit
        m = _CODE_RX.match(str(text))
        if not m:
            hit = None
        else:
            code = m.group(1)
            hit = code, self.tax.map_code(draft, code) if draft else (code if code in self.known else None)
        if key is not None:
            self._modes[key] = hit
        return hit


def _human_labels(path: Path, index: int, rec: dict, codes: _Codes) -> list[Annotation]:
    draft = _draft_for_round(rec.get("round"))
    blocks = rec["annotations"]
    if not isinstance(blocks, list):
        raise IngestError(str(path), index, "field annotations is not a list")
    out: list[Annotation] = []
    for b in blocks:
        if not isinstance(b, dict) or "failure mode" not in b:
            raise IngestError(str(path), index, "an annotation lacks its 'failure mode' field")
        hit = codes.mode(draft, b["failure mode"])
        if hit is None:
            raise IngestError(str(path), index, f"cannot read a mode code in {str(b['failure mode'])[:40]!r}")
        code, mode = hit
        if mode is None:
            continue  # an older-draft mode with no final counterpart
        keys = sorted(k for k in b if k.startswith("annotator_"))
        votes = [b[k] for k in keys]
        for k in keys:
            out.append(Annotation(mode=mode, label=Label.PRESENT if b[k] else Label.ABSENT,
                                  annotator=f"human:{k}"))
        if votes:
            pos = sum(bool(v) for v in votes)
            out.append(Annotation(mode=mode, label=Label.PRESENT if pos * 2 > len(votes) else Label.ABSENT,
                                  annotator="human", confidence=pos / len(votes),
                                  rationale=f"{pos} of {len(votes)} annotators"
                                            + (f"; source code {code} ({draft})" if draft else "")))
    return out


def _full_labels(path: Path, index: int, labels: Any, codes: _Codes) -> list[Annotation]:
    if not isinstance(labels, dict):
        raise IngestError(str(path), index, "field mast_annotation is not an object")
    out = []
    for code, v in labels.items():
        m = _CODE_RX.match(str(code))
        if m and m.group(1) in codes.known:
            out.append(Annotation(mode=m.group(1), label=Label.PRESENT if v in (1, True, "1", "yes") else Label.ABSENT,
                                  annotator="mad:o1"))
    return out


def _gold_labels(entry: dict, codes: _Codes) -> list[Annotation]:
    present = set()
    for c in entry.get("present", []):
        m = _CODE_RX.match(str(c))
        if m:
            present.add(m.group(1))
    return [Annotation(mode=m, label=Label.PRESENT if m in present else Label.ABSENT,
                       annotator="community:mast-lint", rationale=entry.get("notes") if m in present else None)
            for m in codes.ids]


def _community_gold(path: Path) -> dict | None:
    """Labels for ``raw_ag2_records<sfx>.json`` live in ``gold_labels<sfx>.json`` beside it."""
    if not path.name.startswith("raw_ag2_records"):
        return None
    g = path.with_name("gold_labels" + path.name[len("raw_ag2_records"):])
    if not g.exists():
        return None
    data = load_json(g)
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict):
        raise IngestError(str(g), None, "expected {labels: {trace_id: {present: [...]}}}")
    return labels
