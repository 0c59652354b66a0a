"""Drift statistics for the monitors: a recent window of decisions against a reference window.

Each check returns a ``Reading``: a value, the threshold it is held to, a status (``ok`` | ``alert`` |
``insufficient_data``) and the figures behind it. A distribution test alerts only when the difference is both
significant (p-value below ``alpha``) and large enough to matter (an effect size at least ``min_effect``): with
thousands of decisions a test finds any difference significant, and an operator cannot act on a 1% shift.

- categorical values (actions, a categorical context field): chi-square test of the 2 x k contingency table
  (``scipy.stats.chi2_contingency``); effect = Jensen-Shannon distance (base 2, in [0, 1]) of the two shares;
- numeric values: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``); effect = the KS statistic D;
- free text: no embedding model here; its length in characters is tested as a numeric proxy (said in the reading's
  ``kind``), which catches a change of channel or language mix, not a change of meaning;
- what the policy predicted: the window's action counts against the counts its logged propensities expect
  (chi-square goodness of fit, ``scipy.stats.chisquare``);
- policy collapse: the Shannon entropy of the window's actions against the reference's;
- rates (block, redact, escalate): a 2 x 2 chi-square, alerting only when the window's rate is higher by at least
  ``min_effect`` (the reading's value is the increase).

``compare_windows`` runs them all for one policy over ``Record``s (what the monitors read of a decision);
``app.services.monitoring`` builds the records from the store and adds the review monitors.

Pure: values in, readings out; scipy and numpy, no store, no clock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["MIN_ENTROPY_RATIO", "SAFETY_EFFECTS", "Reading", "Record", "action_entropy", "compare_windows", "categorical_drift", "flatten_context", "infer_kind", "numeric_drift",
           "propensity_fit", "rate_increase", "shannon_entropy"]

MIN_SAMPLE = 30  # fewer values in either window: no verdict
SAFETY_EFFECTS = ("block", "redact", "mask", "escalate")
MIN_ENTROPY_RATIO = 0.5  # the window's action entropy below half the reference's: the policy is collapsing


@dataclass(frozen=True)
class Record:
    """What the monitors read of one decision."""

    context: Mapping[str, Any]
    action: str | None  # the action the policy proposed (before the safety layer changed it)
    action_probs: Mapping[str, float]
    reward: float | None
    safety_verdict: str


@dataclass(frozen=True)
class Reading:
    monitor: str  # e.g. "input_drift", "action_distribution", "reward_drift", "safety_rate"
    key: str  # what it watches: a context field, an effect, "" when the monitor is one number
    value: float | None
    threshold: float
    status: str  # ok | alert | insufficient_data
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def flatten_context(context: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"customer": {"tier": "vip"}}`` -> ``{"customer.tier": "vip"}``; lists are left out."""
    out: dict[str, Any] = {}
    for key, value in context.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_context(value, name + "."))
        elif isinstance(value, (str, bool, int, float)) or value is None:
            out[name] = value
    return out


