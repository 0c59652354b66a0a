"""Mean-pooled decoder reward heads: which tokens they read, how many layers they keep, and the
linear probe that initialises their head before fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reward_models.config import RewardDataArguments, RewardModelArguments
from reward_models.encoding import EncodingSpec, encode, prepare_tokenizer
from reward_models.mean_pooled import load_mean_pooled, response_mask
from reward_models.scoring import RewardScorer
from reward_models.training import build_trainer, fit_bradley_terry_probe, pooled_features, train_reward_model

from .test_training import args, toy_snapshot
from .tiny import save_tiny_decoder


@pytest.fixture(scope="module")
def bos_decoder_dir(tmp_path_factory):
    return save_tiny_decoder(tmp_path_factory.mktemp("tiny-llama-bos"), bos=True)


def test_response_mask_keeps_what_follows_the_last_marker():
    ids = torch.tensor([[5, 1, 7, 1, 8, 9, 0], [5, 6, 7, 8, 0, 0, 0], [1, 4, 0, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    assert response_mask(ids, mask, marker_id=1).tolist() == [
        [0, 0, 0, 0, 1, 1, 0],  # after the *last* marker, padding excluded
        [1, 1, 1, 1, 0, 0, 0],  # no marker: the whole row
        [0, 1, 0, 0, 0, 0, 0],
    ]
    assert torch.equal(response_mask(ids, mask, marker_id=None), mask)


def test_decoder_head_reads_the_mean_of_the_response_states_of_the_kept_layers(bos_decoder_dir):
    from transformers import AutoTokenizer

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(bos_decoder_dir))
    marker = tokenizer.bos_token_id
    model = load_mean_pooled(bos_decoder_dir, keep_layers=1, response_start_token_id=marker).eval()
    assert len(model.model.layers) == 1 and model.config.num_hidden_layers == 1

    spec = EncodingSpec(max_length=32, max_response_tokens=8, response_marker=tokenizer.bos_token)
    short = encode(tokenizer, spec, "how do i bake bread", "sure")
    long = encode(tokenizer, spec, "how do i fix a bike", "sure here is step one then step two")
    assert short[len(short) - 3] == marker and short[-1] == tokenizer.eos_token_id  # prompt <s> response <eos>

    with torch.no_grad():
        alone = model(torch.tensor([long])).logits[0, 0]
        states = model.model(input_ids=torch.tensor([long])).last_hidden_state[0]
        start = long.index(marker) + 1
        by_hand = model.score(states[start:].mean(0))[0]
        batch = torch.full((2, len(long)), tokenizer.pad_token_id)
        batch[0, : len(short)], batch[1] = torch.tensor(short), torch.tensor(long)
        padded = model(batch, (batch != tokenizer.pad_token_id).long()).logits[:, 0]
        short_alone = model(torch.tensor([short])).logits[0, 0]
    assert torch.allclose(alone, by_hand, atol=1e-5)
    assert torch.allclose(padded, torch.stack([short_alone, alone]), atol=1e-5)  # padding changes nothing


def test_bradley_terry_probe_is_the_regularised_optimum_and_ranks_separable_pairs():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=8)
    chosen, rejected = rng.normal(size=(400, 8)) * [1, 2, 3, 4, 5, 6, 7, 8], rng.normal(size=(400, 8)) * 3
    swap = (chosen - rejected) @ direction < 0
    chosen[swap], rejected[swap] = rejected[swap].copy(), chosen[swap].copy()  # chosen always wins along `direction`
    c, r = torch.tensor(chosen, dtype=torch.float32), torch.tensor(rejected, dtype=torch.float32)
    l2 = 0.05
    w = fit_bradley_terry_probe(c, r, l2)
    assert float(((c - r) @ w > 0).float().mean()) > 0.95

    # The gradient of the objective (on standardised differences) vanishes at the returned weights.
    diff = (c - r).double()
    scale = diff.std(0)
    v = (w.double() * scale).requires_grad_(True)
    loss = torch.nn.functional.softplus(-((diff / scale) @ v)).mean() + 0.5 * l2 * (v @ v)
    (grad,) = torch.autograd.grad(loss, v)
    assert grad.abs().max() < 1e-4
    # A stronger penalty gives a smaller (standardised) weight vector.
    w_strong = fit_bradley_terry_probe(c, r, 10 * l2)
    assert (w_strong.double() * scale).norm() < v.detach().norm()


def test_linear_probe_sets_the_head_before_training_and_the_artifact_scores_like_the_model(bos_decoder_dir, tmp_path):
    model_args = RewardModelArguments(str(bos_decoder_dir), pooling="mean", keep_layers=1, head_init="linear_probe", probe_l2=0.1)
    snapshot = toy_snapshot(40)
    run = build_trainer(snapshot, model_args, RewardDataArguments(max_response_tokens=8), args(tmp_path))
    model = run.trainer.model
    assert run.encoding.response_marker == "<s>" and len(model.model.layers) == 1
    data = run.trainer.train_dataset
    pad = run.tokenizer.pad_token_id
    chosen = pooled_features(model, list(data["chosen_ids"]), pad)
    rejected = pooled_features(model, list(data["rejected_ids"]), pad)
    expected = fit_bradley_terry_probe(chosen, rejected, 0.1)
    assert torch.allclose(model.score.weight[0], expected, atol=1e-5)
    # The toy task is learnable: the probe alone already ranks its training pairs.
    assert run.probe_accuracy == pytest.approx(float(((chosen - rejected) @ expected > 0).float().mean()))
    assert run.probe_accuracy > 0.8

    result = train_reward_model(snapshot, model_args, RewardDataArguments(max_response_tokens=8), args(tmp_path, max_steps=2, learning_rate=1e-3))
    assert result.manifest.encoding["response_marker"] == "<s>"
    assert result.manifest.metrics["train_probe_accuracy"] > 0.8
    scorer = RewardScorer.load(result.artifact_dir)
    assert type(scorer.model).__name__ == "MeanPooledLlamaForSequenceClassification"
    assert scorer.model.config.num_hidden_layers == 1
    prompts, responses = ["how do i bake bread", "how do i fix a bike"], ["sure", "no go away " * 3]
    one_by_one = RewardScorer.load(result.artifact_dir, batch_size=1).score(prompts, responses)
    assert np.allclose(scorer.score(prompts, responses), one_by_one, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_layers": 2}, "keep_layers needs pooling 'mean'"),
        ({"pooling": "mean", "keep_layers": 0}, "keep_layers"),
        ({"head_init": "probe"}, "head_init must be"),
        ({"head_init": "linear_probe"}, "needs pooling 'mean'"),
        ({"pooling": "mean", "head_init": "linear_probe", "probe_l2": 0}, "probe_l2"),
    ],
)
def test_bad_pooling_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewardModelArguments("smollm2", **kwargs)


def test_mean_pooling_a_decoder_needs_a_marker_and_layers_it_has(tiny_decoder_dir, bos_decoder_dir, tmp_path):
    with pytest.raises(ValueError, match="BOS token"):  # the plain tiny tokenizer has no BOS
        build_trainer(toy_snapshot(), RewardModelArguments(str(tiny_decoder_dir), pooling="mean"), RewardDataArguments(), args(tmp_path))
    with pytest.raises(ValueError, match=r"keep_layers must be in \[1, 2\]"):
        load_mean_pooled(bos_decoder_dir, keep_layers=3)
    from transformers import AutoTokenizer

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(bos_decoder_dir))
    with pytest.raises(ValueError, match="not a token"):
        encode(tokenizer, EncodingSpec(32, 8, response_marker="<nope>"), "hi", "there")
