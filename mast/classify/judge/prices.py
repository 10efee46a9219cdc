"""Token estimates and the price table (``classifiers/judge/prices.json``).

Token counts for ``--estimate``, budgeting and window sizing are *estimates* made
without network access: ``ceil(chars / 4)``, OpenAI's rule of thumb for English text
(code and JSON usually run 10-30 % more tokens per character).  tiktoken is not used
because its encodings are downloaded on first use, which fails offline.  Spent tokens
and cost always come from the ``usage`` the endpoint returns.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from mast.errors import UsageError
from mast.resources import data_dir
from mast.settings import current as current_settings

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def message_tokens(messages: list[dict]) -> int:
    # ~4 tokens of framing per message in the chat format
    return sum(estimate_tokens(m["content"]) + 4 for m in messages) + 2


@dataclass(frozen=True)
class Price:
    model: str
    input: float | None    # USD per 1M tokens; None = unknown model
    output: float | None
    batch_discount: float = 0.5

    @property
    def known(self) -> bool:
        return self.input is not None and self.output is not None

    def cost(self, tokens_in: int, tokens_out: int, *, batch: bool = False) -> float:
        if not self.known:
            return 0.0
        c = (tokens_in * self.input + tokens_out * self.output) / 1_000_000
        return c * self.batch_discount if batch else c


def load_table(path: str | os.PathLike | None = None) -> dict:
    table = json.loads((data_dir("classifiers") / "judge" / "prices.json").read_text(encoding="utf-8"))
    extra = path or current_settings().judge_prices
    if extra:
        p = Path(extra)
        try:
            over = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read price table {p}: {e}",
                             'Expected JSON like {"models": {"my-model": {"input": 1.0, "output": 2.0}}}.') from None
        table["models"] = {**table.get("models", {}), **over.get("models", {})}
        if "batch_discount" in over:
            table["batch_discount"] = over["batch_discount"]
    return table


def price_for(model: str, table: dict) -> Price:
    models = table.get("models", {})
    name = model.split("/")[-1]  # "openai/gpt-4o" (LiteLLM style) -> "gpt-4o"
    best = max((k for k in models if name == k or name.startswith(k + "-")), key=len, default=None)
    if best is None:
        return Price(model, None, None, table.get("batch_discount", 0.5))
    p = models[best]
    return Price(model, float(p["input"]), float(p["output"]), table.get("batch_discount", 0.5))
