"""Monitors over the store: a drift injected with the simulator (the ticket mix shifts to EU billing, shipping and
account tickets) turns the input-drift and action monitors to alert; the same number of decisions without drift
raises no alert. The CLI and the API give the same report; readings are kept as history and exported as gauges."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.db import session_scope
from app.models import Decision, MonitorReading, Outcome, PolicyVersion, ReviewItem
from policies.simulator import TicketSimulator

N = 300  # reference and window sizes
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _tickets(sim: TicketSimulator, n: int, start: int, drift: bool):
    out, i = [], start
    while len(out) < n:
        t = sim.ticket(i)
        i += 1
        if not drift or (t.context["customer"]["region"] == "EU" and t.topic in ("billing", "shipping", "account")):
            out.append(t)
    return out


def _serve(engine, sim: TicketSimulator, policy_id: str, tickets, offset: int) -> None:
    """The policy routes right with probability 0.85 (else uniformly elsewhere) and logs those probabilities."""
    rng = np.random.default_rng(offset)
    with session_scope(engine) as s:
        for i, t in enumerate(tickets):
            probs = {a: (0.85 if a == t.true_team else 0.15 / (len(sim.teams) - 1)) for a in sim.teams}
            action = str(rng.choice(list(probs), p=list(probs.values())))
            d = Decision(decision_type="ticket-routing", policy_version_id=policy_id, context=t.context,
                         action=action, proposed_action=action, propensity=probs[action], action_probs=probs,
                         safety_verdict="escalate" if t.context["mentions_legal_action"] else "allow",
                         created_at=START + timedelta(seconds=offset + i))
            s.add(d)
            s.flush()
            s.add(Outcome(decision_id=d.id, reward=sim.outcome(t, action).reward))


def _add_policy(engine, name: str, state: str, traffic_share: float) -> str:
    with session_scope(engine) as s:
        row = PolicyVersion(name=name, decision_type="ticket-routing", base_model="fixed", state=state,
                            traffic_share=traffic_share, hyperparams={})
        s.add(row)
        s.flush()
        return row.id


def _store(engine, drift: bool) -> str:
    sim = TicketSimulator(seed=5)
    pid = _add_policy(engine, "router", "active", 1.0)
    _serve(engine, sim, pid, _tickets(sim, N, 0, False), 0)
    _serve(engine, sim, pid, _tickets(sim, N, 10_000, drift), 100_000)
    return pid


def _readings(report: dict, policy_id: str) -> dict[tuple[str, str], dict]:
    group = next(g for g in report["groups"] if g["policy_id"] == policy_id)
    return {(r["monitor"], r["key"]): r for r in group["readings"]}


@pytest.fixture
def monitor_env(monkeypatch):
    monkeypatch.setenv("ARBITER_MONITOR_REFERENCE_DECISIONS", str(N))
    monkeypatch.setenv("ARBITER_MONITOR_WINDOW_DECISIONS", str(N))


@pytest.mark.both_databases
def test_injected_drift_raises_input_and_action_alerts(run_cli, engine, monitor_env):
    pid = _store(engine, drift=True)
    result = run_cli("monitor", "report", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    readings = _readings(report, pid)
    assert readings[("input_drift", "customer.region")]["status"] == "alert"
    assert readings[("input_drift", "customer.language")]["status"] == "alert"
    assert readings[("action_distribution", "")]["status"] == "alert"
    assert readings[("input_drift", "body")]["details"]["kind"] == "text length"
    # the policy still does what its logged probabilities say: no alert against them
    assert readings[("action_vs_propensity", "")]["status"] == "ok"
    assert {(a["monitor"], a["key"]) for a in report["alerts"]} >= {("input_drift", "customer.region"),
                                                                     ("action_distribution", "")}
    with Session(engine) as s:
        rows = s.exec(select(MonitorReading).where(MonitorReading.report_id == report["report_id"])).all()
    assert len(rows) == sum(len(g["readings"]) for g in report["groups"])
    assert {r.status for r in rows if r.monitor == "action_distribution"} == {"alert"}


def test_no_alert_without_drift_over_the_same_number_of_decisions(settings, engine, auth, monkeypatch):
    from app.api.main import create_app

    pid = _store(engine, drift=False)
    app = create_app(settings.model_copy(update={"monitor_reference_decisions": N, "monitor_window_decisions": N}))
    with TestClient(app) as client:
        assert client.get("/v1/monitoring/report", headers=auth("app")).status_code == 403
        r = client.get("/v1/monitoring/report", headers=auth("reviewer"))
        assert r.status_code == 200, r.text
        report = r.json()
        metrics = client.get("/metrics").text
    assert report["alerts"] == []
    readings = _readings(report, pid)
    assert all(r["status"] == "ok" for r in readings.values()), [r for r in readings.values() if r["status"] != "ok"]
    assert readings[("reward_drift", "")]["details"]["n_window"] == N
    assert f'arbiter_monitor_alert{{decision_type="ticket-routing",key="customer.region",monitor="input_drift",policy="{pid}"}} 0.0' in metrics


def test_review_backlog_and_interventions(run_cli, engine, monkeypatch, monitor_env):
    monkeypatch.setenv("ARBITER_MONITOR_MAX_REVIEW_BACKLOG", "2")
    pid = _store(engine, drift=False)
    with session_scope(engine) as s:
        window = s.exec(select(Decision).order_by(Decision.created_at.desc()).limit(100)).all()  # type: ignore[attr-defined]
        for i, d in enumerate(window):
            s.add(ReviewItem(decision_id=d.id, decision_type="ticket-routing",
                             status="rejected" if i < 90 else "pending"))
    report = json.loads(run_cli("monitor", "report", "--json", "--no-record").output.strip().splitlines()[-1])
    backlog = next(g for g in report["groups"] if g["policy_id"] is None)["readings"][0]
    assert (backlog["monitor"], backlog["value"], backlog["status"]) == ("review_backlog", 10.0, "alert")
    intervention = _readings(report, pid)[("intervention_rate", "")]
    assert intervention["value"] == pytest.approx(90 / N) and intervention["status"] == "alert"
    with Session(engine) as s:
        assert s.exec(select(MonitorReading)).first() is None  # --no-record keeps no history


def test_reference_window_by_time(run_cli, engine, monkeypatch):
    """ARBITER_MONITOR_REFERENCE_HOURS: the reference is the decisions of the policy's first H hours (here the first
    100 of 600, one a second from the start), the window the latest N after them."""
    monkeypatch.setenv("ARBITER_MONITOR_REFERENCE_HOURS", str(99.5 / 3600))
    monkeypatch.setenv("ARBITER_MONITOR_WINDOW_DECISIONS", "200")
    pid = _store(engine, drift=False)
    report = json.loads(run_cli("monitor", "report", "--json", "--no-record").output.strip().splitlines()[-1])
    action = _readings(report, pid)[("action_distribution", "")]
    assert (action["details"]["n_reference"], action["details"]["n_window"]) == (100, 200)
    assert report["settings"]["reference_hours"] == pytest.approx(99.5 / 3600)


def test_a_canary_group_carries_its_sequential_verdict(run_cli, engine, monitor_env):
    _store(engine, drift=False)
    sim = TicketSimulator(seed=6)
    canary = _add_policy(engine, "next", "canary", 0.1)
    _serve(engine, sim, canary, sim.tickets(40), 200_000)
    report = json.loads(run_cli("monitor", "report", "--json", "--no-record").output.strip().splitlines()[-1])
    group = next(g for g in report["groups"] if g["policy_id"] == canary)
    assert group["state"] == "canary" and group["canary"]["decision"] == "continue"  # 40 outcomes: burn-in
    assert {t["metric"] for t in group["canary"]["statistics"]} == {"reward", "block_rate"}
    assert all("canary" not in g for g in report["groups"] if g["policy_id"] != canary)
