"""Training with TRL's RewardTrainer on a tiny random model: what changes, the loss, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reward_models.artifacts import read_manifest
from reward_models.config import RewardDataArguments, RewardModelArguments, RewardTrainingConfig
from reward_models.scoring import RewardScorer
from reward_models.snapshot import LabeledPair, SnapshotRules, build_snapshot, labeled_pairs_from_preferences
from reward_models.training import build_preference_dataset, build_trainer, train_reward_model

from .tiny import toy_pairs


def toy_snapshot(n=32, validation_fraction=0.25):
    return build_snapshot(labeled_pairs_from_preferences(toy_pairs(n)), SnapshotRules(validation_fraction=validation_fraction))


def args(tmp_path, **kw):
    base = {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "max_length": 32,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "warmup_steps": 0,
    }
    base.update(kw)
    return RewardTrainingConfig(**base)


def snapshot_params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_trains_adapters_and_head_and_leaves_the_base_alone(tiny_decoder_dir, tmp_path):
    model_args = RewardModelArguments(str(tiny_decoder_dir), use_peft=True, lora_r=4, lora_alpha=8)
    run = build_trainer(toy_snapshot(), model_args, RewardDataArguments(max_response_tokens=8), args(tmp_path))
    before = snapshot_params(run.trainer.model)
    trainable = {n for n, p in run.trainer.model.named_parameters() if p.requires_grad}
    run.trainer.train()
    after = snapshot_params(run.trainer.model)
    assert any("lora_" in n for n in trainable) and any("score" in n for n in trainable)
    assert all("lora_" in n or "score" in n for n in trainable)
    for name in before:
        changed = not torch.equal(before[name], after[name])
        # lora_A starts random and lora_B at zero; after a few steps at lr 1e-2 both have moved.
        assert changed == (name in trainable), name


def test_frozen_bottom_layers_and_embeddings_do_not_change(tiny_decoder_dir, tmp_path):
    model_args = RewardModelArguments(str(tiny_decoder_dir), freeze_bottom_layers=1)
    run = build_trainer(toy_snapshot(), model_args, RewardDataArguments(max_response_tokens=8), args(tmp_path))
    before = snapshot_params(run.trainer.model)
    run.trainer.train()
    after = snapshot_params(run.trainer.model)
    for name in before:
        frozen = name.startswith(("model.embed_tokens", "model.layers.0."))
        assert torch.equal(before[name], after[name]) == frozen, name


def test_loss_is_the_bradley_terry_loss_with_confidence_margins(tiny_decoder_dir, tmp_path):
    """loss = mean_i -log sigmoid(r(chosen_i) - r(rejected_i) - margin_scale * confidence_i).

    Each reward is computed here from the sequence alone (no padding, no batching), so the check
    also covers TRL's chosen/rejected stacking and the padding side.
    """
    labels = [LabeledPair(f"c{i}", p.prompt_text(), p.chosen, p.rejected, "a", conf, "human")
              for i, (p, conf) in enumerate(zip(toy_pairs(4), [1.0, 0.8, 0.6, 0.9]))]
    snap = build_snapshot(labels, SnapshotRules(validation_fraction=0.0))
    run = build_trainer(snap, RewardModelArguments(str(tiny_decoder_dir)), RewardDataArguments(max_response_tokens=8, margin_scale=0.5),
                        args(tmp_path, train_sampling_strategy="sequential"))
    model, rows = run.trainer.model.eval(), [run.trainer.train_dataset[i] for i in range(4)]
    batch = run.trainer.data_collator(rows)
    loss = run.trainer.compute_loss(model, dict(batch))

    def reward(ids):
        return model(input_ids=torch.tensor([ids])).logits[0, 0]

    conf = {r.key: r.confidence for r in snap.train}
    assert sorted(float(r["margin"]) for r in rows) == sorted(0.5 * c for c in conf.values())
    expected = torch.stack([
        -torch.nn.functional.logsigmoid(reward(r["chosen_ids"]) - reward(r["rejected_ids"]) - r["margin"]) for r in rows
    ]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ties_enter_in_both_orders_with_margin_zero(tiny_decoder_dir):
    from transformers import AutoTokenizer

    from reward_models.encoding import EncodingSpec

    snap = build_snapshot([LabeledPair("t", "how do i bake bread", "sure", "no", "tie")], SnapshotRules(ties="margin_zero", validation_fraction=0.0))
    ds = build_preference_dataset(snap.train, AutoTokenizer.from_pretrained(tiny_decoder_dir), EncodingSpec(32, 8), margin_scale=1.0)
    assert len(ds) == 2 and ds[0]["chosen_ids"] == ds[1]["rejected_ids"] and ds["margin"] == [0.0, 0.0]


def test_full_run_writes_a_calibrated_artifact_the_scorer_loads(tiny_decoder_dir, tmp_path):
    snap = toy_snapshot(40)
    result = train_reward_model(snap, RewardModelArguments(str(tiny_decoder_dir)), RewardDataArguments(max_response_tokens=8),
                                args(tmp_path, max_steps=6), name="tiny")
    manifest = read_manifest(result.artifact_dir)
    assert manifest.snapshot_hash == snap.content_hash and manifest.name == "tiny"
    assert manifest.temperature == manifest.calibration["temperature"] > 0
    assert manifest.metrics["validation_n"] == len(snap.validation)
    assert {"ece_before", "ece_after"} <= set(manifest.calibration)
    assert manifest.encoding["max_length"] == 32
    assert not list(result.artifact_dir.glob("checkpoint-*"))  # only needed while unfinished
    assert json.loads((result.artifact_dir / "train_results.json").read_text())["train_pairs"] == len(snap.train)

    scorer = RewardScorer.load(result.artifact_dir)
    prompts = [p.prompt_text() for p in toy_pairs(12, seed=3)]
    responses = [p.chosen if i % 2 else p.rejected + " and more words" * (i % 4) for i, p in enumerate(toy_pairs(12, seed=3))]
    batched = scorer.score(prompts, responses)
    one_by_one = RewardScorer.load(result.artifact_dir, batch_size=1).score(prompts, responses)
    assert batched.shape == (12,) and np.allclose(batched, one_by_one, atol=1e-5)
    # As a TRL online-RL reward function, with plain and with conversational inputs.
    reward_fn = scorer.reward_function()
    assert np.allclose(reward_fn(prompts=prompts, completions=responses), batched, atol=1e-6)
    conversational = reward_fn(prompts=[[{"role": "user", "content": q}] for q in prompts],
                               completions=[[{"role": "assistant", "content": r}] for r in responses])
    assert np.allclose(conversational, batched, atol=1e-6)
    p = scorer.preference_probability(prompts[:2], responses[:2], responses[2:4])
    ra, rb = scorer.score_pairs(prompts[:2], responses[:2], responses[2:4])
    assert np.allclose(p, 1 / (1 + np.exp(-(ra - rb) / manifest.temperature)))


def test_rerun_reuses_a_finished_run_and_refuses_to_overwrite_another(tiny_decoder_dir, tmp_path):
    snap, margs, dargs = toy_snapshot(), RewardModelArguments(str(tiny_decoder_dir)), RewardDataArguments(max_response_tokens=8)
    first = train_reward_model(snap, margs, dargs, args(tmp_path, max_steps=2))
    again = train_reward_model(snap, margs, dargs, args(tmp_path, max_steps=2))
    assert again.reused and not first.reused and again.manifest == first.manifest
    with pytest.raises(FileExistsError, match="different"):
        train_reward_model(snap, margs, dargs, args(tmp_path, max_steps=2, learning_rate=1e-3))


def test_a_crashed_run_resumes_from_its_last_checkpoint(tiny_decoder_dir, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("simulated crash")

    snap, margs, dargs = toy_snapshot(), RewardModelArguments(str(tiny_decoder_dir)), RewardDataArguments(max_response_tokens=8)
    targs = {"max_steps": 4, "save_strategy": "steps", "save_steps": 2}
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_reward_model(snap, margs, dargs, args(tmp_path, **targs), callbacks=[Crash()])
    assert (tmp_path / "run" / "checkpoint-2").is_dir() and not (tmp_path / "run" / "manifest.json").exists()
    result = train_reward_model(snap, margs, dargs, args(tmp_path, **targs))
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-2")
    state = json.loads((result.artifact_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_bad_configuration_is_refused(tiny_decoder_dir, tmp_path):
    with pytest.raises(ValueError, match="freeze_bottom_layers"):
        build_trainer(toy_snapshot(), RewardModelArguments(str(tiny_decoder_dir), freeze_bottom_layers=2), RewardDataArguments(), args(tmp_path))
    with pytest.raises(FileNotFoundError, match="no model hub"):
        build_trainer(toy_snapshot(), RewardModelArguments("gpt2"), RewardDataArguments(), args(tmp_path))
    with pytest.raises(ValueError, match="learning_rate"):
        args(tmp_path, learning_rate=0)
    with pytest.raises(ValueError, match="training split is empty"):
        build_trainer(build_snapshot([]), RewardModelArguments(str(tiny_decoder_dir)), RewardDataArguments(), args(tmp_path))


def test_mean_pooled_bert_head_trains_saves_and_scores_padding_invariantly(tmp_path):
    """pooling='mean' (for sentence-embedding encoders): a tiny random BERT with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from reward_models.local_models import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    result = train_reward_model(toy_snapshot(), RewardModelArguments(str(tmp_path / "bert"), pooling="mean"),
                                RewardDataArguments(max_response_tokens=8), args(tmp_path, max_steps=2))
    scorer = RewardScorer.load(result.artifact_dir)
    assert type(scorer.model).__name__ == "MeanPooledBertForSequenceClassification"
    prompts, responses = ["how do i bake bread", "how do i fix a bike"], ["sure", "no go away " * 5]
    assert np.allclose(scorer.score(prompts, responses), RewardScorer.load(result.artifact_dir, batch_size=1).score(prompts, responses), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        RewardModelArguments("minilm", pooling="max")


def test_an_ensemble_averages_calibrated_rewards_and_reports_their_spread(tiny_decoder_dir, tmp_path):
    from reward_models import EnsembleScorer, load_scorer

    snap = toy_snapshot(40)
    dirs = [train_reward_model(snap, RewardModelArguments(str(tiny_decoder_dir)), RewardDataArguments(max_response_tokens=8),
                               args(tmp_path / str(seed), max_steps=6, seed=seed), name=f"tiny-{seed}").artifact_dir
            for seed in (1, 2)]
    ensemble = load_scorer(dirs)
    assert isinstance(ensemble, EnsembleScorer) and len(ensemble.members) == 2
    pairs = toy_pairs(10, seed=5)
    prompts, responses = [p.prompt_text() for p in pairs], [p.chosen for p in pairs]
    members = np.stack([RewardScorer.load(d).score(prompts, responses) / read_manifest(d).temperature for d in dirs])
    mean, spread = ensemble.score_with_uncertainty(prompts, responses)
    assert np.allclose(mean, members.mean(axis=0), atol=1e-5) and np.allclose(spread, members.std(axis=0), atol=1e-5)
    assert spread.max() > 0  # two seeds disagree somewhere: that is the uncertainty
    assert np.allclose(ensemble.reward_function()(prompts=prompts, completions=responses), mean, atol=1e-5)
    ra, rb = ensemble.score_pairs(prompts, responses, [p.rejected for p in pairs])
    assert np.allclose(ensemble.preference_probability(prompts, responses, [p.rejected for p in pairs]), 1 / (1 + np.exp(-(ra - rb))))
    # One scoring pass gives the ensemble's report and each member's, as evaluating each separately would.
    from reward_models import evaluate_ensemble, evaluate_pairs

    evaluation = evaluate_ensemble(ensemble, pairs)
    assert evaluation.ensemble.accuracy == evaluate_pairs(ensemble, pairs).accuracy
    assert evaluation.ensemble.nll == pytest.approx(evaluate_pairs(ensemble, pairs).nll, abs=1e-6)
    for report, member in zip(evaluation.members, ensemble.members):
        alone = evaluate_pairs(member, pairs)
        assert report.accuracy == alone.accuracy and report.ece == pytest.approx(alone.ece, abs=1e-6)
    assert evaluation.mean_disagreement > 0
