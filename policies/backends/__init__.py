"""Policy backends: where the language model behind a policy runs.

``load_backend(BackendSpec(...))`` builds one from configuration: ``kind="transformers"`` loads a local
checkpoint or trained policy directory in process; ``kind="openai"`` talks to an OpenAI-compatible server
(vLLM, TGI, Ollama) by ``base_url``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from policies.backends.base import PolicyBackend, render_chatml, render_plain
from policies.backends.local import TransformersBackend
from policies.backends.openai_compat import BackendCapabilityError, OpenAICompatibleBackend


class BackendSpec(BaseModel):
    """How to reach a policy model. The app fills it from settings / the PolicyVersion row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["transformers", "openai"] = "transformers"
    model_dir: Path | None = None  # transformers: checkpoint or trained policy directory
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1
    model: str | None = None  # openai: the served model name
    api_key: str = "EMPTY"
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16"] = "float32"  # transformers: "auto" is bfloat16 where matmuls run it natively
    batch_size: int = 16
    timeout_s: float = 30.0

    @model_validator(mode="after")
    def _check(self) -> BackendSpec:
        if self.kind == "transformers" and self.model_dir is None:
            raise ValueError("a transformers backend needs model_dir")
        if self.kind == "openai" and not (self.base_url and self.model):
            raise ValueError("an openai backend needs base_url and model")
        return self


def load_backend(spec: BackendSpec) -> PolicyBackend:
    """Instantiate the backend ``spec`` describes (loads weights for ``transformers``)."""
    if spec.kind == "transformers":
        return TransformersBackend.load(spec.model_dir, device=spec.device, dtype=spec.dtype, batch_size=spec.batch_size)
    return OpenAICompatibleBackend(spec.base_url, spec.model, api_key=spec.api_key, timeout=spec.timeout_s)


__all__ = [
    "BackendCapabilityError",
    "BackendSpec",
    "OpenAICompatibleBackend",
    "PolicyBackend",
    "TransformersBackend",
    "load_backend",
    "render_chatml",
    "render_plain",
]
