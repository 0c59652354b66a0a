"""`arbiter demo` end to end, at small sizes: every stage runs, the loop is logged and audited, and the
API shows masks, escalations, filters and the review queue.

The sizes are too small for DPO to improve routing (that needs the default sizes of `make demo`);
this test checks that the whole loop runs and leaves a consistent, audited store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_settings(tmp_path: Path, smollm2_path: Path):
    from app.settings import Settings

    var = tmp_path / "var"
    var.mkdir()
    (var / "models").symlink_to(smollm2_path.parent)  # the converted SmolLM2, shared with the other tests
    return Settings(environment="test", var_dir=var)


def test_demo_runs_the_whole_loop(demo_settings):
    from app.audit import verify_chain
    from app.db import get_engine
    from app.demo import DemoOptions, run_demo
    from app.models import AuditEntry, Decision, Label, PolicyVersion, ReviewItem, RewardModelVersion

    lines: list[str] = []
    options = DemoOptions(train_tickets=24, eval_tickets=12, content_prompts=2, rollout_tickets=8, dpo_pairs=12,
                          dpo_max_steps=2, port=18765, keep_serving=False)
    summary = run_demo(demo_settings, options, say=lines.append)

    assert len(summary["stages"]) == 10, summary["stages"]
    assert [line for line in lines if line.startswith("[")][-1].startswith("[10/10]")
    table = summary["before_after"]
    for row in table.values():
        assert 0 <= row["routing_accuracy"] <= 1 and 0 <= row["win_rate_vs_base"] <= 1
    assert Path(summary["plot"]).stat().st_size > 10_000

    samples = {s["request"]: s for s in summary["api"]["samples"]}
    legal = next(v for k, v in samples.items() if "legal" in k)
    assert legal["action"] == "legal"
    refund = next(v for k, v in samples.items() if "refund" in k)
    assert refund["verdict"] == "escalate" and refund["action"] is None
    injection = next(v for k, v in samples.items() if "injection" in k)
    assert injection["finish_reason"] == "content_filter"
    assert summary["api"]["review_queue"] >= 2 and summary["api"]["stopped"]

    demo_db = demo_settings.var_dir / "demo" / "arbiter.db"
    engine = get_engine(demo_settings.model_copy(update={"database_url": f"sqlite:///{demo_db}"}))
    with Session(engine) as s:
        assert verify_chain(s).ok
        actions = set(s.exec(select(AuditEntry.action)).all())
        assert {"policy.registered", "policy.approved", "policy.state_changed", "reward_model.registered",
                "ruleset.changed", "labels.ingested", "key.created"} <= actions
        dpo = s.get(PolicyVersion, summary["dpo"]["policy_id"])
        assert dpo.reward_model_id == summary["reward_model"]["id"] and s.get(RewardModelVersion, dpo.reward_model_id)
        assert s.exec(select(func.count()).select_from(Decision)).one() >= options.train_tickets + options.rollout_tickets
        assert s.exec(select(func.count()).select_from(Label).where(Label.source == "outcome")).one() >= 1
        assert s.exec(select(func.count()).select_from(ReviewItem)).one() >= 2
    assert json.loads((demo_settings.var_dir / "demo" / "summary.json").read_text())["stages"]
    pid = summary["api"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the server was stopped
