"""`arbiter label` and `arbiter eval judge` against the store, with the provider fakes on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from app.db import session_scope
from app.models import AuditEntry, BatchJob, JudgeCacheEntry, Label, LabelJob
from app.services.labels.data_io import import_pairs
from reward_models.pairs import Message, PreferencePair
from tests.labeling.fake_providers import FakeProviders

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    with FakeProviders() as server:
        yield server


@pytest.fixture
def seeded(engine):
    """Six imported pairs: each has the dataset's own label, none has a judge label yet."""

    def seed(n: int = 6) -> list[str]:
        pairs = [(i + 1, PreferencePair((Message("user", f"Question {i}: how do I stay safe?"),),
                                        f"A good answer {i}.", f"A bad answer {i}.")) for i in range(n)]
        with session_scope(engine) as session:
            import_pairs(session, pairs, source="test")
        with Session(engine) as session:
            return sorted({lb.comparison_id for lb in session.exec(select(Label)).all()})

    return seed


@pytest.fixture
def openai_env(cli_env, fake, monkeypatch):
    monkeypatch.setenv("ARBITER_OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ARBITER_OPENAI_BASE_URL", fake.openai_url)
    monkeypatch.setenv("ARBITER_ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ARBITER_ANTHROPIC_BASE_URL", fake.anthropic_url)
    return cli_env


def judge_labels(engine) -> list[Label]:
    with Session(engine) as session:
        return list(session.exec(select(Label).where(col(Label.source).in_(("llm_judge", "local_model")))).all())


def invoke_json(run_cli, *args) -> dict:
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_label_labels_every_pair_once_and_a_rerun_is_a_no_op(openai_env, run_cli, engine, fake, seeded):
    ids = seeded(6)
    report = invoke_json(run_cli, "label", "--judges", "openai,local", "--limit", "4")
    assert (report["selected"], report["labeled"], report["failed"]) == (4, 4, 0)
    assert report["judges"]["openai"]["consistency_rate"] == 1.0 and report["cost_usd"] > 0

    report = invoke_json(run_cli, "label", "--judges", "openai,local")
    assert (report["selected"], report["labeled"]) == (2, 2)
    calls = fake.openai.calls
    assert invoke_json(run_cli, "label", "--judges", "openai,local")["selected"] == 0
    assert fake.openai.calls == calls == 12  # 6 pairs x 2 orders, nothing twice

    labels = judge_labels(engine)
    assert sorted(lb.comparison_id for lb in labels) == ids
    assert not (openai_env.models_dir / "SmolLM2-135M-Instruct").exists()  # the unused fallback cost nothing
    for lb in labels:
        assert (lb.source, lb.producer, lb.judge, lb.choice) == ("llm_judge", "openai", "openai", "a")
        assert lb.model == "gpt-4o-mini-2024-07-18" and lb.rubric_version and lb.cost_usd > 0
        assert lb.details["consistent"] is True and len(lb.details["verdicts"]) == 2
    with Session(engine) as session:
        jobs = session.exec(select(LabelJob)).all()
        assert [j.status for j in jobs] == ["finished", "finished"] and sum(j.n_done for j in jobs) == 6
        assert sum(j.cost_usd for j in jobs) == pytest.approx(sum(lb.cost_usd for lb in labels))
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "labels.judged")).all()
        assert sum(e.details["n"] for e in audit) == 6
        assert len(session.exec(select(JudgeCacheEntry)).all()) == 12


def test_label_falls_back_when_the_provider_fails(openai_env, run_cli, engine, fake, seeded):
    from tests.labeling.fake_providers import server_error

    seeded(3)
    fake.openai.default = server_error(500)
    report = invoke_json(run_cli, "label", "--judges", "openai,anthropic")
    assert report["labeled"] == 3 and report["judges"]["anthropic"]["labels"] == 3
    assert {lb.judge for lb in judge_labels(engine)} == {"anthropic"}
    assert all(lb.details["fallbacks"][0]["judge"] == "openai" for lb in judge_labels(engine))


