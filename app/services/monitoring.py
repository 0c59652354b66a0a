"""The monitors over the store: per decision type and serving policy, a rolling window against a reference window.

For each policy that is active or canary (it serves traffic), the reference is its first
``ARBITER_MONITOR_REFERENCE_DECISIONS`` decisions (or those of its first ``ARBITER_MONITOR_REFERENCE_HOURS``) and
the window its latest ``ARBITER_MONITOR_WINDOW_DECISIONS`` decisions after the reference. The statistics are
``policies.drift`` (pure); this module reads the decisions, writes each reading to ``MonitorReading`` (history)
and sets the Prometheus gauges ``arbiter_monitor_value`` / ``arbiter_monitor_alert``.

Monitors: ``input_drift`` per context field (categorical, numeric; free text through its length only),
``action_distribution`` (vs the reference), ``action_entropy`` (collapse), ``action_vs_propensity`` (vs what the
logged probabilities predicted), ``reward_drift``, ``safety_rate`` per effect (block, redact, mask, escalate), and
per decision type ``review_backlog`` and ``intervention_rate`` (window decisions whose review rejected or edited
the output). A canary's group also carries its sequential canary-vs-active verdict (read only; the rollback itself
is ``app.services.policies.check_canary``). Not here: reward-model score drift, judge-human agreement over time, time to rollback.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from app.metrics import MONITOR_ALERT, MONITOR_VALUE
from app.models import Decision, MonitorReading, Outcome, PolicyVersion, ReviewItem, new_id, utcnow
from app.services.policies import canary_analysis, configured_canary_thresholds
from app.settings import Settings
from policies.drift import (
    Reading,
    action_entropy,
    categorical_drift,
    flatten_context,
    infer_kind,
    numeric_drift,
    propensity_fit,
    rate_increase,
)

__all__ = ["monitor_report", "SAFETY_EFFECTS"]

SAFETY_EFFECTS = ("block", "redact", "mask", "escalate")
MIN_ENTROPY_RATIO = 0.5  # the window's action entropy below half the reference's: the policy is collapsing


def _windows(session: Session, settings: Settings, policy_id: str) -> tuple[list[Decision], list[Decision]]:
    base = select(Decision).where(Decision.policy_version_id == policy_id)
    first = session.exec(base.order_by(col(Decision.created_at), col(Decision.id)).limit(1)).first()
    if first is None:
        return [], []
    if settings.monitor_reference_hours:
        end = first.created_at + timedelta(hours=settings.monitor_reference_hours)
        reference = list(session.exec(base.where(col(Decision.created_at) <= end)
                                      .order_by(col(Decision.created_at), col(Decision.id))).all())
    else:
        reference = list(session.exec(base.order_by(col(Decision.created_at), col(Decision.id))
                                      .limit(settings.monitor_reference_decisions)).all())
    seen = {d.id for d in reference}
    latest = session.exec(base.order_by(col(Decision.created_at).desc(), col(Decision.id).desc())
                          .limit(settings.monitor_window_decisions + len(reference))).all()
    window = [d for d in latest if d.id not in seen][: settings.monitor_window_decisions]
    return reference, window


def _rewards(session: Session, decisions: list[Decision]) -> list[float]:
    ids = [d.id for d in decisions]
    rewards: list[float] = []
    for start in range(0, len(ids), 500):  # bounded IN lists
        rewards += [float(r) for r in session.exec(select(Outcome.reward).where(
            col(Outcome.decision_id).in_(ids[start:start + 500]), col(Outcome.reward).is_not(None))).all()]
    return rewards


def _policy_readings(session: Session, settings: Settings, policy: PolicyVersion) -> list[Reading]:
    alpha, effect = settings.monitor_alpha, settings.monitor_min_effect
    reference, window = _windows(session, settings, policy.id)
    readings: list[Reading] = []
    ref_ctx = [flatten_context(d.context or {}) for d in reference]
    win_ctx = [flatten_context(d.context or {}) for d in window]
    for field_name in sorted({k for c in ref_ctx for k in c}):
        ref_values = [c.get(field_name) for c in ref_ctx]
        win_values = [c.get(field_name) for c in win_ctx]
        kind = infer_kind(ref_values)
        if kind == "numeric":
            readings.append(numeric_drift("input_drift", field_name, ref_values, win_values, alpha=alpha,
                                          min_effect=effect))
        elif kind == "text":  # no embeddings here: the length of the text is the proxy
            readings.append(numeric_drift("input_drift", field_name, [len(v) for v in ref_values if isinstance(v, str)],
                                          [len(v) for v in win_values if isinstance(v, str)], alpha=alpha,
                                          min_effect=effect, kind="text length"))
        else:
            readings.append(categorical_drift("input_drift", field_name, ref_values, win_values, alpha=alpha,
                                              min_effect=effect))
    ref_actions = [d.proposed_action or d.action for d in reference if (d.proposed_action or d.action)]
    win_actions = [d.proposed_action or d.action for d in window if (d.proposed_action or d.action)]
    if ref_actions or win_actions:
        readings.append(categorical_drift("action_distribution", "", ref_actions, win_actions, alpha=alpha,
                                          min_effect=effect))
        readings.append(action_entropy(ref_actions, win_actions, min_ratio=MIN_ENTROPY_RATIO))
        readings.append(propensity_fit([d.proposed_action or d.action for d in window],
                                       [d.action_probs or {} for d in window], alpha=alpha, min_effect=effect))
    readings.append(numeric_drift("reward_drift", "", _rewards(session, reference), _rewards(session, window),
                                  alpha=alpha, min_effect=effect))
    for effect_name in SAFETY_EFFECTS:
        readings.append(rate_increase("safety_rate", effect_name,
                                      sum(d.safety_verdict == effect_name for d in reference), len(reference),
                                      sum(d.safety_verdict == effect_name for d in window), len(window),
                                      alpha=alpha, min_increase=effect))
    readings.append(_intervention(session, settings, window))
    return readings


def _intervention(session: Session, settings: Settings, window: list[Decision]) -> Reading:
    threshold = settings.monitor_max_intervention_rate
    if not window:
        return Reading("intervention_rate", "", None, threshold, "insufficient_data", {"n_window": 0})
    ids = [d.id for d in window]
    overturned = 0
    for start in range(0, len(ids), 500):
        overturned += session.exec(select(func.count()).select_from(ReviewItem).where(
            col(ReviewItem.decision_id).in_(ids[start:start + 500]),
            col(ReviewItem.status).in_(("rejected", "edited")))).one()
    rate = overturned / len(ids)
    return Reading("intervention_rate", "", rate, threshold, "alert" if rate > threshold else "ok",
                   {"overturned": int(overturned), "n_window": len(ids)})


def _backlog(session: Session, settings: Settings, decision_type: str) -> Reading:
    pending = session.exec(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.decision_type == decision_type, ReviewItem.status == "pending")).one()
    threshold = settings.monitor_max_review_backlog
    return Reading("review_backlog", "", float(pending), float(threshold),
                   "alert" if pending > threshold else "ok", {"pending": int(pending)})


def monitor_report(session: Session, settings: Settings, *, decision_type: str | None = None,
                   record: bool = True) -> dict[str, Any]:
    """Every monitor's reading, grouped by decision type and policy; recorded as history and exported as gauges
    unless ``record`` is False. The caller commits."""
    query = select(PolicyVersion).where(col(PolicyVersion.state).in_(("active", "canary")))
    if decision_type:
        query = query.where(PolicyVersion.decision_type == decision_type)
    policies = list(session.exec(query.order_by(col(PolicyVersion.decision_type), col(PolicyVersion.state))).all())
    types = sorted({p.decision_type for p in policies} | ({decision_type} if decision_type else set()))
    report_id, now = new_id(), utcnow()
    groups = []
    for dtype in types:
        scopes = [(p, _policy_readings(session, settings, p)) for p in policies if p.decision_type == dtype]
        scopes.append((None, [_backlog(session, settings, dtype)]))
        for policy, readings in scopes:
            pid = policy.id if policy else None
            readings = [Reading(**_clean(r.as_dict())) for r in readings]
            group = {"decision_type": dtype, "policy_id": pid, "state": policy.state if policy else None,
                     "readings": [r.as_dict() for r in readings]}
            if policy is not None and policy.state == "canary":  # the same verdict as `arbiter policy check-canary`
                group["canary"] = _clean(canary_analysis(session, policy, configured_canary_thresholds(settings)))
            groups.append(group)
            for r in readings:
                labels = (dtype, pid or "", r.monitor, r.key)
                if r.value is not None:
                    MONITOR_VALUE.labels(*labels).set(r.value)
                MONITOR_ALERT.labels(*labels).set(1.0 if r.status == "alert" else 0.0)
                if record:
                    session.add(MonitorReading(report_id=report_id, decision_type=dtype, policy_version_id=pid,
                                               monitor=r.monitor, key=r.key, value=r.value, threshold=r.threshold,
                                               status=r.status, details=r.details, created_at=now))
    alerts = [{"decision_type": g["decision_type"], "policy_id": g["policy_id"], "monitor": r["monitor"],
               "key": r["key"], "value": r["value"], "threshold": r["threshold"]}
              for g in groups for r in g["readings"] if r["status"] == "alert"]
    return {"report_id": report_id, "created_at": now.isoformat(), "recorded": record,
            "settings": {"reference_decisions": settings.monitor_reference_decisions,
                         "reference_hours": settings.monitor_reference_hours,
                         "window_decisions": settings.monitor_window_decisions, "alpha": settings.monitor_alpha,
                         "min_effect": settings.monitor_min_effect},
            "alerts": alerts, "groups": groups}


def _clean(value: Any) -> Any:
    """NaN and infinities as None, at any depth: the report is valid JSON and PostgreSQL's JSON accepts it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
