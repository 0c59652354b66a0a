"""Off-policy evaluation: how would a target policy have done on decisions another policy logged?

Inputs are arrays over ``n`` logged decisions with ``K`` possible actions: the logged action (index), its logged
propensity (the exact probability the logging policy drew it with), the observed reward, the target policy's
probability of *every* action in the same context (with the same safety mask), and optionally context features.

Estimators (``w_i = pi_target(a_i|x_i) / propensity_i``):
- IPS: ``mean(w_i r_i)``; unbiased, high variance when weights are large.
- SNIPS: ``sum(w_i r_i) / sum(w_i)``; self-normalised, slightly biased, much lower variance.
- DR: ``mean(sum_a pi(a|x_i) q(x_i,a) + w_i (r_i - q(x_i,a_i)))`` with a reward model ``q`` fitted on the logs;
  unbiased if either the propensities or ``q`` are right, and lower variance when ``q`` is decent.

``q`` is either the per-action mean reward or a per-action ridge regression on the context features, cross-fitted
over folds (each decision's ``q`` comes from a model that did not see it), which keeps DR's correction term honest.
Confidence intervals are percentile bootstrap intervals over logged decisions; the reward model is fitted once
and held fixed across resamples (cheap; slightly optimistic for DR).

Small samples: with fewer than ``SMALL_SAMPLE`` decisions the report carries a warning (the bootstrap interval
of a handful of decisions says little), and a quantity that is undefined (the spread of one resample value, a
ratio over resamples that all miss the target policy's support) is ``None`` rather than NaN, so reports stay valid
JSON. With one decision, the DR reward model is fitted in-sample (no fold would have training data).

Not here: fetching logs from the store, computing target probabilities (the policy does that), any claim that the
logs cover the target policy (check ``effective_sample_size`` and ``max_weight``: small ESS means little support).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ESTIMATORS = ("ips", "snips", "dr")
SMALL_SAMPLE = 30  # below this many logged decisions, a report warns that its estimates are unreliable


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def small_sample_warnings(n: int, effective_sample_size: float | None = None) -> list[str]:
    """What a reader of an estimate over ``n`` logged decisions must be told (empty when nothing)."""
    if n == 0:
        return ["no logged decisions with rewards: nothing to estimate"]
    out = []
    if n < SMALL_SAMPLE:
        out.append(f"only {n} logged decision(s) with rewards: estimates and intervals are unreliable below "
                   f"{SMALL_SAMPLE}")
    if effective_sample_size is not None and n >= SMALL_SAMPLE and effective_sample_size < SMALL_SAMPLE:
        out.append(f"effective sample size {effective_sample_size:.1f} < {SMALL_SAMPLE}: the logs barely cover the "
                   "target policy")
    return out


@dataclass(frozen=True)
class LoggedDecisions:
    """Logged decisions in array form; validated on construction."""

    actions: np.ndarray  # (n,) int action indices
    propensities: np.ndarray  # (n,) logging probability of the logged action, in (0, 1]
    rewards: np.ndarray  # (n,)
    target_probs: np.ndarray  # (n, K) target policy probability of every action; rows sum to 1
    features: np.ndarray | None = None  # (n, d) context features for the DR reward model (dense or scipy sparse)

    def __post_init__(self):
        a, p, r, t = (np.asarray(x) for x in (self.actions, self.propensities, self.rewards, self.target_probs))
        if t.ndim != 2:
            raise ValueError(f"target_probs must be (n, K), got shape {t.shape}")
        n, k = t.shape
        if n == 0:
            raise ValueError("no logged decisions")
        for name, arr in (("actions", a), ("propensities", p), ("rewards", r)):
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= k:
            raise ValueError(f"actions must be integer indices in [0, {k})")
        if not np.all((p > 0) & (p <= 1)):
            raise ValueError("propensities must be in (0, 1]; a zero propensity means the action was never possible")
        if not np.all(np.isfinite(r)):
            raise ValueError("rewards must be finite")
        if np.any(t < 0) or not np.allclose(t.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("each row of target_probs must be a probability vector")
        if self.features is not None and self.features.shape[0] != n:
            raise ValueError(f"features must have {n} rows, got {self.features.shape[0]}")
        object.__setattr__(self, "actions", a.astype(np.int64))
        object.__setattr__(self, "propensities", p.astype(np.float64))
        object.__setattr__(self, "rewards", r.astype(np.float64))
        object.__setattr__(self, "target_probs", t.astype(np.float64))

    @classmethod
    def from_records(
        cls,
        action_ids: Sequence[str],
        actions: Sequence[str],
        propensities: Sequence[float],
        rewards: Sequence[float],
        target_probs: Sequence[dict[str, float]],
        features: np.ndarray | None = None,
    ) -> LoggedDecisions:
        """Build from action ids as stored (strings) and per-decision target probability dicts."""
        index = {a: i for i, a in enumerate(action_ids)}
        unknown = sorted({a for a in actions if a not in index})
        if unknown:
            raise ValueError(f"logged actions {unknown} are not among {list(action_ids)}")
        t = np.array([[probs.get(a, 0.0) for a in action_ids] for probs in target_probs], dtype=np.float64)
        return cls(np.array([index[a] for a in actions]), np.asarray(propensities), np.asarray(rewards), t, features)

    @property
    def n(self) -> int:
        return len(self.actions)

    @property
    def n_actions(self) -> int:
        return self.target_probs.shape[1]

    @property
    def weights(self) -> np.ndarray:
        return self.target_probs[np.arange(self.n), self.actions] / self.propensities


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    ci_low: float | None  # None when undefined (see the module docstring)
    ci_high: float | None
    std_error: float | None  # bootstrap standard deviation
    n: int

    def as_dict(self) -> dict[str, float | str | int | None]:
        return {"estimator": self.estimator, "value": _finite(self.value), "ci_low": _finite(self.ci_low),
                "ci_high": _finite(self.ci_high), "std_error": _finite(self.std_error), "n": self.n}


@dataclass(frozen=True)
class OPEReport:
    estimates: dict[str, Estimate]
    logged_mean_reward: float  # the logging policy's own average: the naive baseline
    effective_sample_size: float  # (sum w)^2 / sum w^2, in decisions
    max_weight: float
    n: int

    @property
    def warnings(self) -> list[str]:
        return small_sample_warnings(self.n, self.effective_sample_size)

    def as_dict(self) -> dict:
        return {"estimates": {k: v.as_dict() for k, v in self.estimates.items()},
                "logged_mean_reward": _finite(self.logged_mean_reward),
                "effective_sample_size": _finite(self.effective_sample_size),
                "max_weight": _finite(self.max_weight), "n": self.n, "warnings": self.warnings}


# ------------------------------------------------------------------------------------------- point estimates
def ips(logs: LoggedDecisions) -> float:
    return float(np.mean(logs.weights * logs.rewards))


def snips(logs: LoggedDecisions) -> float:
    w = logs.weights
    if w.sum() == 0:
        raise ValueError("the target policy gives zero probability to every logged action; SNIPS is undefined")
    return float(np.sum(w * logs.rewards) / np.sum(w))


def doubly_robust(logs: LoggedDecisions, q: np.ndarray) -> float:
    return float(np.mean(_dr_terms(logs, q)))


def _dr_terms(logs: LoggedDecisions, q: np.ndarray) -> np.ndarray:
    if q.shape != logs.target_probs.shape:
        raise ValueError(f"reward model predictions must be {logs.target_probs.shape}, got {q.shape}")
    rows = np.arange(logs.n)
    direct = np.sum(logs.target_probs * q, axis=1)
    return direct + logs.weights * (logs.rewards - q[rows, logs.actions])


# ---------------------------------------------------------------------------------------------- reward model
def fit_reward_model(
    logs: LoggedDecisions,
    *,
    kind: Literal["mean", "ridge"] = "ridge",
    folds: int = 2,
    alpha: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Cross-fitted predictions ``q[i, a]`` of the reward of action ``a`` in context ``i`` (shape ``(n, K)``).

    ``ridge`` needs ``logs.features``; an action never logged in a training fold falls back to that fold's
    overall mean reward.
    """
    if kind == "ridge" and logs.features is None:
        raise ValueError("the ridge reward model needs context features; use kind='mean' or pass features")
    if folds < 1:
        raise ValueError("folds must be >= 1")
    n, k = logs.n, logs.n_actions
    folds = min(folds, n)  # one decision cannot be cross-fitted: fit in-sample rather than on an empty fold
    fold_of = np.random.default_rng(seed).permutation(n) % folds if folds > 1 else np.zeros(n, dtype=int)
    q = np.empty((n, k), dtype=np.float64)
    for f in range(folds):
        test = fold_of == f
        train = ~test if folds > 1 else test
        q[test] = _fit_predict(logs, train, test, kind, alpha)
    return q


