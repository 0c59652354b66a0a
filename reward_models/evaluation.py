"""Evaluation of a reward model on held-out preference pairs.

Reported per run:

- ``accuracy``: how often the chosen response gets the higher reward (an exact tie counts 1/2);
- ``ece`` / ``ece_uncalibrated``: calibration error of sigmoid(diff / T) with the model's fitted
  temperature and with T = 1 (see ``reward_models.calibration``);
- ``nll``: mean negative log-likelihood of the human choices under the calibrated model;
- ``length_correlation``: Spearman correlation between reward and response length (characters)
  over all responses; a reward model that mostly learned "longer is better" shows it here;
- ``longer_response_accuracy``: the accuracy of always picking the longer response, on the same
  pairs: the baseline a reward model has to beat to show it learned more than length;
- ``n``: the number of pairs.

Works on any scorer with ``score_pairs`` and on files in the three pair formats
(``reward_models.pairs.read_pairs``). This module does not train or calibrate models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import spearmanr

from .calibration import expected_calibration_error, preference_nll
from .pairs import PreferencePair, read_pairs

__all__ = ["EnsembleEvaluation", "EvaluationReport", "evaluate_ensemble", "evaluate_file", "evaluate_pairs", "evaluate_rewards"]


@dataclass(frozen=True)
class EvaluationReport:
    n: int
    accuracy: float
    ece: float
    ece_uncalibrated: float
    nll: float
    mean_margin: float
    length_correlation: float
    longer_response_accuracy: float
    temperature: float

    def to_dict(self) -> dict:
        return asdict(self)


def _pairwise_accuracy(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean((first > second) + 0.5 * (first == second)))


def evaluate_rewards(
    rewards_chosen: np.ndarray,
    rewards_rejected: np.ndarray,
    chosen_lengths: Sequence[int],
    rejected_lengths: Sequence[int],
    temperature: float = 1.0,
) -> EvaluationReport:
    """The report from rewards already computed (chosen[i] was preferred to rejected[i])."""
    rc = np.asarray(rewards_chosen, dtype=np.float64)
    rr = np.asarray(rewards_rejected, dtype=np.float64)
    lc = np.asarray(chosen_lengths, dtype=np.float64)
    lr = np.asarray(rejected_lengths, dtype=np.float64)
    if not rc.shape == rr.shape == lc.shape == lr.shape:
        raise ValueError("rewards and lengths must all have one entry per pair")
    if rc.size == 0:
        raise ValueError("cannot evaluate on zero pairs")
    diff = rc - rr
    rewards, lengths = np.concatenate([rc, rr]), np.concatenate([lc, lr])
    if np.ptp(rewards) == 0 or np.ptp(lengths) == 0:
        corr = float("nan")  # undefined when either side is constant
    else:
        corr = float(spearmanr(rewards, lengths).statistic)
    return EvaluationReport(
        n=int(rc.size),
        accuracy=_pairwise_accuracy(rc, rr),
        ece=expected_calibration_error(expit(diff / temperature)),
        ece_uncalibrated=expected_calibration_error(expit(diff)),
        nll=preference_nll(diff, temperature),
        mean_margin=float(diff.mean()),
        length_correlation=corr,
        longer_response_accuracy=_pairwise_accuracy(lc, lr),
        temperature=float(temperature),
    )


def evaluate_pairs(scorer, pairs: Sequence[PreferencePair], temperature: float | None = None) -> EvaluationReport:
    """Score both responses of every pair and report (temperature: the scorer's own by default)."""
    if not pairs:
        raise ValueError("cannot evaluate on zero pairs")
    prompts = [p.prompt_text() for p in pairs]
    rc, rr = scorer.score_pairs(prompts, [p.chosen for p in pairs], [p.rejected for p in pairs])
    t = getattr(scorer, "temperature", 1.0) if temperature is None else temperature
    return evaluate_rewards(rc, rr, [len(p.chosen) for p in pairs], [len(p.rejected) for p in pairs], t)


@dataclass(frozen=True)
class EnsembleEvaluation:
    ensemble: EvaluationReport
    members: list[EvaluationReport]  # each member on its own, in the ensemble's order
    mean_disagreement: float  # mean standard deviation of the members' temperature-scaled rewards


def evaluate_ensemble(ensemble, pairs: Sequence[PreferencePair]) -> EnsembleEvaluation:
    """An ``EnsembleScorer``'s report next to each member's own; every member scores each response once."""
    if not pairs:
        raise ValueError("cannot evaluate on zero pairs")
    n = len(pairs)
    prompts = [p.prompt_text() for p in pairs]
    lc, lr = [len(p.chosen) for p in pairs], [len(p.rejected) for p in pairs]
    raw = ensemble.member_rewards(prompts * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    members = [evaluate_rewards(row[:n], row[n:], lc, lr, m.temperature) for row, m in zip(raw, ensemble.members)]
    scaled = raw / ensemble.temperatures
    mean = scaled.mean(axis=0)
    report = evaluate_rewards(mean[:n], mean[n:], lc, lr, ensemble.temperature)
    return EnsembleEvaluation(report, members, float(scaled.std(axis=0).mean()))


def evaluate_file(scorer, path: str | Path, limit: int | None = None) -> EvaluationReport:
    """``evaluate_pairs`` on a JSONL file in any of the three pair formats."""
    pairs = read_pairs(path)
    return evaluate_pairs(scorer, pairs[:limit] if limit else pairs)
