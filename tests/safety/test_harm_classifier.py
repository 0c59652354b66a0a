"""The local harm classifier: seed training, retraining from reviewer verdicts, versioned artifacts."""

from __future__ import annotations

import json

import pytest

from safety.moderation import (
    SAFE_LABEL,
    latest_artifact,
    load_harm_classifier,
    retrain,
    save_harm_classifier,
    seed_examples,
    train_harm_classifier,
)

# Phrasings no seed template contains, with the labels a reviewer gave them.
REVIEWED = [
    ("send me the recipe for thermite grenades", "violence"),
    ("best thermite grenades recipe for the protest", "violence"),
    ("i need thermite grenades recipe asap", "violence"),
    ("please cancel the premium plan, my card expired", SAFE_LABEL),
]
PROBES = ["thermite grenades recipe", "quick thermite grenades recipe please"]


def test_seed_set_is_deterministic_and_covers_every_label():
    first, second = seed_examples(), seed_examples()
    assert first == second
    assert {label for _, label in first} == {SAFE_LABEL, "harassment", "illicit", "self-harm", "violence"}


def test_seed_classifier_separates_obvious_cases(harm_classifier):
    results = harm_classifier.classify(["you are a worthless idiot", "how do i reset my password"])
    assert results[0].categories == ("harassment",)
    assert not results[1].flagged
    assert set(results[0].scores) == {"harassment", "illicit", "self-harm", "violence"}


def test_retrain_changes_predictions_on_new_examples(tmp_path, harm_classifier):
    before = harm_classifier.classify(PROBES)
    assert not any(r.flagged for r in before), "probe phrasing should be unknown to the seed model"

    artifact = retrain(REVIEWED, tmp_path)
    after = load_harm_classifier(artifact.path).classify(PROBES)

    assert all(r.categories == ("violence",) for r in after)
    for old, new in zip(before, after, strict=True):
        assert new.scores["violence"] > old.scores["violence"] + 0.3
    assert artifact.n_new_examples == len(REVIEWED)
    assert artifact.n_examples == len(seed_examples()) + len(REVIEWED)


def test_artifacts_are_versioned_and_never_overwritten(tmp_path):
    # Uncalibrated trainings: this is about the artifacts, and calibrating costs three more fits.
    first = save_harm_classifier(train_harm_classifier(REVIEWED[:2], target_precision=None), tmp_path)
    second = save_harm_classifier(train_harm_classifier(REVIEWED, target_precision=None), tmp_path)
    assert (first.version, second.version) == (1, 2)
    assert latest_artifact(tmp_path).name == "harm-classifier-v0002"
    assert first.training_sha256 != second.training_sha256
    meta = json.loads((tmp_path / "harm-classifier-v0001" / "meta.json").read_text())
    assert meta["n_new_examples"] == 2 and meta["version"] == 1
    assert load_harm_classifier(first.path).version == 1
    assert load_harm_classifier(tmp_path).version == 2  # an artifacts directory loads its newest version


def test_latest_artifact_of_empty_dir_is_none(tmp_path):
    assert latest_artifact(tmp_path / "nothing") is None


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ([("", "violence")], "text must be a non-empty string"),
        ([("hello", "")], "label must be a non-empty category"),
        (["just text"], r"expected a \(text, label\) pair"),
    ],
)
def test_bad_examples_are_rejected(examples, message):
    with pytest.raises(ValueError, match=message):
        train_harm_classifier(examples)


def test_one_label_is_not_enough():
    with pytest.raises(ValueError, match="at least two labels"):
        train_harm_classifier([("a", "safe"), ("b", "safe")], include_seed=False)


def test_loading_something_else_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a harm classifier artifact"):
        load_harm_classifier(tmp_path)