def _fit_predict(logs: LoggedDecisions, train: np.ndarray, test: np.ndarray, kind: str, alpha: float) -> np.ndarray:
    from sklearn.linear_model import Ridge

    fallback = float(logs.rewards[train].mean())
    out = np.full((int(test.sum()), logs.n_actions), fallback)
    for a in range(logs.n_actions):
        rows = train & (logs.actions == a)
        if not rows.any():
            continue
        if kind == "mean":
            out[:, a] = logs.rewards[rows].mean()
        elif rows.sum() >= 2:
            model = Ridge(alpha=alpha).fit(logs.features[rows], logs.rewards[rows])
            out[:, a] = model.predict(logs.features[test])
        else:
            out[:, a] = logs.rewards[rows].mean()
    return out


def context_features(contexts: Sequence[Mapping[str, Any]], *, n_features: int = 2**14):
    """Generic sparse features of JSON contexts for the DR reward model: hashed ``path=value`` tokens for every
    scalar field, plus the words (and word pairs) of every string field. Works for any decision type's schema."""
    from sklearn.feature_extraction.text import HashingVectorizer

    def tokens(value: Any, path: str) -> list[str]:
        if isinstance(value, Mapping):
            return [t for k, v in value.items() for t in tokens(v, f"{path}.{k}" if path else str(k))]
        if isinstance(value, list):
            return [t for v in value for t in tokens(v, path)]
        if isinstance(value, str):
            words = value.lower().split()
            return [f"{path}={value.lower()[:40]}", *words, *(f"{a}_{b}" for a, b in itertools.pairwise(words))]
        return [f"{path}={value}"]

    vectorizer = HashingVectorizer(n_features=n_features, analyzer=lambda doc: doc, alternate_sign=False, norm="l2")
    return vectorizer.transform([tokens(dict(c), "") for c in contexts])


