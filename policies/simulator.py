"""Ticket-routing simulator: realistic support tickets with a ground-truth team, and noisy outcomes.

It drives the demo, the tests and the validation of off-policy evaluation, so it is seeded and deterministic:
ticket ``i`` of a simulator depends only on ``(seed, i)``, and the outcome of routing ticket ``i`` to a team only on
``(seed, i, team, draw)``. The expected reward of every (ticket, team) is known exactly (``expected_reward``),
which is what lets the OPE benchmark compare estimates with a true value.

Routing rules (the ground truth):
- a ticket is about one topic team (billing, technical, account, shipping, sales);
- a customer who threatens legal action, or asks a data-protection / legal question, goes to ``legal``
  regardless of topic.

Rewards are Beta-distributed in [0, 1] with exact means: the right team ~0.9; a neighbouring team that can hand
over (billing <-> account, billing <-> sales, technical <-> account, shipping <-> billing) ~0.3; anything else
~0.05; a misrouted VIP ticket earns half of that. Rewards are noisy, so a single outcome is weak evidence.

Not here: the text generator is template-based (with vocabulary, tone, language and attribute variety); it is not a
language model and makes no claim to cover real ticket distributions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policies.simulator_text import CLOSERS, GREETINGS, LEGAL_THREATS, SLOTS, TOPICS

TEAMS: tuple[str, ...] = ("billing", "technical", "account", "shipping", "sales", "legal")
TOPIC_WEIGHTS: dict[str, float] = {"billing": 0.24, "technical": 0.26, "account": 0.18, "shipping": 0.17,
                                   "sales": 0.10, "legal": 0.05}
LEGAL_ESCALATION_RATE = 0.06  # share of non-legal tickets whose author threatens legal action
_NEIGHBOURS = {frozenset(p) for p in [("billing", "account"), ("billing", "sales"), ("technical", "account"),
                                      ("shipping", "billing")]}
_REGIONS = {"NA": ["en", "es"], "EU": ["en", "de", "fr", "es"], "APAC": ["en"], "LATAM": ["es", "en"]}
_CONCENTRATION = 20.0  # Beta(a, b) with a + b = 20: sd ~0.07 around 0.9, ~0.1 around 0.3


@dataclass(frozen=True)
class Ticket:
    """One simulated ticket: ``context`` is what an application would send (ticket-routing schema)."""

    ticket_id: str
    index: int
    context: dict[str, Any]
    true_team: str
    topic: str
    features: dict[str, Any] = field(default_factory=dict)  # flat attributes for analysis / OPE regressions

    @property
    def text(self) -> str:
        return f"{self.context['subject']}\n{self.context['body']}"


@dataclass(frozen=True)
class Outcome:
    ticket_id: str
    action: str
    reward: float
    resolved: bool  # routed to the right team


class TicketSimulator:
    """Seeded generator of tickets and outcomes.

    Example:
        >>> sim = TicketSimulator(seed=1)
        >>> t = sim.ticket(0)
        >>> t.true_team in TEAMS, sim.ticket(0) == t
        (True, True)
        >>> 0.0 <= sim.outcome(t, t.true_team).reward <= 1.0
        True
    """

    def __init__(self, seed: int = 0, *, teams: tuple[str, ...] = TEAMS):
        unknown = set(teams) - set(TEAMS)
        if unknown:
            raise ValueError(f"the simulator knows the teams {TEAMS}; unknown: {sorted(unknown)}")
        self.seed = seed
        self.teams = teams

    # ------------------------------------------------------------------------------------------------ tickets
    def ticket(self, index: int) -> Ticket:
        rng = np.random.default_rng([self.seed, index, 0x71C])
        topics = [t for t in TOPIC_WEIGHTS if t in self.teams]
        weights = np.array([TOPIC_WEIGHTS[t] for t in topics])
        topic = str(rng.choice(topics, p=weights / weights.sum()))
        region = str(rng.choice(list(_REGIONS)))
        language = str(rng.choice(_REGIONS[region]))
        tier = "vip" if rng.random() < 0.15 else "standard"
        tone = str(rng.choice(["polite", "neutral", "angry"], p=[0.4, 0.4, 0.2]))

        spec = TOPICS[topic]
        fill = {k: _pick(rng, v) for k, v in SLOTS.items()}
        fill["order"] = f"{rng.integers(100000, 999999)}"
        fill["amount"] = f"{rng.integers(5, 900)}.{rng.integers(0, 99):02d}"
        fill["days"] = str(rng.integers(2, 30))
        subject = _pick(rng, spec["subjects"]).format(**fill)
        sentences = [s.format(**fill) for s in _pick_some(rng, spec["bodies"], 1, 2)]

        threatens = topic == "legal" or ("legal" in self.teams and rng.random() < LEGAL_ESCALATION_RATE)
        if threatens and topic != "legal":
            sentences.append(_pick(rng, LEGAL_THREATS).format(**fill))
        if tone == "angry":
            sentences.append(_pick(rng, ["This is unacceptable.", "I am really frustrated.",
                                         "Third time I am writing about this!", "Fix this now."]))
        body = " ".join([_pick(rng, GREETINGS[language]), *sentences, _pick(rng, CLOSERS[language])]).strip()
        true_team = "legal" if threatens and "legal" in self.teams else topic

        context = {
            "subject": subject,
            "body": body,
            "mentions_legal_action": bool(threatens),
            "customer": {"tier": tier, "region": region, "language": language},
            "channel": str(rng.choice(["email", "chat", "web"])),
        }
        features = {"topic": topic, "tier": tier, "region": region, "language": language, "tone": tone,
                    "mentions_legal_action": bool(threatens)}
        return Ticket(f"T{self.seed}-{index}", index, context, true_team, topic, features)

    def tickets(self, n: int, *, start: int = 0) -> list[Ticket]:
        """Tickets ``start .. start+n-1``; disjoint ranges give disjoint train / held-out sets."""
        if n < 0:
            raise ValueError("n must be >= 0")
        return [self.ticket(i) for i in range(start, start + n)]

    # ----------------------------------------------------------------------------------------------- outcomes
    def expected_reward(self, ticket: Ticket, action: str) -> float:
        """Exact mean reward of routing ``ticket`` to ``action``."""
        if action not in self.teams:
            raise ValueError(f"unknown team {action!r}; teams are {self.teams}")
        if action == ticket.true_team:
            return 0.9
        base = 0.3 if frozenset((action, ticket.true_team)) in _NEIGHBOURS else 0.05
        return base * (0.5 if ticket.context["customer"]["tier"] == "vip" else 1.0)

    def expected_rewards(self, tickets: list[Ticket]) -> np.ndarray:
        """Matrix ``(len(tickets), len(teams))`` of exact mean rewards, columns in ``self.teams`` order."""
        return np.array([[self.expected_reward(t, a) for a in self.teams] for t in tickets])

    def outcome(self, ticket: Ticket, action: str, *, draw: int = 0) -> Outcome:
        """A noisy reward with mean ``expected_reward``; ``draw`` distinguishes repeated trials of one pair."""
        mean = self.expected_reward(ticket, action)
        key = hashlib.sha256(f"{self.seed}|{ticket.index}|{action}|{draw}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
        reward = float(rng.beta(mean * _CONCENTRATION, (1.0 - mean) * _CONCENTRATION))
        return Outcome(ticket.ticket_id, action, reward, resolved=action == ticket.true_team)


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _pick_some(rng: np.random.Generator, options: list[str], low: int, high: int) -> list[str]:
    k = int(rng.integers(low, high + 1))
    idx = rng.choice(len(options), size=min(k, len(options)), replace=False)
    return [options[int(i)] for i in idx]
