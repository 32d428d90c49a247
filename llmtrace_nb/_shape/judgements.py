"""Shape: judgements (``gen_ai.evaluation.result`` spans, ``_capture/judge.py``) as a
frame joined to what they judge — ``evaluations_df()`` — and per group in ``summary()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._capture.judge import (
    EVALUATION,
    EVALUATION_NAME,
    EXPLANATION,
    SCORE_LABEL,
    SCORE_VALUE,
    is_negative,
)

#: evaluations_df() columns, in order
EVALUATION_COLUMNS = (
    "evaluation", "score", "label", "explanation", "negative", "trace_id", "span_id",
    "name", "kind", "model", "cell", "cell_name", "cost_usd", "time", "evaluation_span_id",
)


def is_judgement(spans: pd.DataFrame) -> pd.Series:
    """The rows that are judgements (for ``FrameBuilder.spans(where=...)``)."""
    return (spans["name"] == EVALUATION).fillna(False).astype(bool)


def judgements(found: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """One row per judgement among ``found`` (rows of a spans frame, with
    ``attributes``), joined to the row of ``spans`` it judges — the row that counts for
    that call when it judged a duplicate of it (``duplicate_of``)."""
    found = found[is_judgement(found).to_numpy()] if len(found) else found
    attrs = list(found["attributes"]) if len(found) else []
    names = [a.get(EVALUATION_NAME) if isinstance(a, dict) else None for a in attrs]
    keep = np.array([isinstance(n, str) for n in names], dtype=bool)
    found, attrs = found[keep], [a for a, k in zip(attrs, keep, strict=True) if k]
    scores = [a.get(SCORE_VALUE) for a in attrs]
    score = pd.array([float(s) if isinstance(s, int | float) and not isinstance(s, bool)
                      else None for s in scores], dtype="Float64")
    label = pd.array([a.get(SCORE_LABEL) if isinstance(a.get(SCORE_LABEL), str) else None
                      for a in attrs], dtype="string")
    explanation = pd.array([a.get(EXPLANATION) if isinstance(a.get(EXPLANATION), str)
                            else None for a in attrs], dtype="string")
    negative = pd.array([is_negative(None if pd.isna(s) else float(s),
                                     None if pd.isna(lab) else str(lab))
                         for s, lab in zip(score, label, strict=True)], dtype="boolean")
    judged = _judged(found, spans)
    out = pd.DataFrame({
        "evaluation": pd.array([a[EVALUATION_NAME] for a in attrs], dtype="string"),
        "score": score, "label": label, "explanation": explanation, "negative": negative,
        "trace_id": found["trace_id"].to_numpy(),
        "span_id": judged["span_id"].to_numpy(),
        "name": judged["name"].to_numpy(), "kind": judged["kind"].to_numpy(),
        "model": judged["model"].to_numpy(),
        "cell": judged["cell"].to_numpy(), "cell_name": judged["cell_name"].to_numpy(),
        "cost_usd": judged["cost_usd"].to_numpy(dtype="float64", na_value=np.nan),
        "time": found["start_time"].to_numpy(),
        "evaluation_span_id": found["span_id"].to_numpy(),
    })
    for column in ("trace_id", "span_id", "name", "model", "cell_name",
                   "evaluation_span_id"):
        out[column] = out[column].astype("string")
    out["cell"] = out["cell"].astype("Int64")
    out["kind"] = out["kind"].astype("string")
    out["time"] = pd.to_datetime(out["time"], utc=True)
    return out.reset_index(drop=True)


def _judged(found: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Per judgement, the row it judges (its parent, or the row counting for that call);
    a span no longer in ``spans`` gives the judgement's own trace and parent ids only."""
    columns = ["span_id", "name", "kind", "model", "cell", "cell_name", "cost_usd"]
    by_id = spans.drop_duplicates(["trace_id", "span_id"]).set_index(
        ["trace_id", "span_id"])
    keys = list(zip(found["trace_id"], found["parent_span_id"], strict=True))
    rows = []
    for trace_id, parent in keys:
        key = (trace_id, parent)
        if key in by_id.index:
            row = by_id.loc[key]
            counting = row.get("duplicate_of")
            if isinstance(counting, str) and (trace_id, counting) in by_id.index:
                key, row = (trace_id, counting), by_id.loc[(trace_id, counting)]
            rows.append({"span_id": key[1], **{c: row[c] for c in columns[1:]}})
        else:
            rows.append({"span_id": parent, "cell": None})
    frame = pd.DataFrame(rows, columns=columns)
    if len(found) and "cell" in found.columns:  # its own cell when the judged row is gone
        own = found["cell"].to_numpy(dtype=object, na_value=None)
        frame["cell"] = [c if c is not None and not pd.isna(c) else o
                         for c, o in zip(frame["cell"], own, strict=True)]
    return frame


def judged_summary(table: pd.DataFrame, calls: pd.DataFrame, judged: pd.DataFrame,
                   by: str | Sequence[str]) -> pd.DataFrame:
    """``summary()``'s table with, per evaluation name present among the calls' judgements,
    ``<name>_score`` (mean score) and ``<name>_pass_rate`` (share not negative)."""
    if judged.empty or table.empty:
        return table
    keys = [by] if isinstance(by, str) else list(by)
    rows = judged.merge(calls[["trace_id", "span_id", *keys]].astype(
        {"trace_id": "string", "span_id": "string"}), on=["trace_id", "span_id"],
        how="inner", suffixes=("_judgement", ""))
    if rows.empty:
        return table
    table = table.copy()
    for name, group in rows.groupby("evaluation", sort=True):
        grouped = group.groupby(keys, dropna=False)
        scores = grouped["score"].mean()
        if group["score"].notna().any():
            table[f"{name}_score"] = scores.reindex(table.index).astype("Float64")
        passed = grouped["negative"].agg(lambda s: float((~s.astype(bool)).mean()))
        table[f"{name}_pass_rate"] = passed.reindex(table.index).astype("Float64")
    return table
