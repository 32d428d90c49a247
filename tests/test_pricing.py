"""Cost equals genai-prices' own figure; unknown models are NaN; overrides win."""

from __future__ import annotations

import math

import numpy as np
import pytest
from genai_prices import Usage, calc_price

from llmtrace_nb._shape import pricing
from llmtrace_nb._shape.pricing import PriceBook, cost_column

CASES = [
    ("openai", "gpt-4o-mini", 1_234, 0, 0, 567),
    ("openai", "gpt-4o-mini-2024-07-18", 10_000, 4_096, 0, 250),
    ("openai", "gpt-4o", 3_000, 1_024, 0, 1_000),
    ("openai", "o3-mini", 800, 0, 0, 2_000),
    ("anthropic", "claude-3-5-sonnet-latest", 5_000, 2_000, 0, 300),
    # cache writes cost more than plain input on Anthropic: 1.25x
    ("anthropic", "claude-3-5-haiku-latest", 6_000, 1_000, 3_000, 400),
    ("anthropic", "claude-sonnet-4-5", 9_000, 0, 8_000, 50),
    ("openai", "text-embedding-3-small", 777, 0, 0, 0),
]


@pytest.mark.parametrize(("provider", "model", "inp", "cached", "written", "out"), CASES)
def test_cost_equals_calc_price(provider: str, model: str, inp: int, cached: int,
                                written: int, out: int) -> None:
    expected = float(calc_price(
        Usage(input_tokens=inp, cache_read_tokens=cached, cache_write_tokens=written,
              output_tokens=out),
        model_ref=model, provider_id=pricing.PROVIDER_IDS[provider],
    ).total_price)
    cost, unpriced = cost_column(
        PriceBook(), np.array([provider], dtype=object), np.array([model], dtype=object),
        np.array([inp], float), np.array([cached], float), np.array([written], float),
        np.array([out], float), np.array([True]),
    )
    assert not unpriced
    assert cost[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cached_tokens_are_cheaper_than_uncached() -> None:
    book = PriceBook()
    args = (np.array(["openai"], dtype=object), np.array(["gpt-4o"], dtype=object))
    zero = np.array([0.0])
    full, _ = cost_column(book, *args, np.array([10_000.0]), zero, zero, zero,
                          np.array([True]))
    half, _ = cost_column(book, *args, np.array([10_000.0]), np.array([5_000.0]), zero,
                          zero, np.array([True]))
    assert 0 < half[0] < full[0]


def test_cache_writes_are_priced_at_the_cache_write_rate() -> None:
    book = PriceBook()
    args = (np.array(["anthropic"], dtype=object),
            np.array(["claude-3-5-haiku-latest"], dtype=object))
    zero = np.array([0.0])
    plain, _ = cost_column(book, *args, np.array([10_000.0]), zero, zero, zero,
                           np.array([True]))
    written, _ = cost_column(book, *args, np.array([10_000.0]), zero,
                             np.array([10_000.0]), zero, np.array([True]))
    assert written[0] == pytest.approx(plain[0] * 1.25)


def test_unknown_model_is_nan_and_named() -> None:
    cost, unpriced = cost_column(
        PriceBook(), np.array(["openai", "openai"], dtype=object),
        np.array(["my-finetune-xyz", "gpt-4o-mini"], dtype=object),
        np.array([100.0, 100.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0]),
        np.array([10.0, 10.0]), np.array([True, True]),
    )
    assert math.isnan(cost[0]) and cost[1] > 0
    assert unpriced == {"my-finetune-xyz"}


def test_ineligible_rows_stay_nan() -> None:
    cost, _ = cost_column(
        PriceBook(), np.array(["openai"], dtype=object), np.array(["gpt-4o"], dtype=object),
        np.array([100.0]), np.array([0.0]), np.array([0.0]), np.array([10.0]),
        np.array([False]),
    )
    assert math.isnan(cost[0])


def test_override_wins_and_prices_cache_at_given_rate() -> None:
    book = PriceBook()
    book.set_price("gpt-4o", 1.0, 2.0, 0.5, 3.0)
    cost, _ = cost_column(
        book, np.array(["openai"], dtype=object), np.array(["gpt-4o"], dtype=object),
        np.array([1_000_000.0]), np.array([400_000.0]), np.array([100_000.0]),
        np.array([1_000_000.0]), np.array([True]),
    )
    assert cost[0] == pytest.approx(0.5 * 1.0 + 0.4 * 0.5 + 0.1 * 3.0 + 2.0)
    book.set_price("local-llama", 0.1, 0.2)  # cache reads and writes at the input price
    cost, unpriced = cost_column(
        book, np.array([None], dtype=object), np.array(["local-llama"], dtype=object),
        np.array([1_000_000.0]), np.array([500_000.0]), np.array([200_000.0]),
        np.array([0.0]), np.array([True]),
    )
    assert not unpriced and cost[0] == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", True])
def test_override_rejects_bad_prices(bad: object) -> None:
    with pytest.raises(ValueError):
        PriceBook().set_price("m", bad, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PriceBook().set_price("", 1.0, 1.0)


def test_one_lookup_per_distinct_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = pricing.calc_price

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(str(kwargs.get("model_ref")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pricing, "calc_price", counting)
    n = 3_000
    models = np.array(["gpt-4o", "gpt-4o-mini", "nope-model"] * (n // 3), dtype=object)
    providers = np.array(["openai"] * n, dtype=object)
    tokens = np.arange(n, dtype=float)
    book = PriceBook()
    cost, unpriced = cost_column(book, providers, models, tokens, tokens * 0, tokens * 0,
                                 tokens, np.ones(n, dtype=bool))
    assert np.isnan(cost[2::3]).all() and (cost[3::3] > 0).all()
    first = len(calls)
    # A bounded number of probes per model, independent of the number of rows.
    assert first <= 4 * 3  # input, output, cache-read and cache-write rates
    assert unpriced == {"nope-model"}
    cost_column(book, providers, models, tokens, tokens * 0, tokens * 0, tokens,
                np.ones(n, dtype=bool))
    assert len(calls) == first  # cached: no lookups at all the second time
