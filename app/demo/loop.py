"""Stages 1-6 of `arbiter demo`, each a function of the run's state (``context.DemoRun``): a fresh store and
the simulator, the current policies propose, judges label, Argilla (when configured), the reward model, the
DPO policy. Stages 7-10 (measuring and showing) are in ``report``; ``run_demo`` (in ``app.demo``) runs them all."""


from __future__ import annotations

import asyncio
import json

from tqdm import tqdm

from app.auth import create_key
from app.db import get_engine, session_scope, upgrade_schema
from app.demo.context import ACTOR, CONTENT_START, HELD_OUT_START, DemoRun
from app.demo.report import reward_model_pairs
from app.services.labels.comparisons import add_comparison, get_or_create_candidate, get_or_create_task
from app.services.labels.outcome_labels import labels_from_outcomes
from app.services.serving.policy_runtime import PolicyRuntime, ensure_base_policy
from app.services.serving.stack import Serving, build_safety_layer, prepare_store
from policies.simulator import TicketSimulator

__all__ = ["argilla", "dpo", "fresh_store", "label", "propose", "reward_model"]


def fresh_store(run: DemoRun) -> None:
    o = run.options
    run.dir.mkdir(parents=True, exist_ok=True)
    for old in run.dir.glob("arbiter.db*"):
        old.unlink()
    run.engine = get_engine(run.settings)
    run.engine.dispose()  # a previous run's connections point at the deleted file
    upgrade_schema(run.engine)
    with session_scope(run.engine) as s:
        run.keys = {role: create_key(s, role, f"demo {role}", actor=ACTOR)[1] for role in ("admin", "app", "reviewer", "annotator")}
        # Collecting data needs exploration: the base routing policy serves with a high temperature
        # and a 50% uniform floor, so every team is tried and propensities stay large.
        ensure_base_policy(s, "ticket-routing", actor=ACTOR,
                           hyperparams={"temperature": o.explore_temperature, "epsilon": o.explore_epsilon, "seed": o.seed})
    runtime = PolicyRuntime(run.settings, max_batch=run.settings.policy_max_batch)
    run.serving = Serving(runtime, build_safety_layer(run.settings))
    prepare_store(run.engine, run.serving, actor=ACTOR)
    run.routing = runtime.decision_type("ticket-routing")
    run.sim = TicketSimulator(seed=o.seed)
    run.train = run.sim.tickets(o.train_tickets)
    run.held_out = run.sim.tickets(o.eval_tickets, start=HELD_OUT_START)
    run.messages = [t.context["body"] for t in run.sim.tickets(o.content_prompts, start=CONTENT_START)]
    run.say(f"      store {run.settings.sqlalchemy_url}; {len(run.train)} training and {len(run.held_out)} held-out "
             f"tickets, {len(run.messages)} content prompts")

def propose(run: DemoRun) -> None:
    logged = asyncio.run(run.decide_all(run.train, "explore"))
    rewards = [r["reward"] for r in logged if r["reward"] is not None]
    run.summary["explore"] = {"decisions": len(logged), "mean_reward": round(sum(rewards) / max(len(rewards), 1), 3),
                               "accuracy": round(sum(r["action"] == r["true"] for r in logged) / len(logged), 3)}
    run.say(f"      routing: {len(logged)} decisions logged with propensities and simulated outcomes "
             f"(exploring accuracy {run.summary['explore']['accuracy']:.0%})")
    with session_scope(run.engine) as s:
        content = ensure_base_policy(s, "content", actor=ACTOR)
    policy = run.serving.runtime.get(content).policy
    prompts = [policy.prompt({"message": m}) for m in run.messages]
    drafts = [policy.backend.generate(prompts, max_new_tokens=48, temperature=0.9, top_p=0.95, seed=s)
              for s in tqdm((1, 2), desc="      content drafts", leave=False)]
    n = 0
    with session_scope(run.engine) as s:
        for message, a, b in zip(run.messages, *drafts):
            task = get_or_create_task(s, [{"role": "user", "content": message}], source="demo")
            ca = get_or_create_candidate(s, task, a.strip() or "(empty)", f"policy:{content.id}")
            cb = get_or_create_candidate(s, task, b.strip() or "(empty)", f"policy:{content.id}")
            n += add_comparison(s, task, ca, cb, source="demo:content") is not None
    run.say(f"      content: {n} comparisons of two drafts by the base content policy")

