"""Load and warm the serving policies when the API starts, so no request pays for it.

Loading SmolLM2 the first time converts its GGUF file to a checkpoint and writes it (a minute on 2
cores); even a converted model takes seconds to load and its first forward pass is slow. Without a
warm-up the first decision or chat request paid all of it while ``/readyz`` said ready. Here a
background task builds the serving state (policy runtime, safety layer, base policies), then loads
every policy version that serves traffic (active, canary, shadow) and runs one forward pass through
each, on the runtime's model thread. ``WarmupStatus`` says what is loading; ``/readyz`` answers 503
with it until everything is ready, and with the error if loading failed.

Requests that arrive meanwhile are not refused: they wait for the same load (the runtime loads a
version once). A policy registered later still loads on first use. Not here: the API wiring
(``app.api.main``) and pre-converting the model ahead of start-up (``arbiter init``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.models import PolicyVersion
from app.settings import Settings

__all__ = ["WarmupStatus", "warm_serving"]

# A child of uvicorn's error logger: `arbiter serve` shows its INFO lines (what loads, when it is ready) next to
# the server's own; elsewhere it is an ordinary logger.
log = logging.getLogger("uvicorn.error.arbiter.warmup")

SERVING_STATES = ("active", "canary", "shadow")
WARM_MESSAGES = [{"role": "user", "content": "Hello"}]


@dataclass
class WarmupStatus:
    """Where the start-up warm-up stands (read by ``/readyz``)."""

    state: Literal["starting", "loading", "ready", "failed"] = "starting"
    loading: list[str] = field(default_factory=list)  # policy names still loading
    ready: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "loading": list(self.loading), "ready": list(self.ready), "error": self.error,
                "seconds": self.seconds}

    def describe(self) -> str:
        if self.state == "failed":
            return f"loading the serving policies failed: {self.error}"
        if self.state == "starting":
            return "building the safety layer and the policy runtime"
        return f"loading policies: {', '.join(self.loading) or '(none)'}"


def _warm(policy: Any) -> None:
    """One forward pass, so the first request does not pay for lazy initialisation either."""
    backend = policy.backend
    prompt = backend.render(WARM_MESSAGES)
    backend.completion_logprobs([prompt], ["Hi"])


async def warm_serving(state: object, settings: Settings, engine: Engine, status: WarmupStatus) -> None:
    """Build ``state.serving`` (``state`` is ``app.state``) and load + warm its serving policies."""
    # app.services.serving.stack imports torch: imported here so that app.api.main stays light, as app.api.deps does.
    from app.services.serving.stack import get_serving

    started = time.perf_counter()
    try:
        serving = await asyncio.to_thread(get_serving, state, settings, engine)
        await asyncio.to_thread(serving.safety.warm)
        with Session(engine) as session:
            versions = session.exec(select(PolicyVersion).where(col(PolicyVersion.state).in_(SERVING_STATES))
                                    .order_by(PolicyVersion.decision_type, PolicyVersion.name)).all()
        versions = [v for v in versions if v.decision_type in serving.runtime.decision_types]
        status.loading, status.state = [v.name for v in versions], "loading"
        for version in versions:
            log.info("loading policy %s (%s, %s)", version.name, version.decision_type, version.state)
            loaded = await serving.runtime.aget(version)
            if version.backend != "openai":  # a remote endpoint is warm (or not) on its own
                await serving.runtime.run(_warm, loaded.policy)
            status.loading.remove(version.name)
            status.ready.append(version.name)
        status.state = "ready"
    except Exception as exc:  # noqa: BLE001 - any failure leaves the service not ready, with the reason
        status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("warm-up failed")
    finally:
        status.seconds = round(time.perf_counter() - started, 3)
    if status.state == "ready":
        log.info("serving policies ready in %.1f s: %s", status.seconds, ", ".join(status.ready))
