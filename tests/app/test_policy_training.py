"""`arbiter train dpo|rl` on a tiny model: candidate PolicyVersion with lineage, audited, registered once."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from sqlmodel import Session, select

from app.db import session_scope
from app.models import AuditEntry, Decision, Outcome, PolicyVersion, RewardModelVersion

TICKET = {"subject": "Parcel lost", "body": "My parcel never arrived.", "customer": {"tier": "standard"}}


def _recipe(tmp_path, base, method="dpo", decision_type="content", **training):
    spec = {"method": method, "decision_type": decision_type, "base_model": str(base),
            "lora": {"r": 4, "alpha": 8},
            "training": {"per_device_train_batch_size": 2, "logging_steps": 1, "save_strategy": "no", **training},
            "data": {"assume_single_correct": True}}
    path = tmp_path / f"{method}-{decision_type}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Question {i}?", "chosen": "A kind, useful answer.", "rejected": "Go away."} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_dpo_registers_a_candidate_once(run_cli, engine, tmp_path, tiny_base_dir):
    args = ["train", "dpo", "--recipe", _recipe(tmp_path, tiny_base_dir), "--data", _pairs(tmp_path), "--max-steps", 2, "--json"]
    out = _json(run_cli(*args))
    assert out["state"] == "candidate" and not out["skipped"]
    assert out["lineage"]["method"] == "dpo" and out["lineage"]["base_model"] == str(tiny_base_dir)
    with Session(engine) as s:
        row = s.get(PolicyVersion, out["policy_id"])
        assert row.decision_type == "content" and row.hyperparams["method"] == "dpo"
        assert Path(row.artifact_path).is_dir() and row.artifact_path == out["artifact_path"]
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "policy.registered",
                                                   AuditEntry.subject_id == row.id)).all()
        assert entry.details["lineage"]["data_hash"] == out["lineage"]["data_hash"]
    again = _json(run_cli(*args))
    assert again["policy_id"] == out["policy_id"] and again["skipped"]


def test_train_dpo_from_logged_outcomes(run_cli, engine, tmp_path, tiny_base_dir):
    with session_scope(engine) as s:
        for action, reward in [("shipping", 0.95), ("billing", 0.05)]:
            d = Decision(decision_type="ticket-routing", context=TICKET, action=action, proposed_action=action,
                         propensity=0.3, request_hash=f"h-{action}")
            s.add(d)
            s.flush()
            s.add(Outcome(decision_id=d.id, reward=reward))
    recipe = _recipe(tmp_path, tiny_base_dir, decision_type="ticket-routing")
    out = _json(run_cli("train", "dpo", "--recipe", recipe, "--from-outcomes", "--max-steps", 1, "--json"))
    manifest = json.loads((Path(out["artifact_path"]) / "manifest.json").read_text())
    assert manifest["pairs"] == 5  # shipping was rewarded; the five other teams are the rejected answers
    bad = run_cli("train", "dpo", "--recipe", recipe, "--json")
    assert bad.exit_code == 2 and "exactly one data source" in bad.stdout


def test_train_rl_against_a_registered_reward_model(run_cli, engine, tmp_path, tiny_base_dir, tiny_causal_lm):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    _, tokenizer = tiny_causal_lm
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    rm_dir = tmp_path / "tiny-rm"
    LlamaForSequenceClassification(config).save_pretrained(rm_dir)
    tokenizer.save_pretrained(rm_dir)
    with session_scope(engine) as s:
        rm = RewardModelVersion(name="tiny-rm", base_model="tiny", artifact_path=str(rm_dir), status="active")
        s.add(rm)
        s.flush()
        rm_id = rm.id
    recipe = _recipe(tmp_path, tiny_base_dir, method="grpo", num_generations=2, max_completion_length=6, beta=0.1)
    out = _json(run_cli("train", "rl", "--recipe", recipe, "--data", _pairs(tmp_path), "--max-steps", 1, "--json"))
    assert out["lineage"]["method"] == "grpo" and out["lineage"]["reward_model_id"] == rm_id
    with Session(engine) as s:
        assert s.get(PolicyVersion, out["policy_id"]).reward_model_id == rm_id


def test_train_dpo_from_given_examples_records_reward_model_lineage(settings, engine, tmp_path, tiny_base_dir):
    """Pairs ranked by a reward model, with reference log-probabilities: DPO runs no reference pass and the policy
    names the reward model and snapshot it came from."""
    from app.models import DatasetSnapshot
    from app.services.models.policy_training import train_dpo_job
    from policies.preference_data import DPOExample

    with session_scope(engine) as s:
        rm = RewardModelVersion(name="rm", base_model="tiny", artifact_path=str(tmp_path / "rm"), status="active")
        snap = DatasetSnapshot(content_hash="c" * 64, path=str(tmp_path / "snap"), n_train=1, n_validation=0)
        s.add(rm)
        s.add(snap)
        s.flush()
        rm_id, snap_id = rm.id, snap.id
    examples = [DPOExample(f"Ticket {i}: my parcel is late.\nTeam:", "shipping", "billing",
                           ref_chosen_logp=-3.0, ref_rejected_logp=-2.5) for i in range(4)]
    recipe = _recipe(tmp_path, tiny_base_dir, decision_type="ticket-routing")
    version, result = train_dpo_job(settings, engine, recipe_path=recipe, examples=examples, reward_model_id=rm_id,
                                    lineage_snapshot=(snap_id, "c" * 64), max_steps=1, actor="test")
    assert result.manifest["reference_logps"] == "given"  # DPO used the pairs' reference log-probabilities
    assert result.manifest["lineage"]["reward_model_id"] == rm_id
    with Session(engine) as s:
        row = s.get(PolicyVersion, version.id)
        assert row.reward_model_id == rm_id and row.snapshot_id == snap_id
        assert row.metrics["lineage"]["snapshot_hash"] == "c" * 64


def test_a_decision_type_defined_only_in_the_deployment_dir_trains_and_serves(
        run_cli, cli_env, settings, engine, app, tmp_path, tiny_base_dir, tiny_causal_lm, auth, monkeypatch):
    """ARBITER_DECISION_TYPES_DIR is configuration, not code: a type that exists only there must be known to
    training (`arbiter train dpo`) as it is to serving. Training used to load the shipped types alone and refused
    the recipe with "unknown decision type"."""
    from fastapi.testclient import TestClient

    from app.services.serving.policy_runtime import PolicyRuntime
    from app.services.serving.stack import Serving, build_safety_layer, prepare_store
    from app.settings import get_settings
    from policies.backends.local import TransformersBackend

    types_dir = tmp_path / "types"
    types_dir.mkdir()
    (types_dir / "faq-reply.yaml").write_text(yaml.safe_dump({
        "name": "faq-reply", "kind": "text", "description": "Answer a question from the FAQ.", "max_new_tokens": 8,
        "context_schema": {"type": "object", "required": ["question"],
                           "properties": {"question": {"type": "string", "minLength": 1, "maxLength": 500}}},
        "prompt": {"system": "Answer briefly.", "user": "{question}"},
    }))
    monkeypatch.setenv("ARBITER_DECISION_TYPES_DIR", str(types_dir))
    get_settings.cache_clear()
    out = _json(run_cli("train", "dpo", "--recipe", _recipe(tmp_path, tiny_base_dir, decision_type="faq-reply"),
                        "--data", _pairs(tmp_path), "--max-steps", 1, "--json"))
    with Session(engine) as s:
        assert s.get(PolicyVersion, out["policy_id"]).decision_type == "faq-reply"

    # Serving also needs the type's rule set: the safety layer refuses a type it has no rules for (fails closed).
    rules_dir = tmp_path / "rulesets"
    rules_dir.mkdir()
    for shipped in (Path(__file__).resolve().parents[2] / "safety" / "rulesets").glob("*.yaml"):
        (rules_dir / shipped.name).write_text(shipped.read_text())
    (rules_dir / "faq-reply.yaml").write_text(yaml.safe_dump({"name": "faq-reply", "decision_type": "faq-reply",
                                                              "rules": []}))
    deployed = settings.model_copy(update={"decision_types_dir": types_dir, "rulesets_dir": rules_dir})
    model, tokenizer = tiny_causal_lm
    backend = TransformersBackend(model, tokenizer, name="tiny")
    serving = Serving(PolicyRuntime(deployed, backend_factory=lambda version: backend,
                                    decision_types_dir=deployed.decision_types_dir), build_safety_layer(deployed))
    prepare_store(engine, serving)
    app.state.serving = serving
    with TestClient(app) as client:
        r = client.post("/v1/decisions/faq-reply", json={"context": {"question": "When do you open?"}}, headers=auth("app"))
    assert r.status_code == 200, r.text
    assert r.json()["decision_type"] == "faq-reply"