# --------------------------------------------------------------------------------------------------- report
def evaluate(
    logs: LoggedDecisions,
    *,
    estimators: Sequence[str] = ESTIMATORS,
    reward_model: Literal["mean", "ridge"] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> OPEReport:
    """All requested estimates with percentile bootstrap intervals over logged decisions.

    ``reward_model`` defaults to ridge when features are present, else per-action means.
    """
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown estimators {sorted(unknown)}; choose from {ESTIMATORS}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    if n_bootstrap < 10:
        raise ValueError("n_bootstrap must be >= 10")
    w, r = logs.weights, logs.rewards
    rng = np.random.default_rng(seed)
    # Resampling counts instead of index arrays: every estimator here is a ratio of sums, so each bootstrap
    # replicate is one matrix-vector product.
    counts = rng.multinomial(logs.n, np.full(logs.n, 1.0 / logs.n), size=n_bootstrap).astype(np.float64)

    per_sample: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    if "ips" in estimators:
        per_sample["ips"] = (w * r, None)
    if "snips" in estimators:
        per_sample["snips"] = (w * r, w)
    if "dr" in estimators:
        kind = reward_model or ("ridge" if logs.features is not None else "mean")
        per_sample["dr"] = (_dr_terms(logs, fit_reward_model(logs, kind=kind, seed=seed)), None)

    tail = (1.0 - confidence) / 2.0
    estimates = {}
    for name, (num, den) in per_sample.items():
        if den is None:
            point = float(num.mean())
            boot = counts @ num / logs.n
        else:
            if den.sum() == 0:
                raise ValueError("the target policy gives zero probability to every logged action")
            point = float(num.sum() / den.sum())
            boot_den = counts @ den
            boot = np.divide(counts @ num, boot_den, out=np.full(n_bootstrap, np.nan), where=boot_den > 0)
            boot = boot[np.isfinite(boot)]
        lo, hi = np.quantile(boot, [tail, 1.0 - tail]) if boot.size else (None, None)
        spread = float(np.std(boot, ddof=1)) if boot.size > 1 else None
        estimates[name] = Estimate(name, point, _finite(lo), _finite(hi), spread, logs.n)

    return OPEReport(
        estimates=estimates,
        logged_mean_reward=float(r.mean()),
        effective_sample_size=float(w.sum() ** 2 / max(np.sum(w**2), 1e-300)),
        max_weight=float(w.max()),
        n=logs.n,
    )