def test_batch_submit_collect_are_safe_to_rerun(openai_env, run_cli, engine, fake, seeded):
    ids = seeded(4)
    fake.batch_polls_before_done = 1
    submitted = invoke_json(run_cli, "label", "--batch", "--judges", "openai")
    assert submitted["submitted"] and submitted["comparisons"] == 4 and submitted["requests"] == 8
    again = invoke_json(run_cli, "label", "--batch", "--judges", "openai")
    assert not again["submitted"] and again["pending_in_batches"] == 4  # already in a batch

    first = invoke_json(run_cli, "label", "--collect")
    assert first["collected"] == 0 and first["batches"][0]["state"] == "in_progress"
    second = invoke_json(run_cli, "label", "--collect")
    assert second["collected"] == 1 and second["batches"][0]["labels"] == 4
    assert invoke_json(run_cli, "label", "--collect") == {"batches": [], "collected": 0}

    labels = judge_labels(engine)
    assert sorted(lb.comparison_id for lb in labels) == ids and all(lb.details["batch"] for lb in labels)
    with Session(engine) as session:
        (job,) = session.exec(select(BatchJob)).all()
        assert job.status == "collected" and job.params["labels"] == 4
    assert fake.openai.calls == 0  # everything went through the batch, at half price


def test_label_without_any_judge_is_a_clear_error(cli_env, run_cli, seeded):
    seeded(1)
    result = run_cli("label", "--judges", "openai", "--json")
    assert result.exit_code == 2
    assert "no judge available" in result.output


def test_eval_judge_reports_agreement_and_consistency(openai_env, run_cli, hh_path, fake):
    result = invoke_json(run_cli, "eval", "judge", "--judge", "openai", "--data", hh_path, "--limit", "6")
    assert result["judge"] == "openai" and result["labeled"] == 6
    assert result["consistency_rate"] == 1.0  # the fake is not position-biased
    for key in ("agreement", "agreement_ties_half", "coverage", "cost_usd"):
        assert key in result
    bad = run_cli("eval", "judge", "--judge", "openai", "--data", "/no/such/file.jsonl", "--json")
    assert bad.exit_code == 2 and "no/such/file" in bad.output


def test_sigkill_then_rerun_finishes_without_duplicates(openai_env, engine, fake, seeded):
    """Kill -9 a running `arbiter label` mid-way; the re-run labels only what is left."""
    ids = seeded(12)
    fake.openai.latency_s = 0.15
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "app.cli.main", "label", "--judges", "openai", "--concurrency", "2", "--json"]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(judge_labels(engine)) < 8:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(judge_labels(engine))
    assert 8 <= done_before < 12, "the run should be killed part-way"
    # The killed run's row still says `running`; the listing shows it stale (its pid is gone) ...
    listing = subprocess.run([sys.executable, "-m", "app.cli.main", "label", "--jobs", "--json"], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=True)
    (killed,) = json.loads(listing.stdout)
    assert killed["status"] == "stale" and killed["pid"] == process.pid and killed["n_done"] >= 8
    with Session(engine) as session:
        assert session.get(LabelJob, killed["id"]).status == "running"

    rerun = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout.strip().splitlines()[-1])
    # ... and the rerun closes it.
    assert report["closed_stale_jobs"] == [killed["id"]]
    with Session(engine) as session:
        statuses = {job.id: job.status for job in session.exec(select(LabelJob)).all()}
    assert statuses.pop(killed["id"]) == "interrupted" and list(statuses.values()) == ["finished"]

    labels = judge_labels(engine)
    assert sorted(lb.comparison_id for lb in labels) == ids  # every pair exactly once
    assert report["labeled"] == 12 - done_before
    # Verdicts paid for before the kill came from the cache; at most the calls in flight at the
    # kill (2) were paid twice.
    assert fake.openai.calls <= 2 * 12 + 2


@pytest.mark.slow
def test_without_api_keys_the_local_model_labels(cli_env, run_cli, engine, seeded, smollm2_path):
    """The default chain (openai, anthropic, local) with no key set: SmolLM2 labels, for free."""
    seeded(1)
    models = cli_env.models_dir
    models.mkdir(parents=True)
    (models / smollm2_path.name).symlink_to(smollm2_path)  # the converted checkpoint, not a new conversion
    report = invoke_json(run_cli, "label", "--limit", "1")
    assert report["labeled"] == 1 and report["skipped_judges"] == ["openai", "anthropic"]
    (label,) = judge_labels(engine)
    assert (label.source, label.judge, label.model) == ("local_model", "local-smollm2", "SmolLM2-135M-Instruct")
    assert label.cost_usd == 0.0 and label.choice in ("a", "b", "tie")
