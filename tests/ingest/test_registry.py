"""The importer registry: one detection order, and plugins that can rank above the catch-all.

Plugins are installed for real: a distribution on ``sys.path`` whose ``entry_points.txt``
names importers in the ``mast.importers`` group, read by a fresh interpreter (the
registry loads entry points once per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mast import ingest
from mast.ingest import registry

PLUGIN = '''
from mast.model import Step, StepKind, Trace


class _Base:
    description = "test plugin: a message list with a 'house' key"

    def detect(self, path, head):
        return b'"house"' in head

    def read(self, path):
        yield Trace(system=None, framework="house", source_format=self.name, source_path=str(path),
                    source_index=0, steps=[Step(agent="a", content="hi", kind=StepKind.MESSAGE)])


class Ahead(_Base):
    name = "house-ahead"
    before = "messages"


class Behind(_Base):
    name = "house-behind"


behind = Behind()
'''


def _install_plugin(root: Path, entries: str) -> None:
    (root / "house_plugin.py").write_text(PLUGIN)
    dist = root / "house_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: house-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mast.importers]\n" + textwrap.dedent(entries))


def _run(root: Path, messages_file: Path) -> dict:
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from mast import ingest
        print(json.dumps({{"order": [i.name for i in ingest.importers()],
                          "detected": ingest.detect(Path({str(messages_file)!r})).name}}))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout)


def _messages_file(tmp_path: Path) -> Path:
    p = tmp_path / "house.json"
    p.write_text(json.dumps([{"role": "user", "content": "hi", "house": 1}]))
    return p


def test_builtins_come_from_one_ordered_list_with_the_catch_all_last():
    names = [i.name for i in ingest.importers()][:len(registry.BUILTINS)]
    assert len(names) == len(set(names)) == len(registry.BUILTINS)
    assert names[-1] == "messages"
    for ref, name in zip(registry.BUILTINS, names):
        assert registry._resolve(ref).name == name


def test_entry_point_plugin_with_before_ranks_above_the_catch_all(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    _install_plugin(root, """
        ahead = house_plugin:Ahead
        behind = house_plugin:behind
    """)
    out = _run(root, _messages_file(tmp_path))
    order = out["order"]
    assert order.index("house-ahead") == order.index("messages") - 1
    assert order[-1] == "house-behind"
    assert out["detected"] == "house-ahead"


def test_entry_point_plugin_without_before_ranks_below_every_builtin(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    _install_plugin(root, "behind = house_plugin:behind\n")
    out = _run(root, _messages_file(tmp_path))
    assert out["order"][-2:] == ["messages", "house-behind"]
    assert out["detected"] == "messages"


def test_formats_lists_an_entry_point_plugin(tmp_path):
    # `mast formats` lists the built-ins from a static table unless a plugin may be installed
    root = tmp_path / "site"
    root.mkdir()
    _install_plugin(root, "ahead = house_plugin:Ahead\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    res = subprocess.run([sys.executable, "-m", "mast", "formats", "--json"], capture_output=True, text=True,
                         env=env, check=True)
    names = [r["name"] for r in json.loads(res.stdout)]
    assert names.index("house-ahead") == names.index("messages") - 1
    assert len(names) == len(registry.BUILTINS) + 1


_DETECT_ONLY = """
import json, sys
from pathlib import Path
from mast import ingest
name = ingest.detect(Path(sys.argv[1])).name if sys.argv[1] != "-" else ingest.get(sys.argv[2]).name
print(json.dumps({"detected": name,
                  "imported": sorted(m for m in sys.modules if m.startswith("mast.ingest.formats."))}))
"""


def _detect_only(arg: str, fmt: str = "", pythonpath: list[str] | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath or sys.path))
    res = subprocess.run([sys.executable, "-c", _DETECT_ONLY, arg, fmt], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(res.stdout)


def test_detection_imports_the_importers_only_up_to_the_one_that_takes_the_file():
    # An AgentChat TaskResult is the 20th of 29 built-ins': beyond the companion checks (mad,
    # the otel package's phoenix and langfuse, ag2x_hub), no later importer's module is imported.
    ww = Path(__file__).resolve().parents[1] / "fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"
    out = _detect_only(str(ww))
    assert out["detected"] == "autogen"
    mods = {m.split(".")[3] for m in out["imported"]}
    assert {"mad", "autogen"} <= mods
    assert not mods & {"ag2", "ag2_runtime", "ag2x_events", "trajectory", "messages"}
    # --format names one importer: only its module
    out = _detect_only("-", "langsmith")
    assert out["detected"] == "langsmith" and {m.split(".")[3] for m in out["imported"]} == {"langsmith"}


def test_a_plugin_is_asked_in_its_place_when_detection_comes_first(tmp_path):
    # no call that lists the importers first: detection itself finds the plugin may exist
    root = tmp_path / "site"
    root.mkdir()
    _install_plugin(root, "ahead = house_plugin:Ahead\n")
    out = _detect_only(str(_messages_file(tmp_path)), pythonpath=[str(root), *sys.path])
    assert out["detected"] == "house-ahead"
