"""The ``mast`` command: a thin skin over the library.

Each command parses options, calls one library function and renders what it returns.
Data goes to stdout (``--json`` for machines); progress and errors go to stderr.
Commands load lazily so ``mast --help`` stays fast and heavy imports (openai, sklearn)
happen only in the commands that need them.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from mast import __version__
from mast.cli._render import new_consoles, print_error
from mast.errors import MastError
from mast.settings import DEFAULT_DB
from mast.settings import current as current_settings

# name -> "module:attribute".  Each module under mast/cli/ owns its commands.
COMMANDS = {
    "ingest": "mast.cli.ingest:ingest",
    "formats": "mast.cli.ingest:formats",
    "taxonomy": "mast.cli.taxonomy:taxonomy",
    "traces": "mast.cli.traces:traces",
    "stats": "mast.cli.traces:stats",
    "classify": "mast.cli.classify:classify",
    "classifiers": "mast.cli.classify:classifiers",
    "evaluate": "mast.cli.evaluate:evaluate",
    "compare": "mast.cli.compare:compare",
    "check": "mast.cli.compare:check",
    "report": "mast.cli.report:report",
    "analyze": "mast.cli.analyze:analyze",
    "export": "mast.cli.export:export",
    "reference": "mast.cli.reference:reference",
    "learn": "mast.cli.learn:learn",
    "coordination": "mast.cli.coordination:coordination",
    "collect": "mast.cli.collect:collect",
    "sample": "mast.cli.review:sample",
    "labels": "mast.cli.review:labels",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n, target in COMMANDS.items()
                      if importlib.util.find_spec(target.split(":")[0]) is not None)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None or importlib.util.find_spec(target.split(":")[0]) is None:
            return None
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)

    def invoke(self, ctx):
        new_consoles()  # each command reads COLUMNS and the terminal afresh (see _render)
        try:
            return super().invoke(ctx)
        except MastError as e:
            print_error(e)
            ctx.exit(1)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="mast")
@click.option("-d", "--db", "db", metavar="PATH",
              help=f"DuckDB store file (or set MAST_DB; default {DEFAULT_DB}).")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """mast: find MAST failure modes in multi-agent LLM traces."""
    # Every command gets the resolved settings (environment, then these options) as its obj.
    ctx.obj = current_settings().replace(db=db)


def main() -> None:
    """The one entry point: the ``mast`` console script and ``python -m mast``."""
    cli(prog_name="mast")
