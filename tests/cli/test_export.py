"""`mast export annotations|exposure` in every format."""

from __future__ import annotations

import csv
import io
import json

import polars as pl
import pytest

from mast.taxonomy import load
from tests.report.conftest import build_small

N_MODES = len(load().modes)


@pytest.fixture
def small(db):
    return build_small(db)


def test_annotations_csv_and_jsonl_on_stdout(mast, small):
    rows = list(csv.DictReader(io.StringIO(mast("export", "annotations", "--format", "csv").stdout)))
    # rules: 4 traces × (1.3, 3.3, 2.4 unknown) = 12; human: 2 × 14 = 28
    assert len(rows) == 40
    r = next(r for r in rows if r["annotator"] == "rules" and r["label"] == "present" and r["mode"] == "3.3")
    assert r["system"] == "alpha" and json.loads(r["evidence_steps"]) == [2, 3]
    lines = mast("export", "annotations", "--format", "jsonl", "--annotator", "human").stdout.splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 28 and {x["annotator"] for x in recs} == {"human"}


def test_exposure_has_every_cell_and_not_assessed_is_not_zero(mast, small):
    rows = [json.loads(x) for x in mast("export", "exposure", "--format", "jsonl").stdout.splitlines()]
    views = {"best available", "rules", "human"}
    assert {r["annotator"] for r in rows} == views
    assert len(rows) == 2 * len(views) * N_MODES  # alpha, beta
    cell = next(r for r in rows if (r["system"], r["annotator"], r["mode"]) == ("alpha", "rules", "1.3"))
    assert (cell["count"], cell["n"], cell["rate"], cell["assessed"]) == (2, 4, 0.5, True)
    assert 0 < cell["ci_low"] < 0.5 < cell["ci_high"] < 1
    na = next(r for r in rows if (r["system"], r["annotator"], r["mode"]) == ("alpha", "rules", "2.4"))
    assert (na["assessed"], na["n"], na["rate"]) == (False, 0, None)
    assert all(r["rate"] is None for r in rows if r["system"] == "beta")


def test_parquet_needs_a_file(mast, small, tmp_path):
    res = mast("export", "exposure", "--format", "parquet", expect=1)
    assert "-o" in res.stderr and res.stdout == ""
    out = tmp_path / "ann.parquet"
    mast("export", "annotations", "--format", "parquet", "-o", out, "--system", "alpha")
    df = pl.read_parquet(out)
    assert df.height == 12 + 28 and df.schema["evidence_steps"] == pl.List(pl.Int32)
    out2 = tmp_path / "exp.csv"
    mast("export", "exposure", "-o", out2, "--annotator", "rules")
    rows = list(csv.DictReader(out2.open()))
    assert {r["annotator"] for r in rows} == {"best available", "rules"} and len(rows) == 2 * 2 * N_MODES
