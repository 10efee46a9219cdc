"""pyarrow imported without numpy (mast._arrow): an ingest loads no numpy, and a process
that goes on to need numpy (a classifier after an ingest, as `mast analyze` does) gets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_an_ingest_loads_no_numpy_and_numpy_still_imports_after(tmp_path):
    trace = ROOT / "traces" / "langgraph" / "supervisor.messages.json"
    out = _run(f"""
import sys
from mast._arrow import compute, pa
pc = compute()
assert "numpy" not in sys.modules
from mast.ingest.pipeline import ingest_paths
from mast.store import Store
from mast.store.encode import encode_traces
from mast import ingest as registry
path = __import__("pathlib").Path({str(trace)!r})
traces = list(registry.detect(path).read(path))
tables = encode_traces(traces)
assert tables.traces.num_rows == len(traces) > 0
with Store({str(tmp_path / "s.duckdb")!r}) as st:
    s = ingest_paths(st, [{str(trace)!r}])
    assert s.files[0].error is None and s.files[0].traces_new
print("numpy after ingest:", "numpy" in sys.modules)
import numpy as np
import polars as pl
assert pl.Series([1, 2, 3]).to_numpy().sum() == 6
assert pc.sum(pa.array([1, 2, 3])).as_py() == 6
from sklearn.linear_model import LogisticRegression
m = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
print("sklearn", int(m.predict(np.array([[3.0]]))[0]))
""")
    assert "numpy after ingest: False" in out and "sklearn 1" in out


def test_numpy_loaded_first_keeps_pyarrows_numpy_side():
    out = _run("""
import numpy as np
from mast._arrow import pa
print(pa.array(np.arange(3)).to_numpy().tolist())
""")
    assert out.strip() == "[0, 1, 2]"
