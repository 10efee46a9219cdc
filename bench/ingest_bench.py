"""Ingest benchmark: `mast ingest` against DuckDB's own `read_json` on the same bytes.

Run from a fresh clone (needs ../shared/datasets beside it):

    .venv/bin/python bench/ingest_bench.py [--size-mb 500] [--out DIR] [--huge-mb 300]

1. Builds (or reuses) a corpus of about --size-mb MB under <out>/corpus by replicating
   the sample traces with fresh ids (see bench/_corpus.py).
2. Runs the real CLI, ``mast -d <fresh store> ingest <corpus> --json``, in a subprocess
   and samples the resident memory of its whole process tree every 50 ms.
3. Runs the reference in a subprocess: DuckDB's ``read_json`` of the same files into
   tables of a fresh on-disk database, one ``CREATE TABLE ... AS SELECT * FROM
   read_json('<folder glob>', format='auto', union_by_name=true)`` per shape folder.
4. Optionally (--huge-mb) ingests one huge JSONL file and one huge MAD array alone, to
   check that memory stays bounded whatever the file size.

Prints a Markdown summary and writes <out>/ingest_<timestamp>.json.  Never part of the
test run.  Targets (issue 2): mast rate >= 0.3 x reference rate; peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _corpus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


# -- process-tree memory sampling ------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _rss_kb(pid: int) -> tuple[int, int, int]:
    """(VmRSS, VmHWM, Pss) of one process in kB, or zeros when it is gone.

    Pss (proportional set size) counts a page shared by n processes as 1/n in each, so
    the Pss of a process tree sums to the memory it really uses; summing RSS counts the
    pages that forked parser workers share with their parent once per process.
    """
    rss = hwm = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, hwm, pss


class TreeMemory(threading.Thread):
    """Samples the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_tree_kb = 0  # max over samples of the summed RSS of the tree
        self.peak_tree_pss_kb = 0  # max over samples of the summed Pss of the tree
        self.peak_proc_kb: dict[int, int] = {}  # VmHWM per process seen
        self.cpu_ticks: dict[int, int] = {}  # last utime+stime seen per process
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            kids = _children_map()
            tree, todo = [], [self.pid]
            while todo:
                p = todo.pop()
                tree.append(p)
                todo.extend(kids.get(p, []))
            total = total_pss = 0
            for p in tree:
                try:
                    with open(f"/proc/{p}/stat", "rb") as f:
                        st = f.read()
                    fields = st[st.rindex(b")") + 2:].split()
                    self.cpu_ticks[p] = int(fields[11]) + int(fields[12])  # utime + stime
                except (OSError, ValueError, IndexError):
                    pass
                rss, hwm, pss = _rss_kb(p)
                total += rss
                total_pss += pss
                if hwm:
                    self.peak_proc_kb[p] = max(self.peak_proc_kb.get(p, 0), hwm)
            self.peak_tree_kb = max(self.peak_tree_kb, total)
            self.peak_tree_pss_kb = max(self.peak_tree_pss_kb, total_pss)
            self.stop.wait(self.every)


def run_measured(cmd: list[str], env: dict | None = None) -> dict:

    # CPU time of the whole tree: unlike wall time it hardly depends on what else the
    # shared machine is running.
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    mem = TreeMemory(p.pid)
    mem.start()
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    mem.stop.set()
    mem.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The root's exact CPU (with the children it waited for) from rusage; descendants it
    # did not wait for (parser workers live under the multiprocessing fork server) from
    # the last /proc sample of each: they may miss their final <= 50 ms.
    hz = os.sysconf("SC_CLK_TCK")
    others = sum(t for pid, t in mem.cpu_ticks.items() if pid != p.pid) / hz
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) + others
    return {"cmd": cmd, "rc": p.returncode, "wall_s": wall, "cpu_s": cpu, "stdout": out, "stderr": err[-4000:],
            "peak_tree_rss_mb": mem.peak_tree_kb / 1024, "peak_tree_pss_mb": mem.peak_tree_pss_kb / 1024,
            "peak_proc_hwm_mb": max(mem.peak_proc_kb.values(), default=0) / 1024,
            "processes": len(mem.peak_proc_kb)}


