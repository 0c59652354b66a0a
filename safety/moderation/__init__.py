"""Moderation providers (OpenAI endpoint, a guard model on vLLM; local harm classifier, profanity,
injection heuristics)
and the chain that picks which of them answer. See `safety.moderation.chain` for the fallback."""

from safety.moderation.base import ModerationProvider, ModerationResult, ProviderError
from safety.moderation.chain import ModerationReport, Moderator
from safety.moderation.guard import GuardModeration, GuardModerationConfig
from safety.moderation.harm_classifier import (
    HarmClassifier,
    HarmClassifierArtifact,
    latest_artifact,
    load_harm_classifier,
    retrain,
    save_harm_classifier,
    train_harm_classifier,
)
from safety.moderation.harm_model import LocalModeration
from safety.moderation.harm_seed import HARM_CATEGORIES, SAFE_LABEL, seed_examples
from safety.moderation.injection import InjectionHeuristics, InjectionPattern
from safety.moderation.openai_api import OpenAIModeration, OpenAIModerationConfig
from safety.moderation.profanity import ProfanityModeration

__all__ = [
    "HARM_CATEGORIES",
    "SAFE_LABEL",
    "GuardModeration",
    "GuardModerationConfig",
    "HarmClassifier",
    "HarmClassifierArtifact",
    "InjectionHeuristics",
    "InjectionPattern",
    "LocalModeration",
    "ModerationProvider",
    "ModerationReport",
    "ModerationResult",
    "Moderator",
    "OpenAIModeration",
    "OpenAIModerationConfig",
    "ProfanityModeration",
    "ProviderError",
    "latest_artifact",
    "load_harm_classifier",
    "retrain",
    "save_harm_classifier",
    "seed_examples",
    "train_harm_classifier",
]
