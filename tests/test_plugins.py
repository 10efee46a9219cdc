"""The quick look for plugin distributions (mast/plugins.py) before importlib.metadata."""

from __future__ import annotations

import sys
import zipfile

import pytest

from mast.plugins import entry_points, may_declare


def _dist(root, name, entry_points_txt):
    d = root / f"{name}-1.0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points_txt is not None:
        (d / "entry_points.txt").write_text(entry_points_txt)


@pytest.fixture
def path_only(monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "missing")])
    return site


def test_no_distribution_naming_the_group_means_no_lookup(path_only):
    _dist(path_only, "other", "[console_scripts]\nx = other:main\n")
    _dist(path_only, "plain", None)
    assert not may_declare("mast.importers")
    assert entry_points("mast.importers") == ()


def test_a_distribution_naming_the_group_is_looked_up_for_real(path_only):
    _dist(path_only, "house", "[mast.importers]\nhouse = house_mod:Importer\n")
    assert may_declare("mast.importers")
    assert [ep.name for ep in entry_points("mast.importers")] == ["house"]


def test_a_zip_on_the_path_is_left_to_importlib_metadata(path_only, tmp_path):
    z = tmp_path / "bundle.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("x.py", "")
    sys.path.append(str(z))
    assert may_declare("mast.importers")


def test_a_finder_with_distributions_of_its_own_is_asked(path_only, monkeypatch):
    class Finder:
        def find_spec(self, *a):
            return None

        def find_distributions(self, *a, **k):
            return iter(())

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert may_declare("mast.importers")
