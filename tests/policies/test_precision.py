"""Policy precision: ``dtype="auto"`` picks bfloat16 only where it is native; a LoRA policy is merged in float32."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.action_policy import ActionPolicy
from policies.backends import BackendSpec, load_backend
from policies.backends.cpu_features import native_bfloat16, resolve_dtype
from policies.backends.local import TransformersBackend


def test_auto_is_bfloat16_exactly_where_it_is_native(monkeypatch):
    assert resolve_dtype("auto") == (torch.bfloat16 if native_bfloat16() else torch.float32)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not native_bfloat16("cpu") and resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_dtype("auto", "cpu") == torch.bfloat16
    assert resolve_dtype("float32") == torch.float32 and resolve_dtype(torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8")


def test_a_bfloat16_policy_scores_close_to_float32(tiny_base_dir, routing_type, tickets):
    full = load_backend(BackendSpec(model_dir=tiny_base_dir, dtype="float32"))
    half = load_backend(BackendSpec(model_dir=tiny_base_dir, dtype="bfloat16"))
    assert full.model.dtype == torch.float32 and half.model.dtype == torch.bfloat16
    contexts = [t.context for t in tickets[:4]]
    a = np.array([list(s.values()) for s in ActionPolicy(routing_type, full).score_batch(contexts)])
    b = np.array([list(s.values()) for s in ActionPolicy(routing_type, half).score_batch(contexts)])
    assert np.abs(a - b).max() < 0.5 and not np.array_equal(a, b)  # close, and really computed in another precision


def test_a_lora_policy_is_merged_in_float32_then_cast(tmp_path, tiny_base_dir, tiny_model):
    """A small adapter update added to bfloat16 weights would be partly rounded away; merged in float32 it is not."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base_dir),
                                LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj"], lora_dropout=0.0))
    torch.manual_seed(1)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            param.data = torch.randn_like(param) * 0.02  # an update of ~1e-3 per weight, under bfloat16's resolution
    adapter = tmp_path / "policy"
    peft_model.save_pretrained(adapter)
    (adapter / "manifest.json").write_text(json.dumps({"lineage": {"base_model": str(tiny_base_dir)}}))
    tiny_model[1].save_pretrained(adapter)  # trained policy directories carry their tokenizer
    expected = peft_model.merge_and_unload().model.layers[0].self_attn.q_proj.weight.detach().to(torch.bfloat16)

    served = TransformersBackend.load(adapter, dtype="bfloat16")
    got = served.model.model.layers[0].self_attn.q_proj.weight
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
