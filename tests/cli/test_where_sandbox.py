"""`--where` is a condition over the traces table and nothing else (issue 11).

Each forbidden expression would run on main before the sandbox: read a file, list a
directory, read another table. A secret file in the temp dir stands in for /etc/passwd.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "classify"))

from conftest import unwrapped  # noqa: E402
from mast.errors import UsageError  # noqa: E402
from mast.store import Store  # noqa: E402
from rules_helpers import CASES, TASK, trace, write  # noqa: E402


@pytest.fixture
def two(db):
    return write(db, [trace("pos", CASES["3.3"][0], task=TASK, system="s1"),
                      trace("neg", CASES["3.3"][1], task=TASK, system="s2")])


def _secret(tmp_path) -> Path:
    p = tmp_path / "secret.csv"
    p.write_text("a,b\n1,2\n", encoding="utf-8")
    return p


FORBIDDEN = [
    ("exists (select * from read_csv('{f}'))", "read_csv"),
    ("task <> (select content from read_text('{f}'))", "read_text"),
    ("exists (select * from glob('{d}/*'))", "glob"),
    ("exists (select * from sniff_csv('{f}'))", "sniff_csv"),
    ("exists (select * from '{f}')", "secret.csv"),          # a file path used as a table
    ("exists (select * from duckdb_tables())", "duckdb_tables"),
    ("trace_id in (select trace_id from annotations)", "annotations"),
    ("trace_id in (select trace_id from main.runs)", "runs"),
    ("trace_id in (with x as (select * from read_csv('{f}')) select 'a' from x)", "read_csv"),
    ("system = 's1') OR (1=1", "syntax"),                     # cannot close the caller's parenthesis
    ("1=1; DROP TABLE traces", "more than one statement"),
    ("getenv('HOME') = 'x'", "getenv"),
]


@pytest.mark.parametrize("expr,named", FORBIDDEN)
def test_forbidden_where_is_refused_with_a_clear_error(two, db, mast, tmp_path, expr, named):
    f = _secret(tmp_path)
    res = mast("classify", "--with", "rules", "--where", expr.format(f=f, d=tmp_path), "--json", expect=1)
    msg = unwrapped(res.stderr)
    assert "--where may only refer to trace columns" in msg
    assert named.lower() in msg.lower()
    assert res.stdout == ""
    with Store(db, read_only=True) as st:  # refused before a run was recorded or a table dropped
        assert st.fetchall("SELECT count(*) FROM runs")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 2


@pytest.mark.parametrize("expr,n", [
    ("system = 's2'", 1),
    ("n_steps > (select min(n_steps) - 1 from traces) and task is not null", 2),
    ("source_index >= 0 -- a trailing comment cannot swallow the rest of the query", 2),
    ("json_extract_string(metadata, '$.nothing') is null", 2),
])
def test_conditions_over_trace_columns_still_work(two, mast, expr, n):
    out = json.loads(mast("classify", "--with", "rules", "--where", expr, "--json").stdout)
    assert out["traces"] == n


def test_learn_where_and_test_where_are_checked_too(two, db, tmp_path, mast):
    f = _secret(tmp_path)
    for opt in ("--where", "--test-where"):
        res = mast("learn", "attribution", opt, f"exists (select * from read_csv('{f}'))", expect=1)
        assert "may only refer to trace columns" in unwrapped(res.stderr)  # --test-where is checked as a --where
    res = mast("learn", "modes", "--where", "trace_id in (select trace_id from judge_cache)", expect=1)
    assert "judge_cache" in unwrapped(res.stderr)


def test_the_store_connection_keeps_external_access(two, db):
    # The check runs in a throw-away database: the store itself can still export files.
    with Store(db) as st:
        with pytest.raises(UsageError):
            st.where_sql("exists (select * from read_csv('x.csv'))")
        assert st.where_sql("outcome = 'failure'") == "outcome = 'failure'"
        st.execute(f"COPY (SELECT 1 AS x) TO '{db.parent / 'out.csv'}' (HEADER)")
    assert (db.parent / "out.csv").read_text().startswith("x")