def infer_kind(values: Sequence[Any]) -> str:
    """numeric | categorical | text (a string field with many distinct or long values)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "numeric"
    strings = [v for v in present if isinstance(v, str)]
    if strings and (len(set(strings)) > max(20, len(strings) // 5) or np.mean([len(s) for s in strings]) > 40):
        return "text"
    return "categorical"


def shannon_entropy(counts: Mapping[str, int] | Iterable[int]) -> float:
    """Entropy in bits of a count vector."""
    c = np.array(list(counts.values()) if isinstance(counts, Mapping) else list(counts), float)
    p = c[c > 0] / c.sum() if c.sum() else np.array([1.0])
    return float(-(p * np.log2(p)).sum())


def categorical_drift(monitor: str, key: str, reference: Sequence[Any], window: Sequence[Any], *, alpha: float,
                      min_effect: float) -> Reading:
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    ref, win = Counter(map(str, reference)), Counter(map(str, window))
    if min(len(reference), len(window)) < MIN_SAMPLE:
        return Reading(monitor, key, None, min_effect, "insufficient_data", {"n_reference": len(reference),
                                                                            "n_window": len(window)})
    cats = sorted(set(ref) | set(win))
    table = np.array([[ref[c] for c in cats], [win[c] for c in cats]], float)
    p_ref, p_win = table[0] / table[0].sum(), table[1] / table[1].sum()
    js = float(jensenshannon(p_ref, p_win, base=2)) if len(cats) > 1 else 0.0
    p_value = float(chi2_contingency(table)[1]) if len(cats) > 1 else 1.0
    status = "alert" if p_value < alpha and js >= min_effect else "ok"
    return Reading(monitor, key, js, min_effect, status, {
        "kind": "categorical", "test": "chi-square", "p_value": p_value, "alpha": alpha, "effect": "jensen-shannon",
        "n_reference": len(reference), "n_window": len(window),
        "reference_share": {c: float(v) for c, v in zip(cats, p_ref)},
        "window_share": {c: float(v) for c, v in zip(cats, p_win)}})


def numeric_drift(monitor: str, key: str, reference: Sequence[float], window: Sequence[float], *, alpha: float,
                  min_effect: float, kind: str = "numeric") -> Reading:
    from scipy.stats import ks_2samp

    ref = np.array([v for v in reference if v is not None], float)
    win = np.array([v for v in window if v is not None], float)
    if min(len(ref), len(win)) < MIN_SAMPLE:
        return Reading(monitor, key, None, min_effect, "insufficient_data", {"kind": kind, "n_reference": len(ref),
                                                                            "n_window": len(win)})
    result = ks_2samp(ref, win)
    d, p_value = float(result.statistic), float(result.pvalue)
    status = "alert" if p_value < alpha and d >= min_effect else "ok"
    return Reading(monitor, key, d, min_effect, status, {
        "kind": kind, "test": "kolmogorov-smirnov", "p_value": p_value, "alpha": alpha, "effect": "ks statistic",
        "n_reference": len(ref), "n_window": len(win), "reference_mean": float(ref.mean()),
        "window_mean": float(win.mean())})


def action_entropy(reference: Sequence[str], window: Sequence[str], *, min_ratio: float) -> Reading:
    """Alert when the window's action entropy falls below ``min_ratio`` of the reference's (collapse)."""
    if min(len(reference), len(window)) < MIN_SAMPLE:
        return Reading("action_entropy", "", None, min_ratio, "insufficient_data", {})
    h_ref, h_win = shannon_entropy(Counter(reference)), shannon_entropy(Counter(window))
    ratio = h_win / h_ref if h_ref > 0 else 1.0
    return Reading("action_entropy", "", _finite(ratio), min_ratio, "alert" if ratio < min_ratio else "ok",
                   {"reference_bits": h_ref, "window_bits": h_win, "n_reference": len(reference),
                    "n_window": len(window)})


def propensity_fit(actions: Sequence[str], action_probs: Sequence[Mapping[str, float]], *, alpha: float,
                   min_effect: float) -> Reading:
    """The window's proposed actions against what the logged probabilities predicted (their mean per action)."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chisquare

    pairs = [(a, p) for a, p in zip(actions, action_probs) if a is not None and p]
    if len(pairs) < MIN_SAMPLE:
        return Reading("action_vs_propensity", "", None, min_effect, "insufficient_data", {"n_window": len(pairs)})
    cats = sorted({a for a, _ in pairs} | {k for _, p in pairs for k in p})
    observed = np.array([sum(a == c for a, _ in pairs) for c in cats], float)
    expected = np.array([sum(float(p.get(c, 0.0)) for _, p in pairs) for c in cats], float)
    keep = expected > 0  # an action no logged probability allowed is left out of the test (and seen in the shares)
    p_value = float(chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum())[1])
    js = float(jensenshannon(observed / observed.sum(), expected / expected.sum(), base=2))
    status = "alert" if p_value < alpha and js >= min_effect else "ok"
    return Reading("action_vs_propensity", "", js, min_effect, status, {
        "test": "chi-square goodness of fit", "p_value": p_value, "alpha": alpha, "n_window": len(pairs),
        "observed_share": {c: float(v) for c, v in zip(cats, observed / observed.sum())},
        "expected_share": {c: float(v) for c, v in zip(cats, expected / expected.sum())}})


