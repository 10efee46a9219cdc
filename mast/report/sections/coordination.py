"""Coordination: where each system spends its steps, tokens and time (see :mod:`mast.coordination`).

Besides the step counts, per system: its topology and hub, parallelism against the Amdahl
ceiling, the coordination tax and its models, and two pictures drawn here as inline SVG
geometry (the partial only places what is computed here; no script): the who-talks-to-whom
graph (agents on a circle, the hub in the middle, edge width by message volume, each
direction bent to its own side) and the speedup-vs-agents curve (the ceiling for the
system's serial fraction, the ideal line, the measured point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mast.coordination import Edge, SystemFigures, amdahl, analytics, coordination
from mast.report.page import Page
from mast.report.section import Section, Values

#: At most this many agents are drawn per graph (the heaviest talkers); the rest are counted.
MAX_NODES = 10
GRAPH_W, GRAPH_H, RADIUS = 320, 240, 88
CURVE_W, CURVE_H, PAD = 320, 200, 34


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    x: float
    y: float
    hub: bool
    lx: float        # label position (outside the circle)
    ly: float
    anchor: str


@dataclass(frozen=True, slots=True)
class Arc:
    source: str
    target: str
    messages: int
    d: str           # SVG path
    width: float


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: list[Node]
    arcs: list[Arc]
    hidden_agents: int
    width: int = GRAPH_W
    height: int = GRAPH_H


@dataclass(frozen=True, slots=True)
class Curve:
    ceiling: str                 # polyline points of the Amdahl ceiling
    ideal: str                   # polyline points of speedup = N (clipped to the plot)
    px: float                    # the measured point
    py: float
    n: float
    speedup: float
    s: float
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    asymptote: float | None      # 1 / s, when inside the plot: the y of its dashed line
    asymptote_label: str
    width: int = CURVE_W
    height: int = CURVE_H
    pad: int = PAD


def graph(edges: list[Edge], hub: str | None) -> Graph | None:
    if not edges:
        return None
    volume: dict[str, int] = {}
    for e in edges:
        volume[e.source] = volume.get(e.source, 0) + e.messages
        volume[e.target] = volume.get(e.target, 0) + e.messages
    names = sorted(volume, key=lambda a: (-volume[a], a))[:MAX_NODES]
    shown = set(names)
    cx, cy = GRAPH_W / 2, GRAPH_H / 2
    ring = [a for a in names if a != hub] if hub in shown else names
    pos: dict[str, tuple[float, float]] = {}
    nodes = []
    if hub in shown:
        pos[hub] = (cx, cy)
        nodes.append(Node(hub, cx, cy, True, cx, cy + 26, "middle"))
    for i, a in enumerate(ring):
        # two agents side by side, more on a circle from the top
        t = math.pi * (1 - i) if len(ring) == 2 else -math.pi / 2 + 2 * math.pi * i / max(1, len(ring))
        x, y = cx + RADIUS * math.cos(t), cy + RADIUS * math.sin(t)
        pos[a] = (x, y)
        lx, ly = cx + (RADIUS + 14) * math.cos(t), cy + (RADIUS + 14) * math.sin(t) + 4
        anchor = "middle" if abs(math.cos(t)) < 0.3 else ("start" if math.cos(t) > 0 else "end")
        nodes.append(Node(a, round(x, 1), round(y, 1), False, round(lx, 1), round(ly, 1), anchor))
    top = max(e.messages for e in edges)
    arcs = []
    for e in edges:
        if e.source not in shown or e.target not in shown:
            continue
        (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
        # bend each direction to its own side, so a -> b and b -> a are both visible
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy) or 1.0
        qx, qy = mx - dy / length * 14, my + dx / length * 14
        # start and end on the circles' rims (toward the bend), so the arrow head shows
        sx, sy = _toward(x1, y1, qx, qy, _r(e.source == hub) + 1)
        tx, ty = _toward(x2, y2, qx, qy, _r(e.target == hub) + 2)
        arcs.append(Arc(e.source, e.target, e.messages,
                        f"M{sx:.1f},{sy:.1f} Q{qx:.1f},{qy:.1f} {tx:.1f},{ty:.1f}",
                        round(1 + 5 * e.messages / top, 2)))
    return Graph(nodes, arcs, len(volume) - len(names))


def _r(hub: bool) -> int:
    return 11 if hub else 8


def _toward(x: float, y: float, tx: float, ty: float, d: float) -> tuple[float, float]:
    dx, dy = tx - x, ty - y
    n = math.hypot(dx, dy) or 1.0
    return x + dx / n * d, y + dy / n * d


def curve(s: SystemFigures) -> Curve | None:
    if s.serial_fraction is None or s.speedup is None or not s.working_agents:
        return None
    n_max = max(8, math.ceil(2 * s.working_agents))
    top = amdahl(s.serial_fraction, n_max)
    asym = 1 / s.serial_fraction if s.serial_fraction > 0 else None
    # room for the asymptote 1/s when it is near: the line no team can cross
    y_top = max(2.0, top, s.speedup, min(asym or 0, 1.5 * top)) * 1.1
    w, h = CURVE_W - 2 * PAD, CURVE_H - 2 * PAD

    def x(n: float) -> float:
        return round(PAD + (n - 1) / (n_max - 1) * w, 1)

    def y(v: float) -> float:
        return round(PAD + h - (v - 1) / (y_top - 1) * h, 1)

    steps = [1 + i * (n_max - 1) / 60 for i in range(61)]
    ceiling = " ".join(f"{x(n)},{y(amdahl(s.serial_fraction, n))}" for n in steps)
    ideal_end = min(n_max, y_top)
    ideal = f"{x(1)},{y(1)} {x(ideal_end)},{y(ideal_end)}"
    y_step = 0.5 if y_top <= 3 else (1 if y_top <= 8 else 2)
    y_ticks = [(y(v), f"{v:g}×") for v in _frange(1, y_top, y_step)]
    x_ticks = [(x(n), str(n)) for n in range(1, n_max + 1, 1 if n_max <= 10 else 2)]
    return Curve(ceiling, ideal, x(s.working_agents), y(s.speedup), s.working_agents, s.speedup, s.serial_fraction,
                 x_ticks, y_ticks, y(asym) if asym is not None and asym <= y_top else None,
                 f"1/s = {asym:.2f}×" if asym is not None else "")


def _frange(lo: float, hi: float, step: float) -> list[float]:
    out, v = [], lo
    while v <= hi + 1e-9:
        out.append(round(v, 3))
        v += step
    return out


def build(page: Page) -> Values:
    systems = page.selected_systems or None
    # The exposure per topology counts the same best-available labels as the rest of the page.
    res = analytics(page.store, systems, traces=False, best_labels=f"SELECT trace_id, present FROM ({page.labels.best})")
    pictures = {s.system: {"graph": graph(res.edges_of(s.system), s.hub), "curve": curve(s)} for s in res.systems}
    untimed = sum(s.traces - s.timed_traces for s in res.systems)
    return {"coordination": coordination(page.store, systems), "analytics": res, "pictures": pictures,
            "untimed": untimed}


SECTION = Section(id="coordination", title="Coordination", build=build)
