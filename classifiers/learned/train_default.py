"""Train the shipped default root-cause model from Who&When (deterministic).

    .venv/bin/python classifiers/learned/train_default.py [DATASETS_DIR]

DATASETS_DIR defaults to ../shared/datasets beside the clone.  It ingests
``who-and-when`` into a fresh temporary store, runs the rules (so their root cause is
scored as a baseline), trains with ``learn_attribution`` (5-fold nested CV, seed 0:
the same labels always give the same model and id), and writes
``classifiers/learned/attribution-default.json`` next to this file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    from mast.classify.learned.train import learn_attribution
    from mast.cli import cli
    from mast.store import Store

    datasets = Path(argv[0]) if argv else HERE.parent.parent.parent / "shared" / "datasets"
    src = datasets / "who-and-when"
    if not src.is_dir():
        print(f"no Who&When data at {src}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "train.duckdb")
        # through the commands, so this script does not depend on where ingest lives
        for args in (["ingest", str(src)], ["classify", "--with", "rules"]):
            cli.main(["-d", db, *args], prog_name="mast", standalone_mode=False)
        with Store(db) as store:
            res = learn_attribution(store, "human", k=5, compare=("rules",))
    dest = HERE / "attribution-default.json"
    dest.write_text(res.model.dumps(), encoding="utf-8")
    print(f"wrote {dest.name}: model {res.model.model_id}, {res.model.training['traces']} traces", file=sys.stderr)
    for system, f in res.cv.items():
        print(f"  {system}: n {f['n']}, agent {f['agent_accuracy']:.3f}, step {f['step_accuracy']:.3f}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
