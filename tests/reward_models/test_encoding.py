"""Encoding: layout per model family and truncation that keeps the prompt's end."""

from __future__ import annotations

import pytest

from reward_models.encoding import EncodingSpec, encode, prepare_tokenizer
from reward_models.local_models import minilm_dir

from .tiny import make_word_tokenizer


@pytest.fixture(scope="module")
def bert_tokenizer():
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(minilm_dir()))


def test_encoder_layout_cls_prompt_sep_response_sep(bert_tokenizer):
    ids = encode(bert_tokenizer, EncodingSpec(64, 16), "is it safe", "yes it is")
    t = bert_tokenizer
    assert ids[0] == t.cls_token_id and ids[-1] == t.sep_token_id and ids.count(t.sep_token_id) == 2
    assert t.decode(ids, skip_special_tokens=True).startswith("is it safe")


def test_long_prompt_is_cut_from_the_left_and_response_from_the_right(bert_tokenizer):
    prompt = " ".join(f"w{i}" for i in range(300)) + " final question"
    response = " ".join(["answer"] * 100)
    spec = EncodingSpec(max_length=64, max_response_tokens=20)
    ids = encode(bert_tokenizer, spec, prompt, response)
    text = bert_tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) == 64
    assert "final question" in text and "w0 " not in text  # the end of the prompt survived
    assert text.count("answer") == 20


def test_decoder_layout_ends_with_eos_and_pad_differs_from_eos():
    t = prepare_tokenizer(make_word_tokenizer())  # ships with pad == eos
    assert t.pad_token == "<unk>" and t.pad_token_id != t.eos_token_id
    ids = encode(t, EncodingSpec(32, 8), "how do i bake bread", "sure happy to help")
    assert ids[-1] == t.eos_token_id and t.eos_token_id not in ids[:-1]
    assert t.convert_ids_to_tokens(ids[-5:-1]) == ["sure", "happy", "to", "help"]


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="max_response_tokens"):
        EncodingSpec(max_length=32, max_response_tokens=32)
    with pytest.raises(ValueError, match="max_length"):
        EncodingSpec(max_length=4, max_response_tokens=2)
