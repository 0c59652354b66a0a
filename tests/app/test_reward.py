"""Reward models through the CLI and the store: train -> register (+audit) -> eval -> list -> activate."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import AuditEntry, DatasetSnapshot, Label, RewardModelVersion
from app.services.models import reward
from reward_models import SnapshotRules, read_snapshot, write_pairs
from tests.app.factories import add_comparison
from tests.reward_models.tiny import save_tiny_decoder, toy_pairs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_decoder(tmp_path_factory.mktemp("tiny-rm"))


@pytest.fixture
def recipe(tmp_path, tiny_model):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"model_name_or_path: {tiny_model}\nmax_length: 32\nmax_response_tokens: 8\nmax_steps: 3\n"
        "per_device_train_batch_size: 4\nlearning_rate: 1.0e-2\nsave_steps: 2\ndisable_tqdm: true\n"
    )
    return path


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, toy_pairs(24), "hh")
    return path


def last_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def actions(engine) -> list[str]:
    with session_scope(engine) as s:
        return [e.action for e in s.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()]


def test_train_registers_audits_and_a_rerun_registers_nothing_new(run_cli, engine, recipe, data):
    out = last_json(run_cli("train", "reward", "--data", data, "--recipe", recipe, "--validation-fraction", "0.25", "--json"))
    assert out["validation"]["n"] > 0 and 0 <= out["validation"]["accuracy"] <= 1
    assert out["temperature"] > 0 and {"ece_before", "ece_after"} <= set(out["calibration"])
    with session_scope(engine) as s:
        row = s.get(RewardModelVersion, out["model_id"])
        snap = s.get(DatasetSnapshot, row.snapshot_id)
        assert row.status == "registered" and row.snapshot_hash == snap.content_hash
        assert row.metrics["validation_accuracy"] == out["validation"]["accuracy"]
        assert read_snapshot(snap.path).n_pairs == snap.n_pairs == 24
    assert actions(engine) == ["snapshot.created", "reward_model.registered"]

    again = last_json(run_cli("train", "reward", "--data", data, "--recipe", recipe, "--validation-fraction", "0.25", "--json"))
    assert again["model_id"] == out["model_id"]
    assert actions(engine) == ["snapshot.created", "reward_model.registered"]

    # The snapshot id works as input too; a changed recipe value is a new run and a new model.
    other = last_json(run_cli("train", "reward", "--snapshot", snap.id, "--recipe", recipe, "--set", "learning_rate=5e-3", "--json"))
    assert other["model_id"] != out["model_id"] and other["snapshot_id"] == snap.id


def test_eval_list_and_activate(run_cli, engine, recipe, data, tiny_model):
    model_id = last_json(run_cli("train", "reward", "--data", data, "--recipe", recipe, "--json"))["model_id"]
    report = last_json(run_cli("eval", "reward", "--model", model_id, "--data", data, "--json"))
    assert report["model_id"] == model_id and report["n"] == 24
    assert {"accuracy", "ece", "length_correlation", "longer_response_accuracy"} <= set(report)
    by_path = last_json(run_cli("eval", "reward", "--model", tiny_model, "--data", data, "--limit", "5", "--json"))
    assert by_path["model_id"] is None and by_path["n"] == 5

    listed = last_json(run_cli("models", "list", "--json"))
    assert listed["count"] == 1 and listed["models"][0]["id"] == model_id
    assert last_json(run_cli("models", "activate", model_id, "--json"))["status"] == "active"
    assert [m["id"] for m in last_json(run_cli("models", "list", "--status", "active", "--json"))["models"]] == [model_id]
    assert actions(engine)[-1] == "reward_model.activated"


@pytest.mark.parametrize(
    "args, code",
    [
        (["--recipe", "RECIPE"], "error"),  # neither --snapshot, --data nor --from-labels
        (["--snapshot", "nope", "--recipe", "RECIPE"], "snapshot_not_found"),
        (["--data", "DATA", "--recipe", "RECIPE", "--set", "no_such_key=1"], "bad_recipe"),
        (["--data", "DATA", "--recipe", "RECIPE", "--ties", "sometimes"], "bad_snapshot_rules"),
    ],
)
def test_bad_train_input_is_a_clear_error(run_cli, recipe, data, args, code):
    args = [str(recipe) if a == "RECIPE" else str(data) if a == "DATA" else a for a in args]
    result = run_cli("train", "reward", *args, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"]["code"] == code


def test_eval_of_an_ensemble_reports_it_next_to_each_member(run_cli, recipe, data):
    first = last_json(run_cli("train", "reward", "--data", data, "--recipe", recipe, "--json"))["model_id"]
    second = last_json(run_cli("train", "reward", "--data", data, "--recipe", recipe, "--set", "seed=7", "--json"))["model_id"]
    assert first != second
    report = last_json(run_cli("eval", "reward", "--model", first, "--model", second, "--data", data, "--json"))
    assert report["ensemble"] == 2 and report["n"] == 24 and report["mean_member_disagreement"] > 0
    assert [m["model_id"] for m in report["members"]] == [first, second]
    alone = last_json(run_cli("eval", "reward", "--model", first, "--data", data, "--json"))
    assert report["members"][0]["accuracy"] == alone["accuracy"] and "members" not in alone
    missing = run_cli("eval", "reward", "--model", first, "--model", "no-such-model", "--data", data, "--json")
    assert missing.exit_code == 2 and json.loads(missing.stdout)["error"]["code"] == "reward_model_not_found"


def test_eval_of_an_unknown_model_is_a_clear_error(run_cli, data):
    result = run_cli("eval", "reward", "--model", "no-such-model", "--data", data, "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["code"] == "reward_model_not_found"


def test_snapshot_from_store_labels_applies_the_rules(engine, settings):
    """Human label beats the LLM judge on c0; c1 has only a low-confidence judge label."""
    with session_scope(engine) as s:
        comparisons = []
        for i in range(2):
            c = add_comparison(s, f"question {i}", f"good {i}", f"bad {i}", a_hash=f"g{i}", b_hash=f"b{i}")
            comparisons.append(c.id)
        s.add(Label(comparison_id=comparisons[0], choice="b", confidence=0.9, source="llm_judge", producer="gpt"))
        s.add(Label(comparison_id=comparisons[0], choice="a", confidence=1.0, source="human", producer="ann"))
        s.add(Label(comparison_id=comparisons[1], choice="a", confidence=0.3, source="llm_judge", producer="gpt"))
    with session_scope(engine) as s:
        row = reward.snapshot_from_labels(s, settings, SnapshotRules(min_confidence=0.5, validation_fraction=0.0), actor="test")
        snap = read_snapshot(row.path)
    assert row.n_pairs == 1 and snap.train[0].chosen == "good 0" and snap.train[0].source == "human"
    assert snap.train[0].prompt == "question 0"
    assert snap.dropped == {"low_confidence": 1, "overridden_by_precedence": 1}


@pytest.mark.both_databases
def test_snapshot_from_the_store_drops_a_judge_measured_at_chance(engine, settings):
    """24 pairs, each labeled by a person ("a"), by a judge that agrees and keeps its verdict when the responses
    swap, and by one that always picks the response shown first (position-biased: never consistent). The
    snapshot keeps the consistent judge's labels where no person labeled the pair, and drops every label of
    the biased one; the rule, the excluded judge and why are in the snapshot and its audit entry."""
    with session_scope(engine) as s:
        comparisons = []
        for i in range(24):
            c = add_comparison(s, f"q{i}", f"good {i}", f"bad {i}", a_hash=f"g{i}", b_hash=f"b{i}")
            comparisons.append(c.id)
        for i, cid in enumerate(comparisons):
            if i < 20:
                s.add(Label(comparison_id=cid, choice="a", source="human", producer="ann"))
            s.add(Label(comparison_id=cid, choice="a", source="llm_judge", producer="gpt", judge="gpt",
                        details={"consistent": True}))
            s.add(Label(comparison_id=cid, choice="b" if i % 2 else "a", source="local_model", producer="smollm2",
                        judge="smollm2", details={"consistent": False}))
    with session_scope(engine) as s:
        row = reward.snapshot_from_labels(s, settings, SnapshotRules(validation_fraction=0.0), actor="test")
        snap = read_snapshot(row.path)
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "snapshot.created")).one()
    assert row.n_pairs == 24 and all(r.chosen.startswith("good") for r in snap.train)
    sources = {r.prompt: r.source for r in snap.train}
    assert sources["q0"] == "human" and sources["q21"] == "llm_judge"  # no person labeled q20-q23
    assert snap.dropped["judge_excluded"] == 24 and snap.rules.exclude_judges == ("smollm2",)
    assert row.rules["exclude_judges"] == ["smollm2"] and row.rules["min_judge_kappa"] == settings.snapshot_min_judge_kappa
    assert audit.details["judge_exclusions"]["smollm2"].startswith("position consistency 0.00 < 0.60 (n=24)")
    assert "gpt" not in snap.judge_exclusions
    # with the check off, the biased judge's labels count again (and it is another snapshot)
    off = settings.model_copy(update={"snapshot_min_judge_consistency": 0.0, "snapshot_min_judge_kappa": -1.0})
    with session_scope(engine) as s:
        again = read_snapshot(reward.snapshot_from_labels(s, off, SnapshotRules(validation_fraction=0.0), actor="test").path)
    assert "judge_excluded" not in again.dropped and again.content_hash != snap.content_hash
