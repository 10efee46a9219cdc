"""Start-up benchmark: the fixed costs a user meets before any real work.

    .venv/bin/python bench/startup_bench.py [--runs 7] [--out bench/out/startup] [--code DIR] [--pair DIR]

Times, as subprocesses of the real console script (exactly what a user types):

- ``mast --help``, ``mast --version``, ``mast formats``;
- ``mast -d NEW ingest FILE``: one small framework fixture (an AgentChat ``TaskResult``,
  2 KB, 7 steps) into a store file that does not exist yet (schema created, then the file);
- ``mast -d EXISTING ingest FILE``: the same file into a store that already holds another
  file's traces (migrations already applied; a fresh copy of that store for every run, so
  the file is always new to it).

``--code DIR`` runs the ``mast`` package of another checkout (e.g. a worktree of the
commit before a change) through the same console script, by ``PYTHONPATH``, so a before
and an after can be measured in one session.  ``--pair DIR`` measures both in the same
run: each command of each round runs once with the package of DIR and once with this
one (alternating which goes first), and the table has a column pair for each.  Python may write its bytecode caches (the
subprocesses run without ``PYTHONDONTWRITEBYTECODE``), as it does for any user, and one
warm-up round is not counted: the figures are those of a second and later start.

Runs are interleaved (one of each command per round, ``--runs`` rounds) and the minimum
wall time is reported beside the median, user+sys CPU of the minimum run, and the
target (issue 16: ``--help`` and ``formats`` <= 0.3 s; one small ingest <= 0.5 s).  The
1-minute load average is printed before and after, because the machine is shared.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAST = Path(sys.executable).parent / "mast"
SMALL = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"
# A different file, so the "existing" store holds traces and the small file is new to it.
SEED = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/selector/task_result.json"

TARGETS = {"--help": 0.3, "formats": 0.3, "--version": 0.3,
           "ingest (new store)": 0.5, "ingest (existing store)": 0.5}


def _load() -> str:
    return "%.2f" % os.getloadavg()[0]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and child CPU (user+sys) seconds of one subprocess run."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system
                                                          - before.children_system)
    return wall, cpu


def _remove_store(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/startup")
    ap.add_argument("--code", type=Path, help="run the mast package of this checkout instead")
    ap.add_argument("--pair", type=Path, help="also run the mast package of this checkout, interleaved")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    envs = {"this": env}
    if args.pair:
        envs = {"pair": dict(env, PYTHONPATH=str(args.pair.resolve())), "this": env}
    seed = args.out / "seed.duckdb"
    _remove_store(seed)
    subprocess.run([str(MAST), "-d", str(seed), "ingest", str(SEED)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    new = args.out / "new.duckdb"
    existing = args.out / "existing.duckdb"

    def prepare_new() -> None:
        _remove_store(new)

    def prepare_existing() -> None:
        _remove_store(existing)
        shutil.copyfile(seed, existing)

    cases = [
        ("--help", None, [str(MAST), "--help"]),
        ("--version", None, [str(MAST), "--version"]),
        ("formats", None, [str(MAST), "formats"]),
        ("ingest (new store)", prepare_new, [str(MAST), "-d", str(new), "ingest", str(SMALL)]),
        ("ingest (existing store)", prepare_existing,
         [str(MAST), "-d", str(existing), "ingest", str(SMALL)]),
    ]
    load_before = _load()
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(k, name): [] for k in envs for name, _, _ in cases}
    for round_ in range(args.runs + 1):
        for name, prepare, argv in cases:
            order = list(envs) if round_ % 2 == 0 else list(reversed(envs))
            for k in order:
                if prepare:
                    prepare()
                took = _run(argv, envs[k])
                if round_:  # round 0 warms the bytecode and file caches
                    times[(k, name)].append(took)
    load_after = _load()

    code = f"{args.pair} (pair) and {args.code or 'installed'} (this)" if args.pair else (args.code or "installed")
    print(f"code: {code}; load average (1 min): {load_before} before, "
          f"{load_after} after; {args.runs} interleaved runs each; python {sys.version.split()[0]}")
    print()
    head = " | ".join(f"{k}: min wall | {k}: median wall | {k}: min CPU" for k in envs)
    print(f"| command | {head} | target | met ({list(envs)[-1]}) |")
    print("|---|" + "---:|" * (3 * len(envs)) + "---:|---|")
    for name, _, _ in cases:
        cells = []
        for k in envs:
            runs = times[(k, name)]
            wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
            cells += [f"{wall:.3f} s", f"{statistics.median(w for w, _ in runs):.3f} s", f"{cpu:.3f} s"]
        target = TARGETS[name]
        wall = min(w for w, _ in times[(list(envs)[-1], name)])
        print(f"| `{name}` | {' | '.join(cells)} | ≤ {target} s | {'yes' if wall <= target else 'no'} |")


if __name__ == "__main__":
    main()