# -- the two measured jobs ---------------------------------------------------------------
def run_mast(paths: list[Path], store: Path, extra_env: dict | None = None) -> dict:
    for p in store.parent.glob(store.name + "*"):
        p.unlink()
    env = {**os.environ, **(extra_env or {})}
    env.pop("MAST_DB", None)
    r = run_measured([str(VENV_BIN / "mast"), "-d", str(store), "ingest", *map(str, paths), "--json",
                      "--keep-going"], env)
    try:
        r["summary"] = json.loads(r["stdout"])
    except ValueError:
        raise SystemExit(f"mast ingest failed (exit {r['rc']}):\n{r['stderr']}") from None
    if r["summary"]["errors"]:  # measured anyway, but said loudly: a failed file is not a fair rate
        print(f"warning: {len(r['summary']['errors'])} file(s) failed, e.g. {r['summary']['errors'][:3]}",
              file=sys.stderr)
    r["store_mb"] = sum(p.stat().st_size for p in store.parent.glob(store.name + "*")) / 1e6
    return r


_REFERENCE = r"""
import duckdb, json, sys, time
db, root, groups = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
out = []
t0 = time.perf_counter()
for i, g in enumerate(groups):
    t = time.perf_counter()
    con.execute(f"CREATE TABLE g{i} AS SELECT * FROM read_json(?, format='auto', union_by_name=true, "
                f"maximum_object_size=268435456{g.get('extra', '')})", [root + '/' + g['glob']])
    n = con.execute(f"SELECT count(*) FROM g{i}").fetchone()[0]
    out.append({"glob": g["glob"], "rows": n, "seconds": time.perf_counter() - t})
con.execute("CHECKPOINT")
print("RESULT " + json.dumps({"groups": out, "seconds": time.perf_counter() - t0, "threads":
                  con.execute("SELECT current_setting('threads')").fetchone()[0]}))
"""


def run_reference(corpus: _corpus.Corpus, db: Path) -> dict:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    groups = [{"glob": g["glob"], **({"extra": ", ignore_errors=true"} if g["glob"].startswith("fixtures/") else {})}
              for g in corpus.groups]
    r = run_measured([sys.executable, "-c", _REFERENCE, str(db), corpus.root, json.dumps(groups)])
    if r["rc"] != 0:
        raise SystemExit(f"reference read_json failed:\n{r['stderr']}")
    r["result"] = json.loads(next(ln[7:] for ln in r["stdout"].splitlines() if ln.startswith("RESULT ")))
    return r


