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
is ``app.services.models.policies.check_canary``). Not here: reward-model score drift, judge-human agreement over time, time to rollback.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from app.metrics import MONITOR_ALERT, MONITOR_VALUE
from app.models import Decision, MonitorReading, Outcome, PolicyVersion, ReviewItem, new_id, utcnow
from app.services.models.policies import canary_analysis, configured_canary_thresholds
from app.settings import Settings
from policies.drift import Reading, Record, compare_windows

__all__ = ["monitor_report"]


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


def _records(session: Session, decisions: list[Decision]) -> list[Record]:
    ids = [d.id for d in decisions]
    rewards: dict[str, float] = {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        rewards.update({i: float(r) for i, r in session.exec(select(Outcome.decision_id, Outcome.reward).where(
            col(Outcome.decision_id).in_(ids[start:start + 500]), col(Outcome.reward).is_not(None))).all()})
    return [Record(d.context or {}, d.proposed_action or d.action, d.action_probs or {}, rewards.get(d.id),
                   d.safety_verdict) for d in decisions]


def _policy_readings(session: Session, settings: Settings, policy: PolicyVersion) -> list[Reading]:
    reference, window = _windows(session, settings, policy.id)
    readings = compare_windows(_records(session, reference), _records(session, window), alpha=settings.monitor_alpha,
                               min_effect=settings.monitor_min_effect)
    return [*readings, _intervention(session, settings, window)]


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
