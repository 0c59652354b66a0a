"""The policies that serve decisions, loaded once per process.

``PolicyRuntime`` knows the decision types (shipped YAML, plus a directory of the operator's), turns
a ``PolicyVersion`` row into a ready policy object (``ActionPolicy`` / ``TextPolicy`` over a
transformers or OpenAI-compatible backend), and gives each loaded policy a ``MicroBatcher`` so that
concurrent requests share one forward pass. Loading is lazy and happens once per version.

Every model call of the runtime (loading, scoring, generation) runs on ONE thread, ``model_thread``.
PyTorch's CPU build parallelises with OpenMP, and every thread that runs a torch operation gets its own
OpenMP team that lives as long as the thread. Once a second team exists, libgomp sees more threads than
cores and stops spinning between parallel regions, so each of the thousands of small operations of a
forward pass pays a sleep and a wake-up. Measured in process on 2 cores (SmolLM2-135M, ticket routing):
after one other thread had scored a single request, scoring alone went from 254 to 370 ms per request
(+45%), and a batch of 16 from 87 to 92 ms per request; when that thread ended, it was back to 277 ms.
asyncio's default pool spreads calls over up to six threads, so the server paid this on every request.
A single model thread also keeps a first-use load (seconds) off the event loop. The cost: model calls
queue behind each other, so a long chat generation holds routing decisions that arrive meanwhile until
it ends (before, both ran at once, each slowed by the other). Where that matters, serve chat and routing
from separate processes.

``backend_factory`` is the seam tests use to serve a tiny model instead of SmolLM2.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, select

from app.audit import append_audit
from app.metrics import POLICY_BATCH_SIZE
from app.models import PolicyVersion, utcnow
from app.settings import Settings
from policies.action_policy import ActionPolicy, TextPolicy
from policies.backends import BackendSpec, load_backend
from policies.backends.base import PolicyBackend
from policies.decision_types import DecisionType, deployment_decision_types
from reward_models.batching import MicroBatcher

__all__ = ["BASE_MODEL", "LoadedPolicy", "PolicyRuntime", "ensure_base_policy"]

BASE_MODEL = "SmolLM2-135M-Instruct"
T = TypeVar("T")


@dataclass
class LoadedPolicy:
    version_id: str
    policy: ActionPolicy | TextPolicy
    batcher: MicroBatcher


def default_backend_factory(settings: Settings) -> Callable[[PolicyVersion], PolicyBackend]:
    def factory(version: PolicyVersion) -> PolicyBackend:
        if version.backend == "openai":
            if not settings.policy_base_url:
                raise RuntimeError(f"policy {version.id} is served by an OpenAI-compatible endpoint but ARBITER_POLICY_BASE_URL is unset")
            return load_backend(BackendSpec(kind="openai", base_url=settings.policy_base_url, model=version.base_model))
        if version.artifact_path:
            model_dir = Path(version.artifact_path)
        elif version.base_model == BASE_MODEL:
            from reward_models.local_models import smollm2_dir

            model_dir = smollm2_dir(settings.models_dir)
        else:
            model_dir = Path(version.base_model)
        return load_backend(BackendSpec(kind="transformers", model_dir=model_dir, dtype=settings.policy_dtype))

    return factory


class PolicyRuntime:
    def __init__(self, settings: Settings, backend_factory: Callable[[PolicyVersion], PolicyBackend] | None = None,
                 decision_types_dir: Path | None = None, max_batch: int = 32):
        self.settings = settings
        self.decision_types: dict[str, DecisionType] = deployment_decision_types(decision_types_dir)
        self.backend_factory = backend_factory or default_backend_factory(settings)
        self.max_batch = max_batch
        self.max_wait_s = settings.policy_max_wait_ms / 1000
        self._loaded: dict[str, LoadedPolicy] = {}
        self._lock = threading.Lock()
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arbiter-model")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a model call on the model thread (see the module docstring) without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, functools.partial(fn, *args, **kwargs))

    async def aget(self, version: PolicyVersion) -> LoadedPolicy:
        """``get`` from the event loop: a first load runs on the model thread."""
        with self._lock:
            loaded = self._loaded.get(version.id)
        return loaded if loaded is not None else await self.run(self.get, version)

    def decision_type(self, name: str) -> DecisionType | None:
        return self.decision_types.get(name)

    def get(self, version: PolicyVersion) -> LoadedPolicy:
        """The ready policy for a version row (loaded on first use)."""
        with self._lock:
            if version.id in self._loaded:
                return self._loaded[version.id]
            dt = self.decision_types[version.decision_type]
            backend = self.backend_factory(version)
            params = version.hyperparams or {}
            if dt.kind == "action":
                policy: ActionPolicy | TextPolicy = ActionPolicy(
                    dt, backend, temperature=float(params.get("temperature", self.settings.policy_temperature)),
                    epsilon=float(params.get("epsilon", self.settings.policy_epsilon)), seed=int(params.get("seed", 0)),
                    policy_id=version.id)
                batcher = MicroBatcher(policy.score_batch, max_batch=self.max_batch, max_wait_s=self.max_wait_s,
                                       on_batch=POLICY_BATCH_SIZE.labels(dt.name).observe, executor=self.model_thread)
            else:
                policy = TextPolicy(dt, backend, temperature=float(params.get("temperature", 0.7)), seed=int(params.get("seed", 0)),
                                    policy_id=version.id)
                batcher = MicroBatcher(policy.draft_batch, max_batch=min(self.max_batch, 8), max_wait_s=self.max_wait_s,
                                       on_batch=POLICY_BATCH_SIZE.labels(dt.name).observe, executor=self.model_thread)
            loaded = LoadedPolicy(version.id, policy, batcher)
            self._loaded[version.id] = loaded
            return loaded

    def forget(self, version_id: str) -> None:
        with self._lock:
            self._loaded.pop(version_id, None)


def ensure_base_policy(session: Session, decision_type: str, actor: str = "system", hyperparams: dict | None = None) -> PolicyVersion:
    """The active policy of a decision type; registers the base model as active when there is none
    (with ``hyperparams`` such as an exploring temperature and floor, when given)."""
    active = session.exec(select(PolicyVersion).where(PolicyVersion.decision_type == decision_type,
                                                      PolicyVersion.state == "active")).first()
    if active is not None:
        return active
    version = PolicyVersion(name=f"base-{decision_type}", decision_type=decision_type, backend="transformers",
                            base_model=BASE_MODEL, state="active", traffic_share=1.0, hyperparams=hyperparams or {},
                            updated_at=utcnow())
    session.add(version)
    session.flush()
    append_audit(session, actor, "policy.registered", "policy", version.id,
                 {"decision_type": decision_type, "base_model": BASE_MODEL, "state": "active", "hyperparams": hyperparams or {},
                  "reason": "no active policy: base model serves"})
    return version
