"""`mast evaluate-judge`: the judge against human labels in one command (see :mod:`mast.evaluate_judge`)."""

from __future__ import annotations

import click

from mast.cli._render import err, out, print_json, table
from mast.cli.evaluate import _ci, _f
from mast.cli.options import classifier_options, json_option


@click.command("evaluate-judge")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False))
@click.option("--real-model", is_flag=True,
              help="Send the traces to the model: required, since the run costs money (or machine time).")
@click.option("-m", "--model", help="Judge model (or MAST_JUDGE_MODEL).")
@click.option("--base-url", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL); the key is OPENAI_API_KEY.")
@click.option("--prompt", "prompts", multiple=True, metavar="VERSION",
              help="Judge prompt version to measure (repeatable; default: v1 and v2).")
@click.option("--store", "store_path", default="judge-eval.duckdb", show_default=True, type=click.Path(dir_okay=False),
              help="The evaluation's own store (a rerun is free for what the judge cache holds).")
@click.option("--where", help="Only traces matching this SQL condition over the traces table.")
@click.option("--sample", type=click.IntRange(min=1), help="A fixed pseudo-random sample of N labelled traces.")
@click.option("--gold", default="human", show_default=True, help="The annotator of the human labels in DATASET.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Resamples of the traces for the 95% intervals of kappa (0: none).")
@classifier_options
@json_option
@click.pass_obj
def evaluate_judge(settings, dataset, real_model, model, base_url, prompts, store_path, where, sample, gold,
                   bootstrap, assignments, as_json):
    """Measure the judge against human labels: kappa per mode, with intervals, beside the baselines.

    Ingests DATASET (e.g. the MAST human file, MAD_human_labelled_dataset.json) into --store,
    runs the rules (the judge's hints), then the judge once per --prompt, and prints for every
    mode the kappa of each prompt with its 95% bootstrap interval beside the rules and the
    constant and random baselines on the same traces."""
    from mast.classify import parse_assignments
    from mast.errors import UsageError
    from mast.evaluate_judge import evaluate_judge as run_job
    from mast.store import Store

    settings = settings.replace(judge_model=model, base_url=base_url)
    if not real_model:
        raise UsageError("evaluate-judge sends every selected trace to the model: add --real-model to do it",
                         "Each prompt version is one run of the judge over the file; --sample N limits it.")
    if not settings.judge_model:
        raise UsageError("no judge model given", "Pass --model NAME or set MAST_JUDGE_MODEL.")
    if not settings.api_key and not settings.base_url:
        raise UsageError("no API key", "Set OPENAI_API_KEY, or point --base-url at a local endpoint.")
    with Store(store_path) as store:
        res = run_job(store, dataset, model=settings.judge_model, prompts=prompts or ("v1", "v2"), gold=gold,
                      settings=settings, judge_options=parse_assignments(assignments), where=where, sample=sample,
                      bootstrap=bootstrap, on_progress=lambda m: err.print(m, highlight=False, markup=False))
    if as_json:
        print_json(res.to_dict())
        return
    render(res)


def render(res) -> None:
    cols = ["mode", "n", "gold+", "rules κ"]
    for p in res.prompts:
        cols += [f"{p.prompt} κ", f"{p.prompt} 95%", f"{p.prompt} F1"]
    cols += ["always+ F1", "random κ"]
    rules = {s.mode: s for s in res.rules.modes} if res.rules else {}
    per = [{s.mode: s for s in p.agreement.modes} for p in res.prompts]
    rows = []
    for mode in (s.mode for s in res.prompts[0].agreement.modes):
        # n, gold+ and the baselines from the first scoring that assessed the mode (the judge's, else the rules')
        s = next((d[mode] for d in [*per, rules] if mode in d and d[mode].assessed), per[0][mode])
        row = {"mode": mode, "n": s.traces if s.assessed else "-", "gold+": s.support if s.assessed else "-",
               "rules κ": _f(rules[mode].kappa) if mode in rules and rules[mode].assessed else "-"}
        for p, modes in zip(res.prompts, per):
            m = modes.get(mode)
            ok = m is not None and m.assessed
            row[f"{p.prompt} κ"] = _f(m.kappa) if ok else "-"
            row[f"{p.prompt} 95%"] = _ci(m.kappa_ci) if ok else "-"
            row[f"{p.prompt} F1"] = _f(m.f1) if ok else "-"
        base = s.baselines if s.assessed else {}
        row["always+ F1"] = _f(base.get("always_present", {}).get("f1")) if base else "-"
        row["random κ"] = _f(base.get("random", {}).get("kappa")) if base else "-"
        rows.append(row)
    macro = {"mode": "macro", "rules κ": _f(res.rules.macro["kappa"]) if res.rules else "-"}
    for p in res.prompts:
        macro[f"{p.prompt} κ"] = _f(p.agreement.macro["kappa"])
        macro[f"{p.prompt} 95%"] = _ci(p.agreement.macro_ci.get("kappa"))
        macro[f"{p.prompt} F1"] = _f(p.agreement.macro["f1"])
    rows.append(macro)
    out.print(table(rows, cols, title=f"judge {res.model} vs {res.gold} on {res.traces} trace(s) of {res.dataset} "
                    f"({res.distinct_gold_vectors} distinct human label vectors)", justify_right=cols[1:]))
    for p in res.prompts:
        out.print(f"{p.prompt} ({p.prompt_version}): {p.done} of {p.traces} trace(s) labelled, {p.unclassified} "
                  f"unclassified{' (' + ', '.join(f'{n} {k}' for k, n in p.failure_kinds.items()) + ')' if p.failure_kinds else ''}; "
                  f"{p.tokens_in:,} prompt tokens ({p.tokens_cached:,} served from the endpoint's prefix cache), "
                  f"{p.tokens_out:,} completion tokens, ${p.cost_usd:.4f}", highlight=False, markup=False)
    out.print("[dim]n: traces both labelled (a prompt's unclassified traces are not scored); baselines on the same "
              "traces: always present (its F1) and random at the human base rate (κ 0 by construction). Read an "
              "interval against the distinct label vectors, not the trace count.[/dim]")
