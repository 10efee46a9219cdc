"""mast: failure-trace analysis for multi-agent LLM systems.

The library never prints; the CLI in :mod:`mast.cli` renders what it returns.
"""

__version__ = "0.1.0"
