"""Moderation of free texts by the decision path's own chain, for `POST /v1/moderations` and
`arbiter safety eval`.

Both read the moderator of the serving `SafetyLayer` (the same providers, fallback and policy a
decision gets) through `safety.moderation.summary`, so what a team measures with `safety eval`
is what `/v1/moderations` answers and what a decision is checked with. Nothing here writes to the
store, the audit log or a log line: the texts are moderated in memory and only categories, scores,
provenance and the kinds of personal data found (never the data) come back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.errors import Unavailable
from app.metrics import MODERATION_FALLBACKS
from safety.layer import SafetyLayer
from safety.moderation.base import ProviderError
from safety.moderation.summary import OPENAI_CATEGORIES, ModerationSummary, summarize
from safety.pii import find_pii

__all__ = ["MODEL_NAME", "moderate_texts", "moderation_response"]

MODEL_NAME = "arbiter-moderation"


def moderate_texts(layer: SafetyLayer, texts: Sequence[str], stage: str = "input") -> list[ModerationSummary]:
    """One summary per text, by the layer's moderator; `Unavailable` when every harm provider failed
    (nothing examined the texts, so there is no answer to give)."""
    if layer.moderator is None:
        raise Unavailable("moderation is not configured on this server")
    try:
        reports = layer.moderate(texts)
    except ProviderError as exc:
        raise Unavailable(f"moderation unavailable: {exc}") from None
    for report in reports:  # per checked text and failed provider, as the decision path counts them
        for provider, kind in report.fell_back_from:
            MODERATION_FALLBACKS.labels(provider, kind).inc()
    return [summarize(report, layer.policy, stage) for report in reports]


def moderation_response(layer: SafetyLayer, texts: Sequence[str], stage: str = "input") -> dict[str, Any]:
    """OpenAI's moderation response (`id`, `model`, `results[]`) with Arbiter's extras under
    `arbiter` in each result: the outcome moderation alone would give, which providers decided and
    why any failed, flagged categories outside OpenAI's taxonomy, per-provider results, language
    coverage where the report has it, and the kinds of personal data found."""
    summaries = moderate_texts(layer, texts, stage)
    results = []
    for text, summary in zip(texts, summaries, strict=True):
        report = dict(summary.report)
        extras = {
            "outcome": summary.outcome,
            "decided_by": report.pop("decided_by", []),
            "fallback": report.pop("fallback", False),
            "errors": report.pop("errors", []),
            "other_categories": list(summary.other_categories),
            "other_scores": summary.other_scores,
            "providers": report.pop("results", []),
            "pii": sorted({m.kind for m in find_pii(text)}),
            "stage": stage,
        }
        extras.update(report)  # whatever else the report carries, e.g. language coverage
        results.append(
            {
                "flagged": summary.flagged,
                "categories": summary.categories,
                "category_scores": summary.category_scores,
                "category_applied_input_types": {c: ["text"] for c in OPENAI_CATEGORIES},
                "arbiter": extras,
            }
        )
    return {"id": f"modr-{uuid.uuid4().hex}", "model": MODEL_NAME, "results": results}
