"""The state of one `arbiter demo` run, shared by its stages: options, the store, the serving stack, the
simulated tickets, what each stage produced, and the two things every stage needs (timing a stage, routing
tickets through the real decision path). It holds no stage logic of its own (``loop`` and ``report`` do)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app.db import session_scope
from app.services.serving.decisions import decide, record_outcome
from app.settings import Settings
from policies.simulator import Ticket

__all__ = ["ACTOR", "CONTENT_START", "HELD_OUT_START", "REPO", "DemoOptions", "DemoRun"]

REPO = Path(__file__).resolve().parents[2]  # the checkout: shipped recipes live here
HELD_OUT_START = 1_000_000
CONTENT_START = 2_000_000
ACTOR = "demo"


@dataclass
class DemoOptions:
    train_tickets: int = 240
    eval_tickets: int = 120
    content_prompts: int = 8
    rollout_tickets: int = 60
    dpo_pairs: int = 160
    explore_temperature: float = 4.0
    explore_epsilon: float = 0.5
    seed: int = 0
    with_argilla: bool = False
    serve: bool = True
    port: int = 8000
    keep_serving: bool = True
    reward_recipe: Path = REPO / "recipes" / "reward_minilm.yaml"
    dpo_recipe: Path = REPO / "recipes" / "dpo_routing.yaml"
    reward_overrides: dict[str, Any] = field(default_factory=dict)
    dpo_max_steps: int | None = None


class DemoRun:
    """What the stages share; each stage sets the attributes it produces (``engine``, ``serving``, ``train``, ...)."""

    def __init__(self, settings: Settings, options: DemoOptions, say: Callable[[str], None] = print):
        self.options, self.say = options, say
        self.dir = Path(settings.var_dir) / "demo"
        self.settings = settings.model_copy(update={"database_url": f"sqlite:///{(self.dir / 'arbiter.db').as_posix()}"})
        self.summary: dict[str, Any] = {"stages": {}}
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, number: int, title: str):
        self.say(f"[{number}/10] {title} ...")
        t0 = time.perf_counter()
        yield
        took = time.perf_counter() - t0
        self.summary["stages"][f"{number}. {title}"] = round(took, 1)
        self.say(f"[{number}/10] {title}: done in {took:.0f} s")

    async def decide_all(self, tickets: list[Ticket], label: str, outcomes: bool = True) -> list[dict]:
        """Route tickets through the decision path 16 at a time (so micro-batching applies)."""
        out: list[dict] = []
        bar = tqdm(total=len(tickets), desc=f"      {label}", unit="ticket", leave=False)
        for i in range(0, len(tickets), 16):
            chunk = tickets[i:i + 16]
            results = await asyncio.gather(*(decide(self.engine, self.serving.runtime, self.serving.safety, "ticket-routing",
                                                    t.context, unit_id=t.ticket_id, idempotency_key=f"{label}:{t.ticket_id}",
                                                    actor=ACTOR) for t in chunk))
            with session_scope(self.engine) as s:
                for ticket, r in zip(chunk, results):
                    d = r.decision
                    reward = None
                    if outcomes and d.action is not None:
                        reward = self.sim.outcome(ticket, d.action).reward
                        if not r.replayed:  # a replayed decision has its outcome already (one per decision)
                            record_outcome(s, d.id, reward, {"simulated": True}, actor=ACTOR)
                    out.append({"action": d.action, "true": ticket.true_team, "reward": reward, "verdict": d.safety_verdict,
                                "policy": d.policy_version_id, "shadow": d.shadow_action})
            bar.update(len(chunk))
        bar.close()
        return out
