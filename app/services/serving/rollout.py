"""Which policy versions serve a request: the active one, a canary for its share of units, a shadow.

The split itself is ``policies.rollout.route`` (sticky: a unit hashes to a fixed bucket, so it stays
on the same policy while the canary's share does not shrink). ``PolicyVersion.traffic_share`` is a
fraction in [0, 1]; the rollout rules speak in percent.
"""

from __future__ import annotations

from sqlmodel import Session, select

from app.models import PolicyVersion
from policies.rollout import Rollout, route

__all__ = ["serving_versions"]


def serving_versions(session: Session, decision_type: str, unit_id: str) -> tuple[PolicyVersion | None, PolicyVersion | None]:
    """(the version that serves this unit, the shadow version or None)."""
    rows = session.exec(select(PolicyVersion).where(PolicyVersion.decision_type == decision_type,
                                                    PolicyVersion.state.in_(("active", "canary", "shadow")))  # type: ignore[attr-defined]
                        .order_by(PolicyVersion.updated_at.desc())).all()  # type: ignore[attr-defined]
    by_state: dict[str, PolicyVersion] = {}
    for row in rows:
        by_state.setdefault(row.state, row)
    active, canary, shadow = by_state.get("active"), by_state.get("canary"), by_state.get("shadow")
    if active is None:
        return canary, shadow
    if canary is None:
        return active, shadow
    served = route(unit_id, Rollout(active.id, canary.id, min(100.0, canary.traffic_share * 100.0)), salt=canary.id).served
    return (canary if served == canary.id else active), shadow
