"""Coordination analytics (layer 3): where a multi-agent system spends its steps, tokens and
time, read as a distributed system.  :mod:`.steps` has the step counts per system and
agent; :mod:`.traces` the per-trace figures (topology, parallelism and the Amdahl ceiling,
coordination tax, models); :mod:`.systems` rolls those up per system."""

from mast.coordination.steps import (MESSAGE_KINDS, UNKNOWN_AGENT, WORK_KINDS, AgentUsage, Coordination,
                                     SystemCoordination, coordination)
from mast.coordination.systems import Analytics, Edge, SystemFigures, TopologyExposure, amdahl, analytics
from mast.coordination.traces import TOPOLOGIES, TraceFigures, drop_tables, trace_figures_table

__all__ = ["MESSAGE_KINDS", "TOPOLOGIES", "UNKNOWN_AGENT", "WORK_KINDS", "AgentUsage", "Analytics", "Coordination",
           "Edge", "SystemCoordination", "SystemFigures", "TopologyExposure", "TraceFigures", "amdahl", "analytics",
           "coordination", "drop_tables", "trace_figures_table"]
