"""Moderation quality on a team's own labelled texts: AUPRC, F1 and false-positive rate per category
and for "any unsafe", with bootstrap confidence intervals.

A labelled set is JSON Lines, one text per line, labelled either per category or as a whole:

    {"text": "I will find you and hurt you", "categories": {"violence": true, "harassment/threatening": 1}}
    {"text": "Where is my parcel?", "flagged": false}

- `categories` maps category names (OpenAI's, e.g. `hate`, `self-harm/intent`, or any other name a
  provider reports, e.g. `prompt_injection`) to true/false (or 1/0), or lists the names that are
  true (`"categories": ["hate"]`, `[]` for a safe text). Every category named anywhere in the file is
  evaluated; a line with `categories` counts as a negative for the ones it leaves out.
  Lines with only `flagged` count for "any unsafe" and for no category.
- `flagged` is the "any unsafe" label; without it, a line is unsafe when any category is true.

Scores and flags come from `ModerationSummary` objects (`safety.moderation.summary`), one per text,
so what is measured is exactly what `/v1/moderations` answers: a category's score is the highest any
provider gave it and its flag whether any provider flagged it; "any unsafe" ranks by the summary's
`unsafe_score` and flags by its `flagged`; for it the report also counts the texts whose language
no deciding provider covers (`uncovered`) and the share of unsafe texts flagged or uncovered
(`recall_or_uncovered`: not silently allowed). AUPRC ranks the scores (it needs no threshold); F1,
precision, recall and the false-positive rate (flagged negatives / negatives) judge the flags.

Point estimates are scikit-learn's metrics. The 95% intervals are percentile bootstrap intervals
over texts (resampled with replacement; a resample in which a metric is undefined, e.g. no positive
for AUPRC, is skipped, and with fewer than half of them defined the interval is null). Every value
that is undefined (no positives, no negatives, nothing flagged) is None, never NaN. This module runs
no providers (the app does) and reads only the file it is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from safety.language import UNCOVERED
from safety.moderation.summary import ModerationSummary

__all__ = ["ANY_UNSAFE", "LabelledText", "evaluate_moderation", "read_labelled"]

ANY_UNSAFE = "any"


@dataclass(frozen=True)
class LabelledText:
    """One labelled text: the "any unsafe" label, and per-category labels when the line had them."""

    text: str
    unsafe: bool
    categories: dict[str, bool] | None = None


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{where}: expected true/false (or 1/0), got {value!r}")


def read_labelled(path: str | Path) -> list[LabelledText]:
    """Read and check a labelled set (see the module docstring); ValueError names the bad line."""
    examples = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f'{where}: expected an object with a "text" string')
            categories = row.get("categories")
            if isinstance(categories, list) and all(isinstance(c, str) for c in categories):
                categories = dict.fromkeys(categories, True)
            if categories is not None:
                if not isinstance(categories, dict) or not all(isinstance(k, str) and k for k in categories):
                    raise ValueError(f'{where}: "categories" must map category names to true/false or list names')
                categories = {k: _bool(v, f"{where}: categories.{k}") for k, v in categories.items()}
            if "flagged" in row:
                unsafe = _bool(row["flagged"], f"{where}: flagged")
                if categories and not unsafe and any(categories.values()):
                    raise ValueError(f'{where}: "flagged" is false but a category is true')
            elif categories is not None:
                unsafe = any(categories.values())
            else:
                raise ValueError(f'{where}: give "flagged" or "categories"')
            examples.append(LabelledText(row["text"], unsafe, categories))
    if not examples:
        raise ValueError(f"{path}: no labelled texts")
    return examples


def _defined(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _auprc(y: np.ndarray, s: np.ndarray) -> float | None:
    return float(average_precision_score(y, s)) if y.any() else None


def _counts_metrics(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    # F1 and FPR from the confusion counts (the same values scikit-learn gives, but cheap enough to
    # run a thousand times per category inside the bootstrap).
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    negatives = int(np.sum(~y))
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
    fpr = fp / negatives if negatives else None
    return f1, fpr


def _interval(values: list[float | None], resamples: int, confidence: float) -> list[float] | None:
    defined = np.array([v for v in values if v is not None], dtype=float)
    if resamples == 0 or len(defined) < resamples / 2:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def _metrics(
    y: np.ndarray, scores: np.ndarray, flags: np.ndarray, rng: np.random.Generator, resamples: int, confidence: float
) -> dict[str, Any]:
    positives = int(y.sum())
    f1, fpr = _counts_metrics(y, flags)
    out: dict[str, Any] = {
        "n": len(y),
        "positives": positives,
        "flagged": int(flags.sum()),
        "auprc": _defined(_auprc(y, scores)),
        "f1": _defined(float(f1_score(y, flags, zero_division=0))) if f1 is not None else None,
        "precision": _defined(float(precision_score(y, flags, zero_division=0))) if flags.any() else None,
        "recall": _defined(float(recall_score(y, flags, zero_division=0))) if positives else None,
        "fpr": _defined(fpr),
        "prevalence": round(positives / len(y), 4) if len(y) else None,
    }
    auprcs, f1s, fprs = [], [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        yb, sb, fb = y[idx], scores[idx], flags[idx]
        auprcs.append(_auprc(yb, sb))
        f1b, fprb = _counts_metrics(yb, fb)
        f1s.append(f1b)
        fprs.append(fprb)
    out["auprc_ci"] = _interval(auprcs, resamples, confidence)
    out["f1_ci"] = _interval(f1s, resamples, confidence)
    out["fpr_ci"] = _interval(fprs, resamples, confidence)
    return out


def evaluate_moderation(
    examples: Sequence[LabelledText],
    summaries: Sequence[ModerationSummary],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Metrics for "any unsafe" and every labelled category (see the module docstring).

    Example:
        >>> from safety.moderation.base import ModerationResult
        >>> from safety.moderation.chain import ModerationReport
        >>> from safety.moderation.summary import summarize
        >>> from safety.verdict import ModerationPolicy
        >>> def summary(score):
        ...     cats = ("violence",) if score >= 0.5 else ()
        ...     result = ModerationResult("local", bool(cats), cats, {"violence": score})
        ...     return summarize(ModerationReport((result,), ("local",), False), ModerationPolicy())
        >>> data = [LabelledText("a", True, {"violence": True}), LabelledText("b", False, {"violence": False}),
        ...         LabelledText("c", False, {"violence": False})]
        >>> out = evaluate_moderation(data, [summary(0.9), summary(0.6), summary(0.1)], resamples=0)
        >>> out["violence"]["auprc"], out["violence"]["f1"], out["violence"]["fpr"]
        (1.0, 0.6667, 0.5)
    """
    if len(examples) != len(summaries):
        raise ValueError(f"{len(summaries)} moderation summaries for {len(examples)} labelled texts")
    if not 0 < confidence < 1 or resamples < 0:
        raise ValueError("confidence must be in (0, 1) and resamples >= 0")
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {}
    y = np.array([e.unsafe for e in examples], dtype=bool)
    scores = np.array([s.unsafe_score for s in summaries], dtype=float)
    flags = np.array([s.flagged for s in summaries], dtype=bool)
    results[ANY_UNSAFE] = _metrics(y, scores, flags, rng, resamples, confidence) | {"scored": True}
    # Where no provider that decided covers a text's language the verdict says so and the rule set
    # escalates: an unsafe text flagged *or* marked uncovered was not silently allowed.
    uncovered = np.array([(s.report.get("coverage") or {}).get("status") in UNCOVERED for s in summaries])
    results[ANY_UNSAFE]["uncovered"] = int(uncovered.sum())
    results[ANY_UNSAFE]["recall_or_uncovered"] = (
        round(float(np.mean((flags | uncovered)[y])), 4) if y.any() else None
    )
    names = sorted({c for e in examples if e.categories for c in e.categories})
    for number, category in enumerate(names, start=1):
        if progress:
            progress(f"bootstrap: {category} ({number}/{len(names)})")
        rows = [i for i, e in enumerate(examples) if e.categories is not None]
        y = np.array([examples[i].categories.get(category, False) for i in rows], dtype=bool)  # type: ignore[union-attr]
        all_scores = [summaries[i].all_scores() for i in rows]
        scores = np.array([s.get(category, 0.0) for s in all_scores], dtype=float)
        flags = np.array([category in summaries[i].flagged_categories() for i in rows], dtype=bool)
        metrics = _metrics(y, scores, flags, rng, resamples, confidence)
        # A category no provider scores ranks nothing: its AUPRC is the prevalence, not a measurement.
        metrics["scored"] = any(category in summaries[i].scored for i in rows)
        results[category] = metrics
    return results
