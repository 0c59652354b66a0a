"""`arbiter demo`: the whole feedback loop on embedded defaults (SQLite, local models, no keys, no GPU).

Stages, each printed on one line with its duration:

 1. a fresh store under ``<var>/demo``; the ticket-routing simulator and content prompts from it;
 2. the current policies propose: the base routing policy (exploring) decides on simulated tickets
    through the real decision path and the simulator answers with rewards; the base content policy
    drafts two replies per prompt, which form comparisons;
 3. judges label the comparisons (OpenAI / Anthropic with keys, else the local fallback);
 4. with ``--with-argilla`` (or a configured Argilla) the most uncertain pairs go to annotators;
 5. a reward model (MiniLM, TRL RewardTrainer) is trained on a snapshot of the labels (judge labels
    and labels from outcomes) and registered;
 6. a DPO policy is trained on pairs the reward model ranks, and registered with its lineage;
 7. before/after on held-out tickets, with a PNG plot;
 8. the off-policy evaluation gate, shadow, canary and promotion, each audited;
 9. the API on :8000 and sample requests through it;
10. URLs, keys and what to try next.

Stages 1-6 are in ``loop``, 7-10 in ``report``, the state they share in ``context``.
Running it again starts from a fresh store; trained artifacts whose data did not change are reused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from app.demo import loop, report
from app.demo.context import DemoOptions, DemoRun
from app.settings import Settings

__all__ = ["DemoOptions", "run_demo"]


def run_demo(settings: Settings, options: DemoOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the ten stages in order and write ``<var>/demo/summary.json``; returns the summary."""
    run = DemoRun(settings, options, say)
    with run.stage(1, "fresh store, simulator and content prompts"):
        loop.fresh_store(run)
    with run.stage(2, "current policies propose; pairs are formed"):
        loop.propose(run)
    with run.stage(3, "judges label the pairs"):
        loop.label(run)
    with run.stage(4, "human annotation in Argilla"):
        loop.argilla(run)
    with run.stage(5, "reward model trained and registered"):
        loop.reward_model(run)
    with run.stage(6, "DPO policy trained and registered"):
        loop.dpo(run)
    with run.stage(7, "before / after on held-out tickets"):
        report.before_after(run)
    with run.stage(8, "off-policy evaluation gate, shadow, canary, promotion"):
        report.rollout(run)
    if options.serve:
        with run.stage(9, "API up; sample requests through it"):
            report.serve_and_try(run)
    else:
        say("[9/10] API: skipped (--no-serve)")
    with run.stage(10, "where to go from here"):
        report.next_steps(run)
    run.summary["total_seconds"] = round(time.perf_counter() - run.started, 1)
    (run.dir / "summary.json").write_text(json.dumps(run.summary, indent=2, default=str))
    return run.summary
