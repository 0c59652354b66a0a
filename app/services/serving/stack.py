"""The per-process serving state: policy runtime and safety layer, built on first use.

Building it also makes sure every decision type has an active policy (the base model when nothing
was promoted yet) and that the rule sets in force are recorded: a rule set whose hash the store has
not seen is a rule-set change, and gets an audit entry.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.audit import append_audit
from app.db import session_scope
from app.models import RuleSetVersion
from app.services.review.queue import harm_classifier_dir
from app.services.serving.policy_runtime import PolicyRuntime, ensure_base_policy
from app.settings import Settings
from safety.layer import SafetyLayer
from safety.moderation.guard import GuardModerationConfig
from safety.moderation.openai_api import OpenAIModerationConfig
from safety.pii import use_pii_detector

__all__ = ["Serving", "build_safety_layer", "record_rulesets", "get_serving"]

_lock = threading.Lock()


@dataclass
class Serving:
    runtime: PolicyRuntime
    safety: SafetyLayer


def build_safety_layer(settings: Settings) -> SafetyLayer:
    openai = None
    if settings.openai_api_key:
        kwargs = {"base_url": settings.openai_base_url} if settings.openai_base_url else {}
        openai = OpenAIModerationConfig(api_key=settings.openai_api_key, model=settings.moderation_model,
                                        timeout_s=settings.moderation_timeout_s, **kwargs)
    guard = None
    if settings.guard_base_url:
        guard = GuardModerationConfig(base_url=settings.guard_base_url, model=settings.guard_model,
                                      family=settings.guard_family, api_key=settings.guard_api_key or "EMPTY",
                                      timeout_s=settings.guard_timeout_s)
    # Loaded here, not on the first request (the spaCy pipeline takes about a second).
    use_pii_detector(settings.pii_ner_model)
    # Reviewer verdicts retrain the harm classifier into versioned artifacts (app.services.review.queue);
    # the newest one is used, the seed-trained one until there is any.
    classifier = harm_classifier_dir(settings)
    return SafetyLayer.build(openai=openai, harm_classifier_path=classifier if classifier.exists() else None,
                             rulesets_dir=settings.rulesets_dir, guard=guard,
                             remote_order=settings.moderation_remote_providers)


def record_rulesets(session: Session, layer: SafetyLayer, actor: str = "system") -> list[str]:
    """Store rule sets not seen before (by content hash), with an audit entry each; returns their hashes."""
    changed = []
    for decision_type, ruleset in sorted(layer.rulesets.items()):
        if session.get(RuleSetVersion, ruleset.hash) is not None:
            continue
        previous = session.exec(select(RuleSetVersion).where(RuleSetVersion.decision_type == decision_type)
                                .order_by(RuleSetVersion.created_at.desc())).first()  # type: ignore[attr-defined]
        session.add(RuleSetVersion(hash=ruleset.hash, decision_type=decision_type, content=json.dumps(ruleset.document, sort_keys=True, ensure_ascii=False)))
        append_audit(session, actor, "ruleset.changed", "ruleset", ruleset.hash,
                     {"decision_type": decision_type, "name": ruleset.name, "previous_hash": previous.hash if previous else None})
        changed.append(ruleset.hash)
    return changed


def prepare_store(engine: Engine, serving: Serving, actor: str = "system") -> None:
    with session_scope(engine) as session:
        for name in sorted(serving.runtime.decision_types):
            ensure_base_policy(session, name, actor=actor)
        record_rulesets(session, serving.safety, actor=actor)


def get_serving(state: object, settings: Settings, engine: Engine) -> Serving:
    """The app's Serving (``state`` is ``app.state``), built once."""
    serving = getattr(state, "serving", None)
    if serving is not None:
        return serving
    with _lock:
        serving = getattr(state, "serving", None)
        if serving is None:
            serving = Serving(PolicyRuntime(settings, decision_types_dir=settings.decision_types_dir, max_batch=settings.policy_max_batch), build_safety_layer(settings))
            prepare_store(engine, serving)
            state.serving = serving  # type: ignore[attr-defined]
    return serving
