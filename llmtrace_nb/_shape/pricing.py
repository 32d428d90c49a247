"""Cost: prices from ``genai-prices``, user overrides, one lookup per model.

A lookup in genai-prices costs ~70 µs, so it runs once per distinct (provider, model);
the per-row arithmetic is vectorized. The price a model gets is the same figure
``genai_prices.calc_price`` gives for the same usage: cached input at the cache-read
rate. Models the database does not know get NaN, never 0.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices

from .._fork import fresh_locks_after_fork
from .._read.calls import model_family

MTOK = 1_000_000

#: provider names as instrumentations spell them → genai-prices provider ids
PROVIDER_IDS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure": "azure",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "perplexity": "perplexity",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
}


@dataclass(frozen=True)
class Rates:
    """USD per million tokens. Cache reads and writes default to the input rate.

    Input tokens include the cached ones, as in genai-prices' ``Usage``: the uncached
    rest is ``input - cache_read - cache_write``.
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    source: str = "genai-prices"

    def cost(self, input_tokens: np.ndarray, cache_read: np.ndarray, cache_write: np.ndarray,
             output_tokens: np.ndarray) -> np.ndarray:
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.input if self.cache_write is None else self.cache_write
        uncached = np.maximum(input_tokens - cache_read - cache_write, 0.0)
        return (uncached * self.input + cache_read * read_rate + cache_write * write_rate
                + output_tokens * self.output) / MTOK


class _Tiered:
    """A model whose price depends on the request size: priced row by row, exactly."""

    def __init__(self, model: str, provider_id: str | None) -> None:
        self.model = model
        self.provider_id = provider_id

    def cost(self, input_tokens: np.ndarray, cache_read: np.ndarray, cache_write: np.ndarray,
             output_tokens: np.ndarray) -> np.ndarray:
        out = np.full(len(input_tokens), np.nan)
        memo: dict[tuple[float, float, float, float], float] = {}
        for i, key in enumerate(zip(input_tokens, cache_read, cache_write, output_tokens,
                                    strict=True)):
            if key not in memo:
                # genai-prices refuses cached counts above the input count
                inp = max(int(key[0]), int(key[1]) + int(key[2]))
                usage = Usage(input_tokens=inp, cache_read_tokens=int(key[1]),
                              cache_write_tokens=int(key[2]), output_tokens=int(key[3]))
                memo[key] = float(calc_price(usage, model_ref=self.model,
                                             provider_id=self.provider_id).total_price)
            out[i] = memo[key]
        return out


Price = Rates | _Tiered


class PriceBook:
    """Overrides first, then genai-prices; lookups cached per (provider, model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        fresh_locks_after_fork(self, "_lock")
        self._overrides: dict[str, Rates] = {}
        #: override name -> the models it priced (a name also prices its dated snapshots)
        self._matched: dict[str, set[str]] = {}
        self._cache: dict[tuple[str | None, str], Price | None] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped by every change of the overrides (priced frames compare it)."""
        return self._version

    def set_price(self, model: str, input_per_mtok: float, output_per_mtok: float,
                  cache_read_per_mtok: float | None = None,
                  cache_write_per_mtok: float | None = None) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a non-empty string")
        values = [input_per_mtok, output_per_mtok]
        values += [v for v in (cache_read_per_mtok, cache_write_per_mtok) if v is not None]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)) \
                    or not math.isfinite(float(v)) or float(v) < 0:
                raise ValueError(f"prices must be finite numbers >= 0 (USD per million "
                                 f"tokens), got {v!r}")
        rates = Rates(
            float(input_per_mtok), float(output_per_mtok),
            None if cache_read_per_mtok is None else float(cache_read_per_mtok),
            None if cache_write_per_mtok is None else float(cache_write_per_mtok),
            source="override",
        )
        with self._lock:
            self._overrides[model.strip()] = rates
            self._matched.setdefault(model.strip(), set())
            self._version += 1

    def overrides(self) -> dict[str, Rates]:
        with self._lock:
            return dict(self._overrides)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()
            self._matched.clear()
            self._version += 1

    def describe_overrides(self) -> list[str]:
        """One line per override: its rates and the models it priced."""
        with self._lock:
            items = [(name, rates, sorted(self._matched.get(name, ())))
                     for name, rates in self._overrides.items()]
        lines = []
        for name, rates, models in items:
            text = f"{name}: ${rates.input:g} in / ${rates.output:g} out per Mtok"
            others = [m for m in models if m != name]
            lines.append(text + (f" (also {', '.join(others)})" if others else ""))
        return lines

    def _override(self, model: str) -> Rates | None:
        """The override for ``model``: its own, else its undated name's (an override of
        ``gpt-4o-mini`` prices ``gpt-4o-mini-2024-07-18``; a dated override wins)."""
        with self._lock:
            name = model if model in self._overrides else None
            if name is None and self._overrides:
                # an override names a family when its name is one: no date, no prefix
                family = model_family(model)
                name = next((n for n in self._overrides
                             if model_family(n) == family == n.strip().lower()), None)
            if name is None:
                return None
            self._matched.setdefault(name, set()).add(model)
            return self._overrides[name]

    def lookup(self, provider: str | None, model: str) -> Price | None:
        override = self._override(model)
        if override is not None:
            return override
        key = (provider, model)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        found = _lookup_genai_prices(provider, model)
        with self._lock:
            self._cache[key] = found
        return found


