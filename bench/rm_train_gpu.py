"""Reward-model training throughput on a GPU: Arbiter's recipe settings vs RewardTrainer defaults.

GPU only: on a machine without CUDA it prints ``{"skipped": "no CUDA device", ...}`` and exits 0.

Trains SmolLM2-135M (the architecture; weights are random unless ``--model`` points at a
checkpoint, since throughput does not depend on them) as a reward model for one epoch over
``--pairs`` synthetic pairs whose lengths follow the HH-RLHF harmless dev set (or uniform lengths
when that file is absent), twice in the same run:

- ``recipe``: what ``RewardTrainingConfig`` does on a GPU: bf16, no activation checkpointing,
  length-grouped batches (little padding);
- ``trl_default``: ``trl.RewardConfig`` defaults: bf16, activation checkpointing on, random batches.

Reports real (non-padding) tokens/s, the padding fraction, model FLOPs utilisation (MFU: 6 x
parameters + attention FLOPs per real token, over the device's dense bf16 peak), the speed-up
ratio, and the device name. One JSON line. Several GPUs: ``accelerate launch bench/rm_train_gpu.py``
(the figures are then per process x world size; only the main process prints).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh_harmless_dev.jsonl"

# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment; MFU is omitted for others.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}
# SmolLM2-135M's architecture, used when no checkpoint is given.
SMOLLM2_135M = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
                    "rope_theta": 100000.0, "tie_word_embeddings": True}
# --smoke: a 2-layer toy of the same family, to check this script end to end on a CPU.
SMOKE_DIMS = {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2}


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "gpus": torch.cuda.device_count(),
    }


def peak_flops(device_name: str) -> float | None:
    for fragment, peak in PEAK_BF16.items():
        if fragment in device_name:
            return peak
    return None


def lengths_like_hh(n: int, max_length: int, seed: int = 0) -> list[tuple[int, int]]:
    """(chosen, rejected) token lengths drawn from the dev file's character lengths / 4, capped."""
    import random

    rng = random.Random(seed)
    if DEFAULT_DATA.exists():
        from reward_models.pairs import read_pairs

        pool = [(len(p.prompt_text()) + len(p.chosen), len(p.prompt_text()) + len(p.rejected)) for p in read_pairs(DEFAULT_DATA)]
        picks = [rng.choice(pool) for _ in range(n)]
        return [(min(max_length, max(8, a // 4)), min(max_length, max(8, b // 4))) for a, b in picks]
    return [(rng.randint(32, max_length), rng.randint(32, max_length)) for _ in range(n)]


def build_model(model_dir: str | None, smoke: bool):
    import torch
    from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

    if model_dir:
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    torch.manual_seed(0)
    dims = {**SMOLLM2_135M, **(SMOKE_DIMS if smoke else {})}
    return LlamaForSequenceClassification(LlamaConfig(num_labels=1, pad_token_id=0, **dims))


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run(label: str, config, dataset, model_dir: str | None, tokenizer, smoke: bool) -> dict:
    import torch
    from trl import RewardTrainer

    from reward_models.training import _LengthGroupedRewardTrainer

    model = build_model(model_dir, smoke)
    n_params = sum(p.numel() for p in model.parameters())
    trainer_cls = _LengthGroupedRewardTrainer if config.train_sampling_strategy == "group_by_length" else RewardTrainer
    trainer = trainer_cls(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    sync()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    sync()
    seconds = time.perf_counter() - start
    real_tokens = sum(len(c) + len(r) for c, r in zip(dataset["chosen_ids"], dataset["rejected_ids"]))
    cfg = model.config
    mean_len = real_tokens / (2 * len(dataset))
    # Forward + backward: 6 FLOPs per parameter per token, plus attention scores/values (12 L H T).
    flops_per_token = 6 * n_params + 12 * cfg.num_hidden_layers * cfg.hidden_size * mean_len
    world = int(os.environ.get("WORLD_SIZE", "1"))
    tokens_per_s = real_tokens / seconds
    peak = peak_flops(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "label": label,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens_per_s, 1),
        "mfu": round(flops_per_token * tokens_per_s / (peak * world), 4) if peak else None,
        "real_tokens": int(real_tokens),
        "params": n_params,
    }


def padding_fraction(lengths: list[tuple[int, int]], batch: int, grouped: bool) -> float:
    """Share of padded positions when batching ``batch`` pairs (2 x batch rows) as each setting does."""
    import random

    order = sorted(range(len(lengths)), key=lambda i: -max(lengths[i])) if grouped else random.Random(0).sample(range(len(lengths)), len(lengths))
    real = padded = 0
    for s in range(0, len(order), batch):
        rows = [x for i in order[s : s + batch] for x in lengths[i]]
        real += sum(rows)
        padded += len(rows) * max(rows)
    return 1 - real / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a SmolLM2 checkpoint directory (default: random weights)")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--smoke", action="store_true", help="tiny model, few pairs, CPU allowed: checks the script runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if args.smoke:
        args.pairs, args.max_length, args.model = min(args.pairs, 32), min(args.max_length, 64), None
    elif not torch.cuda.is_available():
        print(json.dumps({"benchmark": "rm_train_gpu", "skipped": "no CUDA device", "machine": machine()}))
        return

    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import RewardConfig

    from reward_models.config import RewardTrainingConfig

    lengths = lengths_like_hh(args.pairs, args.max_length)
    vocab = (SMOKE_DIMS if args.smoke else SMOLLM2_135M)["vocab_size"]
    g = torch.Generator().manual_seed(0)
    dataset = Dataset.from_dict({
        "chosen_ids": [torch.randint(3, vocab, (a,), generator=g).tolist() for a, _ in lengths],
        "rejected_ids": [torch.randint(3, vocab, (b,), generator=g).tolist() for _, b in lengths],
        "length": [max(a, b) for a, b in lengths],
    })
    # Only the pad/eos ids matter to the trainer: the data is already token ids.
    from tokenizers import Tokenizer, models

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>")),
                                        pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    common = {"per_device_train_batch_size": args.batch_size, "num_train_epochs": 1, "max_length": args.max_length,
                  "report_to": "none", "save_strategy": "no", "logging_steps": 50, "disable_tqdm": True}
    with tempfile.TemporaryDirectory() as tmp:
        recipe = RewardTrainingConfig(output_dir=f"{tmp}/recipe", **common)
        # TRL's default is bf16, which a CPU (only in --smoke) refuses.
        default = RewardConfig(output_dir=f"{tmp}/default", **common, **({} if torch.cuda.is_available() else {"bf16": False}))
        results = [run("recipe", recipe, dataset, args.model, tokenizer, args.smoke),
                   run("trl_default", default, dataset, args.model, tokenizer, args.smoke)]
    if int(os.environ.get("RANK", "0")) != 0:
        return
    ours, theirs = results
    print(json.dumps({
        "benchmark": "rm_train_gpu",
        "model": args.model or ("smoke: 2-layer toy" if args.smoke else "SmolLM2-135M architecture, random weights"),
        "pairs": args.pairs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "recipe": {**ours, "padding_fraction": round(padding_fraction(lengths, args.batch_size, True), 4),
                   "bf16": recipe.bf16, "activation_checkpointing": bool(recipe.activation_checkpointing)},
        "trl_default": {**theirs, "padding_fraction": round(padding_fraction(lengths, args.batch_size, False), 4),
                        "bf16": default.bf16, "activation_checkpointing": bool(default.activation_checkpointing)},
        "speedup": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3),
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