def rate_increase(monitor: str, key: str, ref_hits: int, ref_n: int, win_hits: int, win_n: int, *, alpha: float,
                  min_increase: float) -> Reading:
    """A rate (block, redact, escalate) that rose: significant (2 x 2 chi-square) and by at least ``min_increase``."""
    from scipy.stats import chi2_contingency

    if min(ref_n, win_n) < MIN_SAMPLE:
        return Reading(monitor, key, None, min_increase, "insufficient_data", {"n_reference": ref_n, "n_window": win_n})
    r_ref, r_win = ref_hits / ref_n, win_hits / win_n
    table = np.array([[ref_hits, ref_n - ref_hits], [win_hits, win_n - win_hits]], float)
    p_value = 1.0 if (table.sum(axis=0) == 0).any() else float(chi2_contingency(table)[1])
    status = "alert" if p_value < alpha and r_win - r_ref >= min_increase else "ok"
    return Reading(monitor, key, r_win - r_ref, min_increase, status, {
        "reference_rate": r_ref, "window_rate": r_win, "test": "chi-square 2x2", "p_value": p_value,
        "alpha": alpha, "n_reference": ref_n, "n_window": win_n})


def compare_windows(reference: Sequence[Record], window: Sequence[Record], *, alpha: float,
                    min_effect: float) -> list[Reading]:
    """Every window-vs-reference monitor of one policy: input drift per context field, the action monitors,
    reward drift and the safety rates."""
    readings: list[Reading] = []
    ref_ctx = [flatten_context(r.context or {}) for r in reference]
    win_ctx = [flatten_context(r.context or {}) for r in window]
    for name in sorted({k for c in ref_ctx for k in c}):
        ref_values, win_values = [c.get(name) for c in ref_ctx], [c.get(name) for c in win_ctx]
        kind = infer_kind(ref_values)
        if kind == "numeric":
            readings.append(numeric_drift("input_drift", name, ref_values, win_values, alpha=alpha, min_effect=min_effect))
        elif kind == "text":  # no embeddings here: the length of the text is the proxy
            readings.append(numeric_drift("input_drift", name, [len(v) for v in ref_values if isinstance(v, str)],
                                          [len(v) for v in win_values if isinstance(v, str)], alpha=alpha,
                                          min_effect=min_effect, kind="text length"))
        else:
            readings.append(categorical_drift("input_drift", name, ref_values, win_values, alpha=alpha,
                                              min_effect=min_effect))
    ref_actions = [r.action for r in reference if r.action]
    win_actions = [r.action for r in window if r.action]
    if ref_actions or win_actions:
        readings.append(categorical_drift("action_distribution", "", ref_actions, win_actions, alpha=alpha,
                                          min_effect=min_effect))
        readings.append(action_entropy(ref_actions, win_actions, min_ratio=MIN_ENTROPY_RATIO))
        readings.append(propensity_fit([r.action for r in window], [r.action_probs or {} for r in window],
                                       alpha=alpha, min_effect=min_effect))
    readings.append(numeric_drift("reward_drift", "", [r.reward for r in reference if r.reward is not None],
                                  [r.reward for r in window if r.reward is not None], alpha=alpha,
                                  min_effect=min_effect))
    for effect in SAFETY_EFFECTS:
        readings.append(rate_increase("safety_rate", effect, sum(r.safety_verdict == effect for r in reference),
                                      len(reference), sum(r.safety_verdict == effect for r in window), len(window),
                                      alpha=alpha, min_increase=min_effect))
    return readings
