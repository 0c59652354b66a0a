"""`arbiter demo`: the whole feedback loop on embedded defaults (SQLite, local models, no keys, no GPU).

Stages, each printed on one line with its duration:

 1. a fresh store under ``<var>/demo``; the ticket-routing simulator and content prompts from it;
 2. the current policies propose: the base routing policy (exploring) decides on simulated tickets
    through the real decision path and the simulator answers with rewards; the base content policy
    drafts two replies per prompt, which form comparisons;
 3. judges label the comparisons (OpenAI / Anthropic with keys, else the local fallback);
 4. with ``--with-argilla`` (or a configured Argilla) the most uncertain pairs go to annotators;
 5. a reward model (MiniLM, TRL RewardTrainer) is trained on a snapshot of the labels (judge labels
    and labels from outcomes) and registered;
 6. a DPO policy is trained on pairs the reward model ranks, and registered with its lineage;
 7. before/after on held-out tickets (``demo_report``), with a PNG plot;
 8. the off-policy evaluation gate, shadow, canary and promotion, each audited;
 9. the API on :8000 and sample requests through it (``demo_requests``);
10. URLs, keys and what to try next.

Running it again starts from a fresh store; trained artifacts whose data did not change are reused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app.auth import create_key
from app.db import get_engine, session_scope, upgrade_schema
from app.services.comparisons import add_comparison, get_or_create_candidate, get_or_create_task
from app.services.decisions import decide, record_outcome
from app.services.outcome_labels import labels_from_outcomes
from app.services.policy_runtime import PolicyRuntime, ensure_base_policy
from app.services.serving import Serving, build_safety_layer, prepare_store
from app.settings import Settings
from policies.simulator import Ticket, TicketSimulator

__all__ = ["REPO", "DemoOptions", "run_demo"]

REPO = Path(__file__).resolve().parents[2]
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


class Demo:
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

    # ----------------------------------------------------------------------------------- stages
    def fresh_store(self) -> None:
        o = self.options
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("arbiter.db*"):
            old.unlink()
        self.engine = get_engine(self.settings)
        self.engine.dispose()  # a previous run's connections point at the deleted file
        upgrade_schema(self.engine)
        with session_scope(self.engine) as s:
            self.keys = {role: create_key(s, role, f"demo {role}", actor=ACTOR)[1] for role in ("admin", "app", "reviewer", "annotator")}
            # Collecting data needs exploration: the base routing policy serves with a high temperature
            # and a 50% uniform floor, so every team is tried and propensities stay large.
            ensure_base_policy(s, "ticket-routing", actor=ACTOR,
                               hyperparams={"temperature": o.explore_temperature, "epsilon": o.explore_epsilon, "seed": o.seed})
        runtime = PolicyRuntime(self.settings, max_batch=self.settings.policy_max_batch)
        self.serving = Serving(runtime, build_safety_layer(self.settings))
        prepare_store(self.engine, self.serving, actor=ACTOR)
        self.routing = runtime.decision_type("ticket-routing")
        self.sim = TicketSimulator(seed=o.seed)
        self.train = self.sim.tickets(o.train_tickets)
        self.held_out = self.sim.tickets(o.eval_tickets, start=HELD_OUT_START)
        self.messages = [t.context["body"] for t in self.sim.tickets(o.content_prompts, start=CONTENT_START)]
        self.say(f"      store {self.settings.sqlalchemy_url}; {len(self.train)} training and {len(self.held_out)} held-out "
                 f"tickets, {len(self.messages)} content prompts")

    async def _decide_all(self, tickets: list[Ticket], label: str, outcomes: bool = True) -> list[dict]:
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
                        record_outcome(s, d.id, reward, {"simulated": True}, actor=ACTOR)
                    out.append({"action": d.action, "true": ticket.true_team, "reward": reward, "verdict": d.safety_verdict,
                                "policy": d.policy_version_id, "shadow": d.shadow_action})
            bar.update(len(chunk))
        bar.close()
        return out

    def propose(self) -> None:
        logged = asyncio.run(self._decide_all(self.train, "explore"))
        rewards = [r["reward"] for r in logged if r["reward"] is not None]
        self.summary["explore"] = {"decisions": len(logged), "mean_reward": round(sum(rewards) / max(len(rewards), 1), 3),
                                   "accuracy": round(sum(r["action"] == r["true"] for r in logged) / len(logged), 3)}
        self.say(f"      routing: {len(logged)} decisions logged with propensities and simulated outcomes "
                 f"(exploring accuracy {self.summary['explore']['accuracy']:.0%})")
        with session_scope(self.engine) as s:
            content = ensure_base_policy(s, "content", actor=ACTOR)
        policy = self.serving.runtime.get(content).policy
        prompts = [policy.prompt({"message": m}) for m in self.messages]
        drafts = [policy.backend.generate(prompts, max_new_tokens=48, temperature=0.9, top_p=0.95, seed=s)
                  for s in tqdm((1, 2), desc="      content drafts", leave=False)]
        n = 0
        with session_scope(self.engine) as s:
            for message, a, b in zip(self.messages, *drafts):
                task = get_or_create_task(s, [{"role": "user", "content": message}], source="demo")
                ca = get_or_create_candidate(s, task, a.strip() or "(empty)", f"policy:{content.id}")
                cb = get_or_create_candidate(s, task, b.strip() or "(empty)", f"policy:{content.id}")
                n += add_comparison(s, task, ca, cb, source="demo:content") is not None
        self.say(f"      content: {n} comparisons of two drafts by the base content policy")

    def label(self) -> None:
        from app.services.labeling import run_labeling

        report = run_labeling(self.engine, self.settings, actor=ACTOR, progress=True)
        self.summary["labels"] = {"judged": report.labeled, "failed": report.failed, "cost_usd": report.cost_usd,
                                  "judges": {k: v for k, v in report.judges.items()}, "skipped": report.skipped_judges}
        with session_scope(self.engine) as s:
            # One team is right for a ticket: a well-rewarded team beats every other team it could have gone to.
            outcome_labels = labels_from_outcomes(s, self.routing, negatives=len(self.routing.action_ids),
                                                  seed=self.options.seed, actor=ACTOR)
        self.summary["labels"]["from_outcomes"] = outcome_labels
        self.say(f"      {report.labeled} comparisons judged ({', '.join(report.judges) or 'no judge'}; "
                 f"skipped without keys: {', '.join(report.skipped_judges) or 'none'}), cost ${report.cost_usd:.4f}; "
                 f"{outcome_labels} labels from rewarded routing decisions")

    def argilla(self) -> None:
        from app.services import argilla_sync as sync

        connection = None
        if self.options.with_argilla:
            from labeling.argilla.server import start_embedded

            instance = start_embedded(sync.embedded_config(self.settings))
            connection = instance.connection()
            self.summary["argilla"] = {"url": instance.url, "annotator": instance.annotator.username,
                                       "password": instance.annotator.password}
        elif self.settings.argilla_api_url:
            connection = sync.argilla_connection(self.settings)
            self.summary["argilla"] = {"url": self.settings.argilla_api_url}
        if connection is None:
            self.say("      skipped: no Argilla configured (run `make demo DEMO_ARGS=--with-argilla` to start the embedded one)")
            return
        report = sync.push_comparisons(self.engine, sync.open_client(connection), sync.dataset_spec(self.settings),
                                       strategy="uncertainty", limit=10, actor=ACTOR)
        self.summary["argilla"]["pushed"] = report.to_dict()
        self.say(f"      {report.to_dict()} -> annotators log in at {self.summary['argilla']['url']}"
                 + (f" as {self.summary['argilla'].get('annotator')} / {self.summary['argilla'].get('password')}"
                    if "annotator" in self.summary["argilla"] else ""))

    def reward_model(self) -> None:
        from app.services.reward import activate_reward_model, snapshot_from_labels, train_reward
        from reward_models.snapshot import SnapshotRules

        with session_scope(self.engine) as s:
            snapshot = snapshot_from_labels(s, self.settings, SnapshotRules(validation_fraction=0.2), actor=ACTOR)
        version, _ = train_reward(self.settings, self.engine, snapshot_id=snapshot.id, recipe=self.options.reward_recipe,
                                  overrides=self.options.reward_overrides, actor=ACTOR)
        with session_scope(self.engine) as s:
            activate_reward_model(s, version.id, actor=ACTOR)
        self.reward_model_id, self.snapshot = version.id, snapshot
        metrics = {k: v for k, v in (version.metrics or {}).items() if isinstance(v, (int, float))}
        self.summary["reward_model"] = {"id": version.id, "snapshot": snapshot.content_hash[:12], "pairs": snapshot.n_pairs, **metrics}
        self.say(f"      reward model {version.id[:8]} on snapshot {snapshot.content_hash[:12]} ({snapshot.n_pairs} pairs): "
                 + ", ".join(f"{k} {v:.3f}" for k, v in list(metrics.items())[:4]))

    def dpo(self) -> None:
        from app.services.demo_report import reward_model_pairs
        from app.services.policy_training import train_dpo_job

        examples = reward_model_pairs(self, limit=self.options.dpo_pairs)
        (self.dir / "dpo_pairs.jsonl").write_text("".join(json.dumps(e.as_row()) + "\n" for e in examples))  # to inspect
        version, _ = train_dpo_job(self.settings, self.engine, recipe_path=self.options.dpo_recipe, examples=examples,
                                   reward_model_id=self.reward_model_id,
                                   lineage_snapshot=(self.snapshot.id, self.snapshot.content_hash),
                                   max_steps=self.options.dpo_max_steps, actor=ACTOR)
        self.dpo_version = version
        self.summary["dpo"] = {"policy_id": version.id, "pairs": len(examples), "artifact": version.artifact_path}
        self.say(f"      DPO policy {version.id[:8]} trained on {len(examples)} pairs ranked by reward model "
                 f"{self.reward_model_id[:8]} (chosen team right for {self.summary['reward_model']['pair_label_accuracy']:.0%}"
                 f" of them), lineage: snapshot {self.snapshot.content_hash[:12]}")

    def run(self) -> dict[str, Any]:
        from app.services import demo_report

        with self.stage(1, "fresh store, simulator and content prompts"):
            self.fresh_store()
        with self.stage(2, "current policies propose; pairs are formed"):
            self.propose()
        with self.stage(3, "judges label the pairs"):
            self.label()
        with self.stage(4, "human annotation in Argilla"):
            self.argilla()
        with self.stage(5, "reward model trained and registered"):
            self.reward_model()
        with self.stage(6, "DPO policy trained and registered"):
            self.dpo()
        with self.stage(7, "before / after on held-out tickets"):
            demo_report.before_after(self)
        with self.stage(8, "off-policy evaluation gate, shadow, canary, promotion"):
            demo_report.rollout(self)
        if self.options.serve:
            with self.stage(9, "API up; sample requests through it"):
                demo_report.serve_and_try(self)
        else:
            self.say("[9/10] API: skipped (--no-serve)")
        with self.stage(10, "where to go from here"):
            demo_report.next_steps(self)
        self.summary["total_seconds"] = round(time.perf_counter() - self.started, 1)
        (self.dir / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str))
        return self.summary


def run_demo(settings: Settings, options: DemoOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    return Demo(settings, options, say).run()