def _lookup_genai_prices(provider: str | None, model: str) -> Price | None:
    provider_id = PROVIDER_IDS.get(provider.lower()) if provider else None
    for pid in ([provider_id, None] if provider_id else [None]):
        try:
            probe = calc_price(Usage(input_tokens=MTOK, cache_read_tokens=0, output_tokens=0),
                               model_ref=model, provider_id=pid)
        except LookupError:
            continue
        mp = probe.model_price
        if any(isinstance(getattr(mp, k, None), TieredPrices)
               for k in ("input_mtok", "output_mtok", "cache_read_mtok")):
            return _Tiered(model, pid)
        # Rates read back through calc_price itself, so whatever rules genai-prices
        # applies to a plain token count are the rules our per-token rates follow.
        output = calc_price(Usage(input_tokens=0, output_tokens=MTOK), model_ref=model,
                            provider_id=pid)
        cached = calc_price(Usage(input_tokens=MTOK, cache_read_tokens=MTOK, output_tokens=0),
                            model_ref=model, provider_id=pid)
        written = calc_price(Usage(input_tokens=MTOK, cache_write_tokens=MTOK, output_tokens=0),
                             model_ref=model, provider_id=pid)
        return Rates(float(probe.total_price), float(output.total_price),
                     float(cached.total_price), float(written.total_price))
    return None


def cost_column(book: PriceBook, providers: np.ndarray, models: np.ndarray,
                input_tokens: np.ndarray, cache_read: np.ndarray, cache_write: np.ndarray,
                output_tokens: np.ndarray, eligible: np.ndarray,
                groups: Mapping[tuple[str | None, str], np.ndarray] | None = None
                ) -> tuple[np.ndarray, set[str]]:
    """Cost per row (NaN where unknown) and the names of models with no known price.

    ``eligible`` marks the rows that are LLM or embedding calls with a model and usage.
    Arrays of tokens are float arrays with NaN for missing values. ``groups`` — the
    rows of each ``(provider, model)``, when the caller knows them already (a frame
    read back from codes) — spares grouping a million strings again.
    """
    cost = np.full(len(models), np.nan)
    unpriced: set[str] = set()
    if not eligible.any():
        return cost, unpriced
    if groups is None:
        idx = np.flatnonzero(eligible)
        # group the eligible rows by (provider, model) without a Python loop over rows
        found = pd.DataFrame({"p": providers[idx], "m": models[idx]}).groupby(
            ["p", "m"], dropna=False, sort=False).indices
        groups = {(None if pd.isna(p) else p, m): idx[rows]
                  for (p, m), rows in found.items()}
    inp = np.nan_to_num(input_tokens, nan=0.0)
    cached = np.nan_to_num(cache_read, nan=0.0)
    written = np.nan_to_num(cache_write, nan=0.0)
    out = np.nan_to_num(output_tokens, nan=0.0)
    for (provider, model), rows in groups.items():
        rows = rows[eligible[rows]]
        if not len(rows):
            continue
        price = book.lookup(provider, model)
        if price is None:
            unpriced.add(model)
            continue
        cost[rows] = price.cost(inp[rows], cached[rows], written[rows], out[rows])
    return cost, unpriced


def fields_cost(fields: Mapping[str, Any], book: PriceBook) -> float | None:
    """The cost of a call from its normalized fields (``provider``, ``model``, the token
    counts and ``given_cost``, a positive cost another tool recorded), or None."""
    if fields.get("given_cost") is not None:
        return float(fields["given_cost"])
    model = fields.get("model")
    inp, out = fields.get("input_tokens") or 0, fields.get("output_tokens") or 0
    if not model or not (inp or out):
        return None
    price = book.lookup(fields.get("provider"), model)
    if price is None:
        return None
    counts = [np.array([float(fields.get(k) or 0)]) for k in (
        "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")]
    return float(price.cost(*counts)[0])
