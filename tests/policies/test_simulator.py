"""The ticket simulator is deterministic, follows its routing rules, and its rewards have the stated means."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from policies.decision_types import BUILTIN_DIR, load_decision_type
from policies.simulator import TEAMS, TicketSimulator


def test_same_seed_same_tickets_and_outcomes():
    a, b = TicketSimulator(seed=5), TicketSimulator(seed=5)
    assert a.tickets(50) == b.tickets(50)
    t = a.ticket(17)
    assert a.outcome(t, "billing") == b.outcome(t, "billing")
    assert a.ticket(17) == a.tickets(1, start=17)[0]  # ticket i does not depend on what was generated before
    assert TicketSimulator(seed=6).tickets(20) != a.tickets(20)


def test_tickets_are_valid_contexts_with_variety():
    routing = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    tickets = TicketSimulator(seed=1).tickets(600)
    for t in tickets[:100]:
        routing.validate_context(t.context)
    teams = Counter(t.true_team for t in tickets)
    assert set(teams) == set(TEAMS) and min(teams.values()) >= 20
    assert len({t.context["subject"] for t in tickets}) > 40
    assert len({t.context["body"] for t in tickets}) > 500
    assert {t.context["customer"]["tier"] for t in tickets} == {"vip", "standard"}
    assert len({t.context["customer"]["language"] for t in tickets}) == 4


def test_legal_threats_route_to_legal_whatever_the_topic():
    tickets = TicketSimulator(seed=2).tickets(1500)
    escalated = [t for t in tickets if t.topic != "legal" and t.context["mentions_legal_action"]]
    assert len(escalated) > 20
    assert all(t.true_team == "legal" for t in escalated)
    assert all(t.true_team == t.topic for t in tickets if not t.context["mentions_legal_action"])


def test_rewards_have_the_exact_expected_means():
    sim = TicketSimulator(seed=4)
    vip = next(t for t in sim.tickets(200) if t.context["customer"]["tier"] == "vip" and t.true_team == "billing")
    for action, mean in [("billing", 0.9), ("account", 0.15), ("legal", 0.025)]:
        assert sim.expected_reward(vip, action) == pytest.approx(mean)
        draws = np.array([sim.outcome(vip, action, draw=d).reward for d in range(3000)])
        assert draws.min() >= 0.0 and draws.max() <= 1.0
        assert abs(draws.mean() - mean) < 4 * draws.std() / np.sqrt(len(draws))
    assert sim.outcome(vip, "billing").resolved and not sim.outcome(vip, "legal").resolved


def test_unknown_teams_are_refused():
    sim = TicketSimulator()
    with pytest.raises(ValueError, match="unknown team"):
        sim.expected_reward(sim.ticket(0), "marketing")
    with pytest.raises(ValueError, match="unknown"):
        TicketSimulator(teams=("billing", "marketing"))