def label(run: DemoRun) -> None:
    from app.services.labels.judging import run_labeling

    report = run_labeling(run.engine, run.settings, actor=ACTOR, progress=True)
    run.summary["labels"] = {"judged": report.labeled, "failed": report.failed, "cost_usd": report.cost_usd,
                              "judges": {k: v for k, v in report.judges.items()}, "skipped": report.skipped_judges}
    with session_scope(run.engine) as s:
        # One team is right for a ticket: a well-rewarded team beats every other team it could have gone to.
        outcome_labels = labels_from_outcomes(s, run.routing, negatives=len(run.routing.action_ids),
                                              seed=run.options.seed, actor=ACTOR)
    run.summary["labels"]["from_outcomes"] = outcome_labels
    run.say(f"      {report.labeled} comparisons judged ({', '.join(report.judges) or 'no judge'}; "
             f"skipped without keys: {', '.join(report.skipped_judges) or 'none'}), cost ${report.cost_usd:.4f}; "
             f"{outcome_labels} labels from rewarded routing decisions")

def argilla(run: DemoRun) -> None:
    from app.services import argilla
    from app.services.labels import argilla_sync as sync

    connection = None
    if run.options.with_argilla:
        from labeling.argilla.server import start_embedded

        instance = start_embedded(argilla.embedded_config(run.settings))
        connection = instance.connection()
        run.summary["argilla"] = {"url": instance.url, "annotator": instance.annotator.username,
                                   "password": instance.annotator.password}
    elif run.settings.argilla_api_url:
        connection = argilla.argilla_connection(run.settings)
        run.summary["argilla"] = {"url": run.settings.argilla_api_url}
    if connection is None:
        run.say("      skipped: no Argilla configured (run `make demo DEMO_ARGS=--with-argilla` to start the embedded one)")
        return
    report = sync.push_comparisons(run.engine, argilla.open_client(connection), sync.dataset_spec(run.settings),
                                   strategy="uncertainty", limit=10, actor=ACTOR)
    run.summary["argilla"]["pushed"] = report.to_dict()
    run.say(f"      {report.to_dict()} -> annotators log in at {run.summary['argilla']['url']}"
             + (f" as {run.summary['argilla'].get('annotator')} / {run.summary['argilla'].get('password')}"
                if "annotator" in run.summary["argilla"] else ""))

def reward_model(run: DemoRun) -> None:
    from app.services.models.reward import activate_reward_model, snapshot_from_labels, train_reward
    from reward_models.snapshot import SnapshotRules

    with session_scope(run.engine) as s:
        snapshot = snapshot_from_labels(s, run.settings, SnapshotRules(validation_fraction=0.2), actor=ACTOR)
    version, _ = train_reward(run.settings, run.engine, snapshot_id=snapshot.id, recipe=run.options.reward_recipe,
                              overrides=run.options.reward_overrides, actor=ACTOR)
    with session_scope(run.engine) as s:
        activate_reward_model(s, version.id, actor=ACTOR)
    run.reward_model_id, run.snapshot = version.id, snapshot
    metrics = {k: v for k, v in (version.metrics or {}).items() if isinstance(v, (int, float))}
    run.summary["reward_model"] = {"id": version.id, "snapshot": snapshot.content_hash[:12], "pairs": snapshot.n_pairs, **metrics}
    run.say(f"      reward model {version.id[:8]} on snapshot {snapshot.content_hash[:12]} ({snapshot.n_pairs} pairs): "
             + ", ".join(f"{k} {v:.3f}" for k, v in list(metrics.items())[:4]))

def dpo(run: DemoRun) -> None:
    from app.services.models.policy_training import train_dpo_job

    examples = reward_model_pairs(run, limit=run.options.dpo_pairs)
    (run.dir / "dpo_pairs.jsonl").write_text("".join(json.dumps(e.as_row()) + "\n" for e in examples))  # to inspect
    version, _ = train_dpo_job(run.settings, run.engine, recipe_path=run.options.dpo_recipe, examples=examples,
                               reward_model_id=run.reward_model_id,
                               lineage_snapshot=(run.snapshot.id, run.snapshot.content_hash),
                               max_steps=run.options.dpo_max_steps, actor=ACTOR)
    run.dpo_version = version
    run.summary["dpo"] = {"policy_id": version.id, "pairs": len(examples), "artifact": version.artifact_path}
    run.say(f"      DPO policy {version.id[:8]} trained on {len(examples)} pairs ranked by reward model "
             f"{run.reward_model_id[:8]} (chosen team right for {run.summary['reward_model']['pair_label_accuracy']:.0%}"
             f" of them), lineage: snapshot {run.snapshot.content_hash[:12]}")

