"""Serving a decision: validate, route, propose, check, log — and record outcomes.

``decide`` is the whole path of ``POST /v1/decisions/{type}``:

1. the context is validated against the decision type's JSON schema;
2. a retried request (same ``Idempotency-Key``) gets the decision it already got;
3. the unit (user, ticket, ...) is routed stickily to the active or the canary policy; a shadow
   policy, if any, decides on the same request and is logged, never served;
4. the safety layer checks the input (masking actions, moderating the user's text), the policy
   proposes from what is left, and the safety layer checks the output;
5. one Decision row (and a ReviewItem when a reviewer must look) is written in one transaction.

Policy scoring goes through each policy's ``MicroBatcher``, so concurrent requests share model calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import append_audit
from app.db import read_only, session_scope
from app.errors import Conflict, InvalidInput, NotFound, Unavailable
from app.input_values import find_hostile
from app.metrics import DECISION_LATENCY, DECISION_REWARD, DECISIONS, MODERATION_FALLBACKS, SAFETY_BLOCKS
from app.models import Decision, Label, Outcome, PolicyVersion, ReviewItem, new_id, utcnow
from app.services.serving.policy_runtime import PolicyRuntime
from app.services.serving.rollout import serving_versions
from policies.action_policy import ActionDecision
from policies.decision_types import PromptTooLong
from policies.rollout import CanaryThresholds
from safety.layer import SafetyLayer
from safety.pii import redact_fields, redact_values
from safety.verdict import Outcome as SafetyOutcome
from safety.verdict import Verdict

__all__ = ["DecisionResult", "decide", "record_decision_metrics", "record_outcome", "request_hash"]


@dataclass
class DecisionResult:
    decision: Decision
    review_item_id: str | None
    replayed: bool = False

    def public(self) -> dict[str, Any]:
        d = self.decision
        served = d.safety_verdict in ("allow", "redact", "mask")
        return {
            "id": d.id, "decision_type": d.decision_type, "unit_id": d.unit_id,
            "action": d.action, "output": d.output, "propensity": d.propensity,
            "served": served, "policy_version_id": d.policy_version_id,
            "safety": {"verdict": d.safety_verdict, "rule_set_hash": d.rule_set_hash, **d.safety_details},
            "review_item_id": self.review_item_id, "latency_ms": d.latency_ms, "replayed": self.replayed,
            "created_at": d.created_at.isoformat() if d.created_at else None,
        }


def request_hash(decision_type: str, context: dict, unit_id: str | None) -> str:
    return hashlib.sha256(json.dumps([decision_type, context, unit_id], sort_keys=True, default=str).encode()).hexdigest()


def redacted_context(context: dict, text: str | None = None) -> dict:
    """The context with personal data removed from every string in it, nested ones included; with
    `text`, its user text, the detections the input check made in it are reused for the top-level fields."""
    return redact_fields(context, text) if text is not None else redact_values(context)


def _replay(session: Session, idempotency_key: str, rhash: str, caller: str) -> DecisionResult | None:
    existing = session.exec(select(Decision).where(Decision.idempotency_scope == caller,
                                                   Decision.idempotency_key == idempotency_key)).first()
    if existing is None:
        return None
    if existing.request_hash != rhash:
        raise Conflict(f"Idempotency-Key {idempotency_key!r} was already used with a different request")
    item = session.exec(select(ReviewItem.id).where(ReviewItem.decision_id == existing.id)).first()
    return DecisionResult(existing, item, replayed=True)


def _writable(*values: Any) -> None:
    """InvalidInput unless ``values`` can be sent as the API's JSON and stored on PostgreSQL too (no lone
    surrogate, NaN or NUL). The API's input guard refuses such input first; this is the second line, for
    callers that bypass it: before it, a decision was committed and its response then failed with 500."""
    try:
        data = json.dumps(values, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidInput(f"the decision cannot be stored and answered as JSON ({type(exc).__name__}); "
                           "nothing was stored") from None
    if b"\\u0000" in data:
        raise InvalidInput("the decision contains the NUL character, which cannot be stored; nothing was stored")


def _final_verdict(verdict_in: Verdict, verdict_out: Verdict | None) -> Verdict:
    from safety.verdict import SEVERITY

    if verdict_out is None or SEVERITY[verdict_in.outcome] > SEVERITY[verdict_out.outcome]:
        return verdict_in
    return verdict_out


def record_decision_metrics(decision: Decision, verdicts: list[Verdict], policy_name: str) -> None:
    DECISIONS.labels(decision.decision_type, policy_name, decision.safety_verdict).inc()
    DECISION_LATENCY.labels(decision.decision_type).observe(decision.latency_ms / 1000)
    for v in verdicts:
        for provider, kind in v.fell_back_from:  # the provider that failed, not the ones that answered instead
            MODERATION_FALLBACKS.labels(provider, kind).inc()
        if v.outcome != SafetyOutcome.ALLOW:
            for r in v.reasons:
                SAFETY_BLOCKS.labels(decision.decision_type, r.outcome.value, r.code if r.source == "rule" else "",
                                     r.provider or r.source).inc()


async def decide(engine: Engine, runtime: PolicyRuntime, safety: SafetyLayer, decision_type: str, context: dict,
                 unit_id: str | None = None, idempotency_key: str | None = None, actor: str = "api",
                 canary: CanaryThresholds | None = None) -> DecisionResult:
    """Validate, propose (serving and shadow policy), apply the safety layer, log; see the module docstring.

    ``actor`` is the caller (``key:<api key id>``): an ``idempotency_key`` is unique per caller, so another
    caller's equal key is another request. With ``canary`` thresholds, a blocked or escalated decision of a canary policy runs the automatic canary
    check (``app.services.models.policies.check_canary``), which may roll the canary back.
    """
    started = time.perf_counter()
    dt = runtime.decision_type(decision_type)
    if dt is None:
        raise NotFound(f"unknown decision type {decision_type!r}; known: {', '.join(sorted(runtime.decision_types))}")
    try:
        dt.validate_context(context)
    except Exception as exc:  # the decision type raises its own error with the JSON-schema message
        raise InvalidInput(f"context does not match the {decision_type!r} schema: {exc}") from None
    hostile = find_hostile({"context": context, "unit_id": unit_id})  # the API's guard did this; other callers
    if hostile is not None:
        raise InvalidInput(f"{'.'.join(str(p) for p in hostile[0])}: {hostile[1]}")
    rhash = request_hash(decision_type, context, unit_id)
    decision_id = new_id()

    with Session(read_only(engine), expire_on_commit=False) as session:
        if idempotency_key:
            replay = _replay(session, idempotency_key, rhash, actor)
            if replay:
                return replay
        serving, shadow = serving_versions(session, decision_type, unit_id or decision_id)
    if serving is None:
        raise Unavailable(f"no active policy for {decision_type!r}; run `arbiter init` or promote one")

    text = dt.user_text(context)
    actions = list(dt.action_ids) if dt.kind == "action" else []
    verdict_in = await asyncio.to_thread(safety.check_input, decision_type, context=context, text=text, actions=actions)
    # Whatever the verdict (blocked and escalated inputs included), the policy, the decision log and
    # reviewers see the context without personal data; only the safety layer above read the original.
    context = redacted_context(context, text)
    verdict_out: Verdict | None = None
    proposal: ActionDecision | None = None
    shadow_proposal: ActionDecision | None = None
    draft: str | None = None
    if verdict_in.outcome not in (SafetyOutcome.BLOCK, SafetyOutcome.ESCALATE):
        loaded = await runtime.aget(serving)
        try:  # fields are cut to their token budgets; a prompt still over the type's limit is refused here,
            await asyncio.to_thread(loaded.policy.checked_prompt, context)  # before it can hold the model thread
        except PromptTooLong as exc:
            raise InvalidInput(str(exc)) from None
        shadow_loaded = await runtime.aget(shadow) if shadow is not None else None
        if dt.kind == "action":
            jobs = [loaded.batcher.submit(context)] + ([shadow_loaded.batcher.submit(context)] if shadow_loaded else [])
            scores = await asyncio.gather(*jobs)
            masked = verdict_in.masked_actions
            # The draw is keyed by the idempotency key when there is one, so a replayed workload (the demo,
            # a re-run job) makes the same choices; otherwise by the fresh decision id.
            key = f"idem:{idempotency_key}" if idempotency_key else decision_id
            proposal = loaded.policy.decide_from_scores(scores[0], masked=masked, key=key)
            if shadow_loaded:
                shadow_proposal = shadow_loaded.policy.decide_from_scores(scores[1], masked=masked, key=key)
            verdict_out = await asyncio.to_thread(safety.check_output, decision_type, context=context, action=proposal.action,
                                                  actions=actions, input_text=text)
        else:
            drafted = await loaded.batcher.submit(context)
            draft = drafted.text
            verdict_out = await asyncio.to_thread(safety.check_output, decision_type, context=context, text=draft, input_text=text)

    final = _final_verdict(verdict_in, verdict_out)
    deliverable = final.outcome in (SafetyOutcome.ALLOW, SafetyOutcome.REDACT, SafetyOutcome.MASK)
    served_output = None
    if draft is not None and deliverable:
        served_output = verdict_out.text if verdict_out is not None and verdict_out.text is not None else draft
    decision = Decision(
        id=decision_id, decision_type=decision_type, unit_id=unit_id, context=context,
        policy_version_id=serving.id,
        action=proposal.action if proposal and deliverable else None,
        propensity=proposal.propensity if proposal else None,
        action_probs=proposal.probabilities if proposal else {},
        proposed_action=proposal.action if proposal else None,
        proposed_output=redact_values(draft), output=redact_values(served_output),
        shadow_policy_version_id=shadow.id if shadow_proposal else None,
        shadow_action=shadow_proposal.action if shadow_proposal else None,
        shadow_propensity=shadow_proposal.propensity if shadow_proposal else None,
        safety_verdict=final.outcome.value,
        # Rule and provider messages may quote the input ("expected a number, got '...'"): scrubbed too.
        safety_details=redact_values({"input": verdict_in.to_dict(), "output": verdict_out.to_dict() if verdict_out else None}),
        rule_set_hash=final.ruleset_hash or verdict_in.ruleset_hash,
        idempotency_key=idempotency_key, idempotency_scope=actor if idempotency_key else None, request_hash=rhash,
    )
    review_id = None
    try:
        with session_scope(engine) as session:
            decision.latency_ms = round((time.perf_counter() - started) * 1000, 3)
            # Nothing is written that cannot be answered and stored alike on every store.
            _writable(DecisionResult(decision, None).public(), decision.context)
            session.add(decision)
            session.flush()
            if verdict_in.needs_review or (verdict_out is not None and verdict_out.needs_review):
                item = ReviewItem(decision_id=decision.id, decision_type=decision_type,
                                  kind="escalated" if final.outcome == SafetyOutcome.ESCALATE else "flagged",
                                  content=redact_values(draft if draft is not None else (proposal.action if proposal else text)),
                                  context=context,
                                  reasons=redact_values([r.to_dict() for v in (verdict_in, verdict_out) if v for r in v.reasons]))
                session.add(item)
                session.flush()
                review_id = item.id
    except IntegrityError:
        # A concurrent retry with the same Idempotency-Key won the race: return its decision.
        if idempotency_key:
            with Session(read_only(engine), expire_on_commit=False) as session:
                replay = _replay(session, idempotency_key, rhash, actor)
                if replay:
                    return replay
        raise
    record_decision_metrics(decision, [v for v in (verdict_in, verdict_out) if v], serving.name)
    if canary is not None and serving.state == "canary" and not deliverable:
        _check_canary(engine, decision_type, canary)
    return DecisionResult(decision, review_id)


def _check_canary(engine: Engine, decision_type: str, thresholds: CanaryThresholds) -> None:
    from app.services.models.policies import check_canary

    with session_scope(engine) as session:
        check_canary(session, decision_type, thresholds=thresholds)


def record_outcome(session: Session, decision_id: str, reward: float | None, feedback: dict, actor: str,
                   canary: CanaryThresholds | None = None, *, correction: bool = False,
                   reason: str | None = None) -> Outcome:
    """Record what happened after a decision: one outcome per decision, and the first one stands.

    A second outcome is refused (``Conflict``, 409) unless it is a ``correction`` with a ``reason``: then it
    replaces the recorded reward and feedback in place, and the old and new rewards go to the audit log. So
    metrics, the canary check, OPE and outcome labels all read exactly one reward per decision (the latest
    correction). The Prometheus reward histogram observes first outcomes only (it cannot forget an observation).

    With ``canary`` thresholds, an outcome of a canary policy's decision runs the automatic canary check in the
    same transaction (a rollback is audited with it)."""
    decision = session.get(Decision, decision_id)
    if decision is None:
        raise NotFound(f"no decision {decision_id!r}")
    existing = session.exec(select(Outcome).where(Outcome.decision_id == decision_id)).first()
    feedback = redact_values(feedback)  # an application's free-text feedback may quote the customer
    if correction:
        if existing is None:
            raise NotFound(f"decision {decision_id!r} has no outcome to correct; record it without 'correction'")
        if not (reason or "").strip():
            raise InvalidInput("a correction needs a reason (it is audited)")
        previous = existing.reward
        existing.reward, existing.feedback, existing.corrected_at = reward, feedback, utcnow()
        session.add(existing)
        # Preference labels derived from the old reward (`outcome_labels`) go; the next derivation uses the new one.
        stale = session.exec(select(Label).where(Label.source == "outcome",
                                                 Label.producer == f"outcome:{decision_id}")).all()
        for label in stale:
            session.delete(label)
        session.flush()
        append_audit(session, actor, "outcome.corrected", "outcome", existing.id,
                     {"decision_id": decision_id, "reward_before": previous, "reward": reward, "reason": reason,
                      "labels_withdrawn": len(stale)})
        outcome = existing
    else:
        if existing is not None:
            raise Conflict(f"decision {decision_id!r} already has an outcome (reward {existing.reward}); the first "
                           "outcome stands: send a correction (with a reason) to replace it", code="outcome_exists")
        outcome = Outcome(decision_id=decision_id, reward=reward, feedback=feedback)
        try:
            with session.begin_nested():  # a concurrent first outcome for the same decision loses here
                session.add(outcome)
        except IntegrityError:
            raise Conflict(f"decision {decision_id!r} already has an outcome; the first outcome stands",
                           code="outcome_exists") from None
    if reward is not None:
        version = session.get(PolicyVersion, decision.policy_version_id) if decision.policy_version_id else None
        if not correction:
            DECISION_REWARD.labels(decision.decision_type, version.name if version else "none").observe(reward)
        if canary is not None and version is not None and version.state == "canary":
            from app.services.models.policies import check_canary

            check_canary(session, decision.decision_type, thresholds=canary)
    return outcome
