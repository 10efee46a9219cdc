"""CLI basics: help everywhere, JSON outputs, missing store, a second writer."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from conftest import ROOT, WHOWHEN, need
from mast.cli import COMMANDS, cli

SAMPLE = ROOT / "traces" / "who-and-when"


def _available() -> list[str]:
    return sorted(n for n, t in COMMANDS.items() if importlib.util.find_spec(t.split(":")[0]))


def test_help_lists_every_command(mast):
    res = mast("--help")
    for name in _available():
        assert name in res.stdout
    assert {"ingest", "traces", "stats", "taxonomy", "formats"} <= set(_available())


def _walk(group: click.Group, ctx: click.Context, prefix: str):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield f"{prefix} {name}".strip(), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, click.Context(cmd, parent=ctx, info_name=name), f"{prefix} {name}")


def test_every_command_has_help_text(mast):
    ctx = click.Context(cli, info_name="mast")
    seen = list(_walk(cli, ctx, ""))
    assert len(seen) >= 6
    missing = [name for name, cmd in seen if not (cmd.help or cmd.short_help or "").strip()]
    assert missing == []
    for name, _ in seen:  # and `--help` works for each, exit 0
        res = mast(*name.split(), "--help")
        assert "Usage:" in res.stdout


def test_traces_list_show_and_stats_json(mast):
    need(SAMPLE)
    mast("ingest", SAMPLE)
    rows = json.loads(mast("traces", "list", "--json").stdout)
    assert len(rows) == len(list(SAMPLE.rglob("*.json")))
    assert {r["system"] for r in rows} == {"Magentic-One", "CaptainAgent"}
    first = rows[0]
    shown = json.loads(mast("traces", "show", first["trace_id"][:12], "--json").stdout)
    assert shown["trace"]["trace_id"] == first["trace_id"]
    assert len(shown["steps"]) == first["n_steps"] == shown["trace"]["n_steps"]
    assert [s["step"] for s in shown["steps"]] == list(range(first["n_steps"]))
    assert len(shown["attributions"]) == 1 and shown["attributions"][0]["annotator"] == "human"
    text = mast("traces", "show", first["trace_id"][:12]).stdout
    assert first["trace_id"] in text
    stats = {r["system"]: r for r in json.loads(mast("stats", "--json").stdout)}
    assert sum(r["traces"] for r in stats.values()) == len(rows)
    assert sum(r["steps"] for r in stats.values()) == sum(r["n_steps"] for r in rows)
    assert all(r["labelled_traces"] == r["traces"] for r in stats.values())
    res = mast("traces", "show", "t1-nope", expect=1)
    assert "no trace with id" in res.stderr


def test_taxonomy_json(mast):
    d = json.loads(mast("taxonomy", "--json").stdout)
    assert len(d["modes"]) == 14
    assert sorted({m["category"].split()[0] for m in d["modes"]}) == ["FC1", "FC2", "FC3"]
    names = {m["id"]: m["name"].lower() for m in d["modes"]}
    assert "incomplete verification" in names["3.2"] and "incorrect verification" in names["3.3"]
    assert {"mad-round1", "mad-round23"} <= set(d["maps"])
    assert any("3.2" in n and "3.3" in n for n in d["notes"])
    assert all(m["definition"] and m["evidence"] for m in d["modes"])
    text = mast("taxonomy").stdout
    assert "3.3" in text and "note" in text


def test_formats(mast):
    rows = json.loads(mast("formats", "--json").stdout)
    names = [r["name"] for r in rows]
    assert {"mad", "whowhen", "messages"} <= set(names)
    assert names[-1] == "messages"  # the generic list is tried last
    assert all(r["description"] for r in rows)
    assert "whowhen" in mast("formats").stdout


@pytest.mark.parametrize("args", [["traces", "list"], ["traces", "show", "t1-x"], ["stats"]])
def test_read_only_commands_on_missing_store(tmp_path, args):
    missing = tmp_path / "nope.duckdb"
    res = CliRunner().invoke(cli, ["-d", str(missing), *args])
    assert res.exit_code == 1
    flat = re.sub(r"[\s│╭╮╰╯─]+", "", res.stderr)  # the error panel wraps long paths
    assert "nostoreat" + re.sub(r"\s+", "", str(missing)) in flat
    assert "mastingest" in flat  # says how to fix it
    assert not missing.exists()  # reading never creates a store


def test_second_writer_gets_store_in_use(tmp_path, mast, db):
    need(WHOWHEN)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from mast.store import Store; s = Store(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "ready"
        res = mast("ingest", SAMPLE, expect=1)
        assert "store is in use" in res.stderr
        assert "Traceback" not in res.stderr
    finally:
        holder.kill()
        holder.wait()
    mast("ingest", SAMPLE)  # once the other process is gone, writing works


def test_show_prints_trace_text_literally(tmp_path, mast):
    # Trace text is untrusted: rich markup in it must neither vanish nor crash the table.
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "System: **[chatting]** then [/bold] end"},
                                {"role": "assistant", "name": "bot", "content": "[red]ok[/red]"}]))
    mast("ingest", chat)
    [row] = json.loads(mast("traces", "list", "--json").stdout)
    text = mast("traces", "show", row["trace_id"], "--width", "200").stdout
    assert "**[chatting]** then [/bold] end" in text and "[red]ok[/red]" in text
