"""The wheel (not only an editable install) ships taxonomy/ and classifiers/ and runs outside the repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    try:
        import hatchling  # noqa: F401
    except ImportError:
        pytest.skip("hatchling not installed (pip install -e '.[test]')")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True)
    (whl,) = out.glob("mast-*.whl")
    return whl


def test_wheel_ships_data_folders(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "mast/_data/taxonomy/mast-v1.json" in names
    data = [n for n in names if n.startswith("mast/_data/classifiers/")]
    src = [p for p in (ROOT / "classifiers").rglob("*") if p.is_file()]
    assert len(data) == len(src)


def test_installed_wheel_runs_outside_the_repo(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-c", "import mast, sys; print(mast.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert res.stdout.startswith(str(site))
    res = subprocess.run([sys.executable, "-m", "mast", "taxonomy", "--json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert len(json.loads(res.stdout)["modes"]) == 14
