"""Monitoring over HTTP, for admins and reviewers: the same report as `arbiter monitor report --json`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from app.api.deps import SessionDep, SettingsDep, require_roles
from app.errors import error_responses
from app.models import ApiKey
from app.services.monitoring import monitor_report

router = APIRouter(prefix="/v1/monitoring", tags=["monitoring"])
MonitorKey = Annotated[ApiKey, Depends(require_roles("admin", "reviewer"))]


@router.get("/report", responses=error_responses(401, 403))
def get_report(session: SessionDep, settings: SettingsDep, key: MonitorKey,
               decision_type: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    """Every monitor of every serving policy (value, threshold, status), recorded as history and exported as the
    `arbiter_monitor_value` / `arbiter_monitor_alert` gauges on /metrics."""
    out = monitor_report(session, settings, decision_type=decision_type)
    session.commit()
    return out
