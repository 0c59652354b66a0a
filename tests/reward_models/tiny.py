"""Tiny models and data for reward-model tests (also used by tests/app/test_reward.py).

``save_tiny_decoder(path)``: a randomly initialised 2-layer Llama sequence classifier (hidden size
16) with a word-level tokenizer built here, saved as a plain HF directory: it trains in well under
a second per step, so training tests check behaviour, not quality. ``toy_pairs``: a learnable
synthetic preference task (polite, helpful answers beat curt refusals).
"""

from __future__ import annotations

import random
from pathlib import Path

from reward_models.pairs import Message, PreferencePair

TOPICS = ["bake bread", "fix a bike", "learn python", "plant tomatoes", "write a poem"]
GOOD = ["sure here is step one then step two", "happy to help here is step one", "sure happy to help"]
BAD = ["no go away", "do it yourself", "whatever not my problem"]
WORDS = sorted({w for text in [*TOPICS, *GOOD, *BAD, "how do i"] for w in text.split()})


def toy_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        prompt = (Message("user", f"how do i {topic} {i}"),)  # the number keeps every pair distinct
        pairs.append(PreferencePair(prompt, rng.choice(GOOD), rng.choice(BAD), "prompt"))
    return pairs


def make_word_tokenizer(bos: bool = False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<eos>"] + (["<s>"] if bos else [])
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS) | {"Assistant:", ":"} | set(map(str, range(100)))))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>",
                                   **({"bos_token": "<s>"} if bos else {}))


def save_tiny_decoder(path: Path, bos: bool = False) -> Path:
    """``bos=True`` gives the tokenizer a ``<s>`` BOS token, which a mean-pooled decoder uses as its response marker."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    tokenizer = make_word_tokenizer(bos)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
