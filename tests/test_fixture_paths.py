"""No fixture or sample trace carries the folders of the machine that generated it.

Stack traces and file locations in framework artefacts name the generator's virtualenv,
its checkout and its temporary folders; the generators replace them
(``generators/_venvs.py: scrub``: ``<venv>``, ``<python>``, ``<generators>``, ``<repo>``,
``<workdir>``, ``<tmp>``) so that the fixtures read the same on every machine and leak
nothing about it.
"""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

# an absolute path under a home, the temp folder or a build root, not inside a URL
# (``https://host/home/…``) and not a placeholder (``<tmp>/…``)
MACHINE_PATH = re.compile(rb"(?<![\w.:/<>-])/(?:work|home|tmp|root|Users)/[\w.~-]+")

#: Third-party records kept byte for byte (traces/SOURCE.md): the path is in the recorded
#: run of someone else's agent (a traceback it printed), not of this project's machines.
VERBATIM = {"traces/mast-human/MAD_human_labelled_subset.json"}


def _files():
    for top in ("tests/fixtures", "traces"):
        for p in sorted((ROOT / top).rglob("*")):
            rel = p.relative_to(ROOT).as_posix()
            # the generators' own defaults (--venv) are code, not fixtures
            if p.is_file() and "/generators/" not in rel and rel not in VERBATIM:
                yield rel


ROOTS = ("work", "home", "tmp", "root", "Users")


@pytest.mark.parametrize("top", ROOTS)
def test_the_pattern_finds_each_machine_root(top):
    for text in (f'File "/{top}/someone/lib/x.py", line 3', f'"location": "/{top}/run-1/checkpoints"'):
        assert MACHINE_PATH.search(text.encode()), text


def test_the_pattern_spares_placeholders_urls_and_relative_paths():
    for fine in (b'File "<venv>/lib/python3.11/x.py"', b"<tmp>/crew-research/checkpoints",
                 b"https://example.com/home/index.html", b"<workdir>/checkpoints", b"tmp/x", b"a/work/b"):
        assert not MACHINE_PATH.search(fine), fine


@pytest.mark.parametrize("rel", list(_files()))
def test_no_machine_path(rel):
    data = (ROOT / rel).read_bytes()
    found = sorted({m.group(0).decode(errors="replace") for m in MACHINE_PATH.finditer(data)})
    assert not found, f"{rel} names the generating machine's folders: {found[:5]}"