def machine() -> dict:
    mem = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "ram_gb": round(int(mem) / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "loadavg": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=500, help="corpus size (default 500)")
    ap.add_argument("--big-mb", type=int, default=40, help="size of the few large files (default 40)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="work folder (gitignored)")
    ap.add_argument("--corpus", type=Path, help="corpus folder (default <out>/corpus)")
    ap.add_argument("--huge-mb", type=int, default=0, help="also ingest one huge file of this size alone")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--skip-corpus-run", action="store_true", help="only the --huge-mb check")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731
    corpus_dir = a.corpus or a.out / "corpus"
    t = time.perf_counter()
    corpus = _corpus.build(corpus_dir, a.size_mb, a.big_mb, log=log)
    log(f"corpus ready in {time.perf_counter() - t:.0f} s: {corpus.files} files, {corpus.bytes / 1e6:.0f} MB")
    res: dict = {"machine": machine(), "corpus": {k: getattr(corpus, k) for k in
                                                  ("root", "size_mb", "big_mb", "bytes", "files", "by_shape")}}
    mb = corpus.bytes / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="mast-bench-", dir=a.out))
    if not a.skip_corpus_run:
        log("running mast ingest ...")
        m = run_mast([Path(corpus.root)], tmp / "mast.duckdb")
        s = m["summary"]
        res["mast"] = {"wall_s": m["wall_s"], "mb_s": mb / m["wall_s"], "cpu_s": m["cpu_s"],
                       "mb_per_cpu_s": mb / m["cpu_s"], "steps": s["steps"],
                       "steps_s": s["steps"] / m["wall_s"], "traces_new": s["traces_new"],
                       "traces_present": s["traces_present"], "files": s["files"], "errors": len(s["errors"]),
                       "peak_tree_rss_mb": m["peak_tree_rss_mb"], "peak_proc_hwm_mb": m["peak_proc_hwm_mb"],
                       "peak_tree_pss_mb": m["peak_tree_pss_mb"], "processes": m["processes"], "store_mb": m["store_mb"], "loadavg_after": os.getloadavg()}
        log(json.dumps(res["mast"]))
        for p in tmp.glob("mast.duckdb*"):
            p.unlink()
        if not a.skip_reference:
            log("running reference read_json ...")
            r = run_reference(corpus, tmp / "ref.duckdb")
            res["reference"] = {"wall_s": r["wall_s"], "read_json_s": r["result"]["seconds"],
                                "cpu_s": r["cpu_s"], "mb_per_cpu_s": mb / r["cpu_s"],
                                "mb_s": mb / r["wall_s"], "groups": r["result"]["groups"],
                                "threads": r["result"]["threads"], "peak_tree_rss_mb": r["peak_tree_rss_mb"],
                                "peak_tree_pss_mb": r["peak_tree_pss_mb"],
                                "loadavg_after": os.getloadavg()}
            res["ratio"] = res["mast"]["mb_s"] / res["reference"]["mb_s"]
            res["cpu_ratio"] = res["mast"]["mb_per_cpu_s"] / res["reference"]["mb_per_cpu_s"]
            log(json.dumps({k: v for k, v in res["reference"].items() if k != "groups"}))
            for p in tmp.glob("ref.duckdb*"):
                p.unlink()
    if a.huge_mb:
        res["huge"] = []
        for kind in ("jsonl", "mad"):
            f = _corpus.huge_file(a.out / "huge", a.huge_mb, kind)
            log(f"running mast ingest on one {a.huge_mb} MB file ({f.name}) ...")
            m = run_mast([f], tmp / "huge.duckdb")
            size = f.stat().st_size / 1e6
            res["huge"].append({"file": f.name, "mb": size, "wall_s": m["wall_s"], "mb_s": size / m["wall_s"],
                                "steps": m["summary"]["steps"], "peak_tree_rss_mb": m["peak_tree_rss_mb"],
                                "peak_tree_pss_mb": m["peak_tree_pss_mb"],
                                "peak_proc_hwm_mb": m["peak_proc_hwm_mb"]})
            log(json.dumps(res["huge"][-1]))
            for p in tmp.glob("huge.duckdb*"):
                p.unlink()
    tmp.rmdir()
    res["loadavg_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (a.out / f"ingest_{stamp}.json").write_text(json.dumps(res, indent=1))
    print(markdown(res))
    return 0


def markdown(res: dict) -> str:
    mc, c = res["machine"], res["corpus"]
    lines = [f"- machine: {mc['nproc']} cores ({mc['cpu']}), {mc['ram_gb']} GB RAM, Python {mc['python']}; "
             f"load average at start {', '.join(f'{x:.2f}' for x in mc['loadavg'])}",
             f"- corpus: {c['bytes'] / 1e6:.0f} MB in {c['files']} files ("
             + ", ".join(f"{k} {v['files']} files / {v['bytes'] / 1e6:.0f} MB" for k, v in c["by_shape"].items()) + ")"]
    if "mast" in res:
        m = res["mast"]
        lines.append(f"- mast ingest: {m['wall_s']:.1f} s, **{m['mb_s']:.1f} MB/s**, CPU {m['cpu_s']:.0f} s "
                     f"({m['mb_per_cpu_s']:.1f} MB per CPU-second), {m['steps']:,} steps "
                     f"({m['steps_s']:,.0f} steps/s), {m['traces_new']:,} new traces, {m['traces_present']} already "
                     f"present, {m['errors']} errors; peak memory of the process tree ({m['processes']} processes) "
                     f"**{m['peak_tree_pss_mb']:.0f} MB PSS** (sum of RSS {m['peak_tree_rss_mb']:.0f} MB, counting "
                     f"shared pages once per process); largest single process RSS {m['peak_proc_hwm_mb']:.0f} MB; "
                     f"store {m['store_mb']:.0f} MB")
    if "reference" in res:
        r = res["reference"]
        lines.append(f"- reference (DuckDB read_json, {r['threads']} threads): {r['wall_s']:.1f} s, "
                     f"**{r['mb_s']:.1f} MB/s**, CPU {r['cpu_s']:.0f} s ({r['mb_per_cpu_s']:.1f} MB per CPU-second), peak RSS {r['peak_tree_rss_mb']:.0f} MB (PSS {r['peak_tree_pss_mb']:.0f} MB)")
        lines.append(f"- ratio mast / reference: **{res['ratio']:.2f}** by wall time (target >= 0.30); "
                     f"{res['cpu_ratio']:.2f} by CPU time")
    for h in res.get("huge", []):
        lines.append(f"- one huge file {h['file']} ({h['mb']:.0f} MB): {h['wall_s']:.1f} s, {h['mb_s']:.1f} MB/s, "
                     f"{h['steps']:,} steps, peak memory {h['peak_tree_pss_mb']:.0f} MB PSS (RSS {h['peak_tree_rss_mb']:.0f} MB)")
    lines.append(f"- load average at end: {', '.join(f'{x:.2f}' for x in res['loadavg_end'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
