"""Tables for notebooks and other tools: annotations and exposure as polars frames.

Contract:
- :func:`annotations_frame` returns the stored labels joined with their trace's system,
  one row per stored annotation (nothing deduplicated: it is the raw table).
- :func:`exposure_frame` returns one row per (system, annotator view, mode) for every
  system and every mode of the taxonomy, with the same numbers as the report (see
  :mod:`mast.report.labels`); a mode not assessed has ``assessed = false``,
  ``n = 0`` and a null rate, never a zero rate.
- :func:`write_frame` writes parquet, csv or jsonl to a path, or csv/jsonl to a text
  stream; list columns become JSON text in csv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Sequence

import polars as pl

from mast.agreement import authority_rank
from mast.errors import UsageError
from mast.report.labels import BEST, Labels
from mast.scope import UNKNOWN_SYSTEM
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy

FORMATS = ("parquet", "csv", "jsonl")


def _filters(systems, annotators, alias="a") -> tuple[str, list]:
    where, params = [], []
    if systems:
        where.append("coalesce(t.system, ?) IN (SELECT unnest(?))")
        params += [UNKNOWN_SYSTEM, list(systems)]
    if annotators:
        where.append(f"{alias}.annotator IN (SELECT unnest(?))")
        params.append(list(annotators))
    return (" WHERE " + " AND ".join(where)) if where else "", params


def annotations_frame(store, systems: Sequence[str] | None = None,
                      annotators: Sequence[str] | None = None) -> pl.DataFrame:
    where, params = _filters(systems, annotators)
    return store.query(f"""
        SELECT a.trace_id, coalesce(t.system, '{UNKNOWN_SYSTEM}') AS system, a.taxonomy, a.mode, a.annotator,
               a.run_id, a.label, a.confidence, a.evidence_steps, a.rationale, a.created_at
        FROM annotations a JOIN traces t USING (trace_id){where}
        ORDER BY system, a.trace_id, a.annotator, a.mode, a.created_at""", params)


def exposure_frame(store, systems: Sequence[str] | None = None, annotators: Sequence[str] | None = None,
                   taxonomy: str = DEFAULT_TAXONOMY) -> pl.DataFrame:
    tax = load_taxonomy(taxonomy)
    with Labels(store, tax.id, systems, annotators) as labels:
        cells = {(c.system, c.annotator, c.mode): c for c in labels.cells()}
    views = [BEST] + sorted({c.annotator for c in cells.values()} - {BEST}, key=lambda a: (authority_rank(a), a))
    where, params = _filters(systems, None)
    all_systems = [r[0] for r in store.fetchall(
        f"SELECT DISTINCT coalesce(t.system, '{UNKNOWN_SYSTEM}') FROM traces t{where} ORDER BY 1", params)]
    rows = []
    for system in all_systems:
        for view in views:
            for m in tax.modes:
                c = cells.get((system, view, m.id))
                ci = c.ci if c else None
                rows.append({"system": system, "annotator": view, "mode": m.id, "mode_name": m.name,
                             "category": m.category_name, "assessed": bool(c), "count": c.count if c else 0,
                             "n": c.n if c else 0, "rate": c.rate if c else None,
                             "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None})
    schema = {"system": pl.Utf8, "annotator": pl.Utf8, "mode": pl.Utf8, "mode_name": pl.Utf8, "category": pl.Utf8,
              "assessed": pl.Boolean, "count": pl.Int64, "n": pl.Int64, "rate": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def write_frame(df: pl.DataFrame, fmt: str, path: str | Path | None = None, stream: IO[str] | None = None) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", "Use one of: " + ", ".join(FORMATS))
    if fmt == "parquet":
        if path is None:
            raise UsageError("parquet is binary and needs a file", "Add -o FILE.parquet (or use csv/jsonl on stdout).")
        df.write_parquet(path)
        return
    if fmt == "csv":
        lists = [n for n, t in df.schema.items() if isinstance(t, pl.List)]
        df = df.with_columns(pl.col(n).map_elements(lambda v: json.dumps(list(v)), return_dtype=pl.Utf8)
                             for n in lists) if lists else df
        text = df.write_csv()
    else:
        text = df.write_ndjson()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    else:
        stream.write(text)
