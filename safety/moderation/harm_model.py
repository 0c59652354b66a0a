"""The local moderation model: per-category heads on static sentence embeddings distilled from the
packaged all-MiniLM-L6-v2, calibrated, with thresholds chosen for a stated false-positive rate.

It is the harm provider of the local chain (the OpenAI endpoint or a guard model, when configured,
come first). A text is embedded by `model2vec`'s `StaticModel` (every MiniLM token's contextual
vector, distilled once by `safety.moderation.harm_training`, PCA-reduced and quantised; a text's
embedding is the mean of its tokens' vectors), so embedding costs a tokenizer pass and a lookup
instead of a transformer pass: the decision path stays within twice the old TF-IDF chain's latency,
where MiniLM itself was 6x (one text) to 20x (batch of 32) slower on this CPU.

Each head is a logistic regression on the embedding and hashed word 1-2-gram TF-IDF features
(they carry the word order a mean of token vectors loses), then Platt-scaled on held-out data, so a score
is a probability; "unsafe" is its own head (any category at all). Category names follow the
OpenAI moderation taxonomy. Two sub-categories have too few labelled examples to learn and are
derived: `hate/threatening` = min(hate, violence) and `harassment/threatening` = min(harassment,
violence); `sexual/minors` and `self-harm/*` sub-categories are not scored.

What it does not do: understand a sentence beyond its words, neighbouring word pairs and their
MiniLM token vectors (negation and counter-speech are still hard: see the README's figures), languages other than English (the encoder and the data
are English), or decide what a flag means (`safety.verdict`). The shipped artifact lives in
`safety/data/moderation/model/` and is loaded on the first `classify`, not at import.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from safety.moderation.base import ModerationResult

__all__ = ["DEFAULT_MODEL_DIR", "HarmHeads", "LocalModeration", "encode", "fit_idf", "load_heads", "ngram_features"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "moderation" / "model"
# Derived sub-category -> the two heads whose smaller score it takes.
DERIVED = {"hate/threatening": ("hate", "violence"), "harassment/threatening": ("harassment", "violence")}


# Word uni- and bigrams, hashed: they carry what a mean of token vectors loses ("kill the process"
# vs "kill the man"), and hashing means the artifact holds no vocabulary from the training data.
HASH_FEATURES = 2**16
# The n-gram part's weight next to the unit-length embedding (0.5 measured best of 0.5 and 1).
NGRAM_WEIGHT = 0.5


def _hasher():  # noqa: ANN202 - sklearn HashingVectorizer
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=HASH_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None)


def ngram_features(texts: Sequence[str], idf: np.ndarray):  # noqa: ANN201 - scipy csr matrix
    """Sublinear TF-IDF of hashed word 1-2-grams, l2-normalised, times NGRAM_WEIGHT."""
    from sklearn.feature_extraction.text import TfidfTransformer

    transformer = TfidfTransformer(sublinear_tf=True)
    transformer.idf_ = idf
    return transformer.transform(_hasher().transform(list(texts))) * NGRAM_WEIGHT


def fit_idf(texts: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfTransformer

    return TfidfTransformer(sublinear_tf=True).fit(_hasher().transform(list(texts))).idf_.astype(np.float32)


@dataclass(frozen=True)
class HarmHeads:
    """Linear heads over [embedding, hashed n-grams] (one column per head), Platt calibration
    (a, b) and a threshold per head."""

    heads: tuple[str, ...]
    dense: np.ndarray  # embedding dims x heads
    hashed: np.ndarray  # HASH_FEATURES x heads
    bias: np.ndarray  # heads
    platt: np.ndarray  # heads x 2: probability = sigmoid(a * logit + b)
    idf: np.ndarray  # HASH_FEATURES
    thresholds: dict[str, float]
    meta: dict[str, Any]

    def probabilities(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        logits = embeddings.astype(np.float32) @ self.dense + ngram_features(texts, self.idf) @ self.hashed + self.bias
        return 1.0 / (1.0 + np.exp(-(self.platt[:, 0] * logits + self.platt[:, 1])))

    def save(self, model_dir: Path) -> None:
        from safetensors.numpy import save_file

        arrays = {
            "dense": self.dense.astype(np.float16),
            "hashed": self.hashed.astype(np.float16),
            "bias": self.bias.astype(np.float32),
            "platt": self.platt.astype(np.float32),
            "idf": self.idf.astype(np.float16),
        }
        # safetensors writes a non-contiguous array's memory as if it were C-ordered: a transposed
        # matrix would load scrambled.
        save_file(
            {name: np.ascontiguousarray(a) for name, a in arrays.items()},
            str(Path(model_dir) / "heads.safetensors"),
        )
        meta = {"heads": list(self.heads), "thresholds": self.thresholds, "meta": self.meta}
        (Path(model_dir) / "heads.json").write_text(json.dumps(meta, indent=1) + "\n")


def load_heads(model_dir: Path = DEFAULT_MODEL_DIR) -> HarmHeads:
    from safetensors.numpy import load_file

    model_dir = Path(model_dir)
    if not (model_dir / "heads.json").is_file() or not (model_dir / "heads.safetensors").is_file():
        raise FileNotFoundError(
            f"{model_dir} is not a moderation model (needs heads.json and heads.safetensors); "
            "train one with scripts/train_moderation.py"
        )
    raw = json.loads((model_dir / "heads.json").read_text())
    arrays = load_file(str(model_dir / "heads.safetensors"))
    return HarmHeads(
        heads=tuple(raw["heads"]),
        dense=arrays["dense"].astype(np.float32),
        hashed=arrays["hashed"].astype(np.float32),
        bias=arrays["bias"],
        platt=arrays["platt"],
        idf=arrays["idf"].astype(np.float64),
        thresholds={k: float(v) for k, v in raw["thresholds"].items()},
        meta=raw.get("meta", {}),
    )


_LOCK = threading.Lock()


@cache
def _encoder(encoder_dir: str):  # noqa: ANN202 - a model2vec StaticModel
    from model2vec import StaticModel  # imported lazily: only the first classify pays for it

    return StaticModel.from_pretrained(encoder_dir, normalize=True)


def encode(texts: Sequence[str], encoder_dir: Path) -> np.ndarray:
    with _LOCK:  # one load even when the first requests arrive together
        model = _encoder(str(encoder_dir))
    # Below a few hundred texts a process pool costs more than it saves (the decision path sends 1-64).
    return np.atleast_2d(model.encode(list(texts), use_multiprocessing=False, max_length=256))


class LocalModeration:
    """Scores texts on the OpenAI moderation categories with the shipped (or a given) model.

    Example:
        >>> result = LocalModeration().classify(["How can I kill a Python process?"])[0]
        >>> result.flagged
        False
    """

    name = "local-moderation"
    languages = frozenset({"en"})  # the encoder and all the training data are English

    def __init__(self, model_dir: Path = DEFAULT_MODEL_DIR) -> None:
        self.model_dir = Path(model_dir)
        self.heads = load_heads(self.model_dir)

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.heads.thresholds)

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Calibrated probability per head and derived sub-category, per text."""
        if not texts:
            return []
        texts = list(texts)
        probabilities = self.heads.probabilities(encode(texts, self.model_dir / "encoder"), texts)
        out = []
        for row in probabilities:
            scores = {head: float(p) for head, p in zip(self.heads.heads, row, strict=True)}
            for derived, (a, b) in DERIVED.items():
                scores[derived] = min(scores[a], scores[b])
            out.append({k: round(v, 6) for k, v in scores.items()})
        return out

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        results = []
        for scores in self.scores(texts):
            flagged = {c for c, t in self.heads.thresholds.items() if scores[c] >= t}
            # A derived sub-category is flagged when both of its parents are.
            flagged |= {d for d, (a, b) in DERIVED.items() if a in flagged and b in flagged}
            categories = tuple(sorted(flagged))
            results.append(ModerationResult(self.name, bool(categories), categories, scores))
        return results
