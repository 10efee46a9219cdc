"""Peer benchmark: `mast ingest` against the normalisers users compare it with, each on its own input.

Run from a fresh clone (needs ../shared/datasets beside it and PyPI reachable once):

    .venv/bin/python bench/peers_bench.py [--out bench/out/peers] [--runs 3] [--only whowhen,mast_human]
        [--mixed 210] [--code <a checkout of another commit, for a before/after pair>]

1. Creates one virtualenv per peer under <out>/<peer> (reused when it exists) and
   installs the peer from PyPI, pinned:
   - ``atap`` (its Who&When adapter ``atap.io.whoswhen``: ``load_whoswhen`` + ``write_jsonl``,
     the library call its Who&When benchmark uses; atap has no CLI verb for it),
   - ``adamast`` (``adamast normalize <folder> --output <file>.jsonl``),
   - ``ghostspan`` (``ghostspan <files> --format otlp --json <file> --no-file --quiet``).
2. Builds the inputs under <out>/inputs (reused): Who&When x20 (both splits, 3,680 files,
   every copy's question marked so that each is a new trace for mast), the MAST human file
   x20 (every record's trace id and trace text marked), the three OTLP fixtures of
   tests/fixtures/frameworks/otel; and, with ``--mixed``, the mixed corpus of
   bench/ingest_bench.py against DuckDB ``read_json``.
3. Times each peer and mast on the same input, interleaved (peer, mast, peer, mast, ...),
   each run in a subprocess with the RSS of its process tree sampled every 50 ms; mast
   writes a fresh store each run (with the rules' features, as `mast ingest` always does).
   Reports the minimum wall time of ``--runs`` runs, the rate ratio mast/peer (> 1: mast
   faster) and the peak RSS.

Prints a Markdown table and writes <out>/peers_<timestamp>.json.  Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _corpus  # noqa: E402
from ingest_bench import run_mast, run_measured, run_reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PEERS = {"atap": "atap==0.1.0", "adamast": "adamast==0.2.2.2", "ghostspan": "ghostspan==0.1.0"}
OTLP = [ROOT / "tests/fixtures/frameworks/otel" / n
        for n in ("genai_legacy.otlp.json", "genai_latest.otlp.jsonl", "split_run.otlp.json")]
COPIES = 20

_ATAP = r"""
import sys
from atap.io.whoswhen import load_whoswhen, write_jsonl
print(write_jsonl(load_whoswhen(sys.argv[1]), sys.argv[2]))
"""


def venv(out: Path, peer: str) -> Path:
    """The peer's virtualenv (created and installed on first use); returns its bin folder."""
    d = out / peer
    bin_ = d / "bin"
    if not (bin_ / "python").exists() or not (d / ".installed").exists():
        print(f"installing {PEERS[peer]} into {d} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(d)], check=True)
        subprocess.run([str(bin_ / "python"), "-m", "pip", "install", "-q", PEERS[peer]], check=True)
        (d / ".installed").write_text(PEERS[peer] + "\n")
    return bin_


def build_whowhen(root: Path) -> Path:
    """Who&When x COPIES in the dataset's own layout (split folders), numbered files."""
    done = root / ".done"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for split in ("Algorithm-Generated", "Hand-Crafted"):
        (root / split).mkdir(parents=True)
        for f in sorted((_corpus.WHOWHEN / split).glob("*.json")):
            rec = json.loads(f.read_text(encoding="utf-8"))
            for k in range(COPIES):
                r = dict(rec)
                r["question"] = f"[bench run {k}] {rec.get('question', '')}"
                name = f"{k * 10_000 + int(''.join(c for c in f.stem if c.isdigit()) or 0)}.json"
                (root / split / name).write_text(json.dumps(r, ensure_ascii=False), encoding="utf-8")
    done.write_text("")
    return root


def build_mast_human(root: Path) -> Path:
    done = root / ".done"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    recs = json.loads(_corpus.MAD_HUMAN.read_text(encoding="utf-8"))
    tmpl = json.dumps([_corpus._mad_template(r) for r in recs], ensure_ascii=False)
    for k in range(COPIES):
        (root / f"mad_{k:02d}.json").write_text(tmpl.replace(_corpus.MARK, f"[bench run {k}]"), encoding="utf-8")
    done.write_text("")
    return root


def files_bytes(paths: list[Path]) -> tuple[int, int]:
    fs = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*.json*"))]
    return len(fs), sum(f.stat().st_size for f in fs)


def peer_cmd(peer: str, bin_: Path, inp: list[Path], dest: Path) -> list[str]:
    if peer == "atap":
        return [str(bin_ / "python"), "-c", _ATAP, str(inp[0]), str(dest)]
    if peer == "adamast":
        return [str(bin_ / "adamast"), "normalize", str(inp[0]), "--output", str(dest)]
    return [str(bin_ / "ghostspan"), *map(str, inp), "--format", "otlp", "--json", str(dest), "--no-file", "--quiet"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/peers")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="whowhen,mast_human,otlp", help="comma-separated: whowhen, mast_human, otlp")
    ap.add_argument("--code", type=Path, default=None,
                    help="time the mast of this checkout (put first on PYTHONPATH), e.g. one of main for a before/after pair")
    ap.add_argument("--mixed", type=int, default=0, metavar="MB",
                    help="also time the mixed corpus of this size against DuckDB read_json (0: skip)")
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    code = {"PYTHONPATH": str(a.code.resolve())} if a.code else None
    cases = {"whowhen": ("atap", lambda: [build_whowhen(out / "inputs/whowhen")]),
             "mast_human": ("adamast", lambda: [build_mast_human(out / "inputs/mast_human")]),
             "otlp": ("ghostspan", lambda: OTLP)}
    rows = []
    for name in [c for c in a.only.split(",") if c]:
        peer, inputs = cases[name]
        bin_ = venv(out, peer)
        inp = inputs()
        nfiles, nbytes = files_bytes(inp)
        peer_runs, mast_runs = [], []
        for i in range(a.runs):  # interleaved: both sides see the same load drift
            dest = out / f"{peer}.out"
            pr = run_measured(peer_cmd(peer, bin_, inp, dest))
            if pr["rc"] != 0:
                raise SystemExit(f"{peer} failed (exit {pr['rc']}):\n{pr['stderr']}")
            peer_runs.append(pr)
            mast_runs.append(run_mast(inp, out / "store.duckdb", code))
            print(f"{name} run {i + 1}: {peer} {pr['wall_s']:.2f} s, mast {mast_runs[-1]['wall_s']:.2f} s "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        pbest = min(peer_runs, key=lambda r: r["wall_s"])
        mbest = min(mast_runs, key=lambda r: r["wall_s"])
        s = mbest["summary"]
        rows.append({"input": name, "files": nfiles, "bytes": nbytes, "peer": peer,
                     "peer_wall_s": pbest["wall_s"], "peer_cpu_s": min(r["cpu_s"] for r in peer_runs), "peer_rss_mb": max(r["peak_tree_rss_mb"] for r in peer_runs),
                     "mast_wall_s": mbest["wall_s"], "mast_cpu_s": min(r["cpu_s"] for r in mast_runs),
                     "mast_rss_mb": max(r["peak_tree_rss_mb"] for r in mast_runs),
                     "mast_pss_mb": max(r["peak_tree_pss_mb"] for r in mast_runs),
                     "mast_traces": s.get("traces_new"), "mast_steps": s.get("steps"),
                     "ratio": pbest["wall_s"] / mbest["wall_s"], "load": os.getloadavg()[0],
                     "all_peer_s": [r["wall_s"] for r in peer_runs], "all_mast_s": [r["wall_s"] for r in mast_runs]})
    if a.mixed:
        corpus = _corpus.build(out / "inputs/mixed", size_mb=a.mixed, log=lambda *x: print(*x, file=sys.stderr))
        ref_runs, mast_runs = [], []
        for i in range(a.runs):
            ref_runs.append(run_reference(corpus, out / "ref.duckdb"))
            mast_runs.append(run_mast([Path(corpus.root)], out / "store.duckdb", code))
            print(f"mixed run {i + 1}: read_json {ref_runs[-1]['wall_s']:.2f} s, mast {mast_runs[-1]['wall_s']:.2f} s "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        rbest = min(ref_runs, key=lambda r: r["wall_s"])
        mbest = min(mast_runs, key=lambda r: r["wall_s"])
        rows.append({"input": f"mixed {a.mixed} MB", "files": corpus.files, "bytes": corpus.bytes,
                     "peer": "duckdb read_json", "peer_wall_s": rbest["wall_s"],
                     "peer_cpu_s": min(r["cpu_s"] for r in ref_runs),
                     "peer_rss_mb": max(r["peak_tree_rss_mb"] for r in ref_runs),
                     "mast_wall_s": mbest["wall_s"], "mast_cpu_s": min(r["cpu_s"] for r in mast_runs),
                     "mast_rss_mb": max(r["peak_tree_rss_mb"] for r in mast_runs),
                     "mast_pss_mb": max(r["peak_tree_pss_mb"] for r in mast_runs),
                     "mast_traces": mbest["summary"].get("traces_new"), "mast_steps": mbest["summary"].get("steps"),
                     "ratio": rbest["wall_s"] / mbest["wall_s"], "load": os.getloadavg()[0],
                     "all_peer_s": [r["wall_s"] for r in ref_runs], "all_mast_s": [r["wall_s"] for r in mast_runs]})
    # CPU time (whole process tree) is given beside wall time: on a shared machine it hardly
    # depends on the load, so its ratio is the steadier figure.
    print("| input | files, MB | peer | peer wall / CPU (min of %d) | mast wall / CPU (min of %d) "
          "| mast / peer rate (wall) | (CPU) | peer peak RSS | mast peak RSS (PSS) | load |" % (a.runs, a.runs))
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['input']} | {r['files']:,}, {r['bytes'] / 1e6:.1f} | {r['peer']} "
              f"| {r['peer_wall_s']:.2f} / {r['peer_cpu_s']:.2f} s | {r['mast_wall_s']:.2f} / {r['mast_cpu_s']:.2f} s "
              f"| **{r['ratio']:.2f}×** | {r['peer_cpu_s'] / r['mast_cpu_s']:.2f}× | {r['peer_rss_mb']:.0f} MB "
              f"| {r['mast_rss_mb']:.0f} MB ({r['mast_pss_mb']:.0f}) | {r['load']:.1f} |")
    save(out, "peers", rows)


def save(out: Path, prefix: str, rows: list[dict]) -> None:
    """The rows as ``<out>/<prefix>_<timestamp>.json``, named on stderr."""
    dest = out / f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    dest.write_text(json.dumps(rows, indent=1))
    print(f"wrote {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
