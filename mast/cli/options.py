"""Options shared by several commands, declared once so they mean the same everywhere.

- ``--system`` is always a filter (repeatable); the name given to traces whose source
  names no system is ``--default-system`` (ingest, analyze).
- ``-t/--taxonomy``, ``--json``, ``--where``/``--sample`` and the judge's ``-m/--model``,
  ``--base-url``, ``--response-format`` and ``--examples`` are the same option wherever they appear.
- Every other classifier option is ``-C key=value``, checked against what the classifier
  declares (``mast classifiers`` lists them).
Environment variables are read in :mod:`mast.settings` only: these options default to
``None`` and the command merges them into the group's :class:`~mast.settings.Settings`.
"""

from __future__ import annotations

from typing import Callable

import click

from mast.settings import DEFAULT_TAXONOMY

Decorator = Callable[[Callable], Callable]


def _stack(*decorators: Decorator) -> Decorator:
    def apply(fn: Callable) -> Callable:
        for d in reversed(decorators):
            fn = d(fn)
        return fn
    return apply


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")

taxonomy_option = click.option("-t", "--taxonomy", "taxonomy_id", default=DEFAULT_TAXONOMY, show_default=True,
                               help="Taxonomy id (see `mast taxonomy`).")

systems_option = click.option("--system", "systems", multiple=True,
                              help="Only traces of this system (repeatable).")

default_system_option = click.option("--default-system", "default_system", metavar="NAME",
                                     help="System name for traces whose source does not name one.")

keep_going_option = click.option("--keep-going", is_flag=True,
                                 help="Carry on past bad files (the exit status is still 1).")

selection_options = _stack(
    systems_option,
    click.option("--where", help="SQL condition over the traces table, e.g. \"outcome = 'failure'\"."),
    click.option("--sample", type=click.IntRange(min=1), help="A fixed pseudo-random sample of N traces."),
)

judge_options = _stack(
    click.option("-m", "--model", help="Judge model (or MAST_JUDGE_MODEL)."),
    click.option("--base-url", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL)."),
    click.option("--response-format", metavar="MODE",
                 type=click.Choice(["auto", "json_schema", "json_object", "text"], case_sensitive=False),
                 help="How the judge asks for JSON: auto (the strongest the endpoint takes, remembered per "
                      "endpoint and model), json_schema, json_object (with the schema: llama-cpp-python) or text "
                      "(the schema in the prompt) (or MAST_JUDGE_RESPONSE_FORMAT; default auto)."),
    click.option("--examples", type=click.Path(dir_okay=False), metavar="FILE",
                 help="The judge's few-shot examples from your own reviewed traces (`mast labels examples`), "
                      "instead of the prompt's own; implies prompt v2 unless -C prompt= names one with examples "
                      "(or MAST_JUDGE_EXAMPLES)."),
)

classifier_options = click.option(
    "-C", "--option", "assignments", multiple=True, metavar="KEY=VALUE",
    help="A classifier option, e.g. -C budget=5 -C concurrency=16 (see `mast classifiers`).")
