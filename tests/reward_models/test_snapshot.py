"""Snapshot rules, hashing and the deterministic split."""

from __future__ import annotations

import json
import random

import pytest

from reward_models.pairs import read_pairs
from reward_models.snapshot import (
    LabeledPair,
    SnapshotRules,
    build_snapshot,
    labeled_pairs_from_preferences,
    read_snapshot,
    write_snapshot,
)


def L(cid, choice, source="human", conf=1.0, prompt="p", a="A", b="B"):
    return LabeledPair(cid, prompt, a, b, choice, conf, source)


def only(snap):
    records = snap.train + snap.validation
    assert len(records) == 1, records
    return records[0]


def many(n, seed=0):
    rng = random.Random(seed)
    return [L(f"c{i}", rng.choice("ab"), prompt=f"prompt {i}", a=f"a{i}", b=f"b{i}") for i in range(n)]


def test_hash_and_records_do_not_depend_on_label_order():
    labels = many(50)
    shuffled = labels[:]
    random.Random(1).shuffle(shuffled)
    a, b = build_snapshot(labels), build_snapshot(shuffled)
    assert a.content_hash == b.content_hash and a.train == b.train and a.validation == b.validation


def test_hash_changes_with_rules_and_with_content():
    labels = many(20)
    base = build_snapshot(labels).content_hash
    assert build_snapshot(labels, SnapshotRules(min_confidence=0.5)).content_hash != base
    flipped = [L("c0", "b" if labels[0].choice == "a" else "a", prompt="prompt 0", a="a0", b="b0")] + labels[1:]
    assert build_snapshot(flipped).content_hash != base


def test_human_label_overrides_llm_label_on_the_same_pair():
    snap = build_snapshot([L("c1", "b", "llm_judge"), L("c1", "b", "local_model"), L("c1", "a", "human", 0.8)])
    rec = only(snap)
    assert (rec.chosen, rec.rejected, rec.source, rec.confidence) == ("A", "B", "human", 0.8)
    assert snap.dropped["overridden_by_precedence"] == 2


def test_llm_labels_count_when_no_human_labelled_the_pair():
    rec = only(build_snapshot([L("c1", "b", "llm_judge", 0.9)]))
    assert (rec.chosen, rec.source) == ("B", "llm_judge")


def test_duplicates_shown_in_swapped_order_are_one_pair():
    """c1 shows (A, B) and prefers A; c2 shows (B, A) and prefers its 'b' -- also A."""
    snap = build_snapshot([L("c1", "a"), LabeledPair("c2", "p", "B", "A", "b", 1.0, "human")])
    rec = only(snap)
    assert (rec.chosen, rec.rejected, rec.confidence) == ("A", "B", 1.0)
    assert rec.comparison_ids == ("c1", "c2")


def test_split_votes_are_dropped_and_majorities_lower_confidence():
    assert build_snapshot([L("c1", "a"), L("c2", "b")]).n_pairs == 0
    rec = only(build_snapshot([L("c1", "a"), L("c2", "a"), L("c3", "b")]))
    assert rec.chosen == "A" and rec.confidence == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "label, rules, kept, reason",
    [
        (L("c", "a", conf=0.4), SnapshotRules(min_confidence=0.5), False, "low_confidence"),
        (L("c", "a", conf=0.5), SnapshotRules(min_confidence=0.5), True, None),
        (L("c", "a", source="llm_judge"), SnapshotRules(sources=("human",)), False, "source_excluded"),
        (L("c", "discarded"), SnapshotRules(), False, "discarded"),
        (L("c", "a", a="same", b="same"), SnapshotRules(), False, "identical_responses"),
        (L("c", "tie"), SnapshotRules(ties="drop"), False, "tie"),
        (L("c", "tie"), SnapshotRules(ties="margin_zero"), True, None),
    ],
)
def test_filter_rules(label, rules, kept, reason):
    snap = build_snapshot([label], rules)
    assert snap.n_pairs == int(kept)
    if reason:
        assert snap.dropped == {reason: 1}


def test_kept_ties_are_marked():
    rec = only(build_snapshot([L("c", "tie")], SnapshotRules(ties="margin_zero")))
    assert rec.tie and {rec.chosen, rec.rejected} == {"A", "B"}


def test_split_is_hash_based_stable_and_near_the_fraction():
    labels = many(2000)
    snap = build_snapshot(labels, SnapshotRules(validation_fraction=0.2))
    assert 0.17 < len(snap.validation) / snap.n_pairs < 0.23
    # Adding pairs never moves an existing pair to the other split.
    extra = [L(f"n{i}", "a", prompt=f"new prompt {i}", a="x", b="y") for i in range(300)]
    bigger = build_snapshot(labels + extra, SnapshotRules(validation_fraction=0.2))
    assert {r.key for r in snap.validation} <= {r.key for r in bigger.validation}
    assert {r.key for r in snap.train} <= {r.key for r in bigger.train}
    # A different split seed gives a different split.
    other = build_snapshot(labels, SnapshotRules(validation_fraction=0.2, split_seed="other"))
    assert {r.key for r in other.validation} != {r.key for r in snap.validation}


def test_bad_labels_and_rules_are_refused():
    with pytest.raises(ValueError, match="choice"):
        L("c", "maybe")
    with pytest.raises(ValueError, match="source"):
        L("c", "a", source="crowd")
    with pytest.raises(ValueError, match="confidence"):
        L("c", "a", conf=1.5)
    with pytest.raises(ValueError, match="ties"):
        SnapshotRules(ties="half")
    with pytest.raises(ValueError, match="validation_fraction"):
        SnapshotRules(validation_fraction=1.0)


def test_files_round_trip_are_pair_files_and_detect_tampering(tmp_path):
    snap = build_snapshot(many(40), SnapshotRules(validation_fraction=0.25))
    write_snapshot(snap, tmp_path / "s")
    again = read_snapshot(tmp_path / "s")
    assert again.content_hash == snap.content_hash and again.train == snap.train
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["n_train"] == len(snap.train) and manifest["rules"]["validation_fraction"] == 0.25
    # The JSONL files are also ordinary pair files in the "prompt" format.
    assert len(read_pairs(tmp_path / "s" / "train.jsonl")) == len(snap.train)
    path = tmp_path / "s" / "train.jsonl"
    path.write_text(path.read_text().replace('"chosen": "a', '"chosen": "z', 1))
    with pytest.raises(ValueError, match="modified"):
        read_snapshot(tmp_path / "s")


def test_preference_file_becomes_human_labels(hh_path):
    pairs = read_pairs(hh_path)[:100]
    snap = build_snapshot(labeled_pairs_from_preferences(pairs))
    assert snap.n_pairs == len({p.content_hash() for p in pairs})
    rec = snap.train[0]
    assert rec.source == "human" and rec.confidence == 1.0
    by_key = {(p.prompt_text(), p.chosen, p.rejected) for p in pairs}
    assert all((r.prompt, r.chosen, r.rejected) in by_key for r in snap.train + snap.validation)


# ------------------------------------------------------------------------------------ labels weighted by trust
@pytest.mark.parametrize(
    ("measurement", "excluded"),
    [
        # position consistency 0.30 over 40 labels: below 0.6, at chance or worse (always picks the first shown)
        ((40, 0.30, 0, None), True),
        # kappa 0.05 with the human majority over 40 pairs: chance is 0
        ((40, 0.95, 40, 0.05), True),
        # a good judge on both counts
        ((40, 0.95, 40, 0.70), False),
        # at chance but measured on 19 labels only (fewer than min_judge_labels = 20): not known to be at chance
        ((19, 0.10, 19, -0.2), False),
        # unmeasured
        ((0, None, 0, None), False),
    ],
)
def test_judges_at_chance_are_excluded(measurement, excluded):
    from reward_models.snapshot import JudgeMeasurement, judges_to_exclude

    rules = SnapshotRules(min_judge_kappa=0.2, min_judge_consistency=0.6)
    out = judges_to_exclude([JudgeMeasurement("j", *measurement)], rules)
    assert ("j" in out) is excluded
    assert judges_to_exclude([JudgeMeasurement("j", *measurement)], SnapshotRules()) == {}  # no thresholds, no rule


def test_labels_of_an_excluded_judge_make_no_pairs_and_the_rule_is_recorded(tmp_path):
    """p1 has only the excluded judge's label: no pair. p2: the trusted judge's label stands alone, since
    the excluded judge's contrary vote on it is gone before voting (otherwise 1-1, a conflict)."""
    labels = [
        LabeledPair("c1", "p1", "A", "B", "a", 1.0, "local_model", judge="smollm2"),
        LabeledPair("c2", "p2", "A", "B", "b", 1.0, "local_model", judge="smollm2"),
        LabeledPair("c2", "p2", "A", "B", "a", 1.0, "llm_judge", judge="gpt"),
    ]
    rules = SnapshotRules(min_judge_kappa=0.2, min_judge_consistency=0.6, exclude_judges=("smollm2",),
                          validation_fraction=0.0)
    why = {"smollm2": "position consistency 0.30 < 0.60 (n=40)"}
    snap = build_snapshot(labels, rules, judge_exclusions=why)
    assert only(snap).prompt == "p2" and only(snap).chosen == "A"
    assert snap.dropped == {"judge_excluded": 2}
    manifest = snap.manifest()
    assert manifest["rules"]["exclude_judges"] == ["smollm2"] and manifest["rules"]["min_judge_consistency"] == 0.6
    assert manifest["judge_exclusions"] == why
    back = read_snapshot(write_snapshot(snap, tmp_path / "s"))
    assert back.content_hash == snap.content_hash and back.rules == rules and back.judge_exclusions == why
    # the exclusion is part of the hash: trusting the judge again is another snapshot
    assert build_snapshot(labels, SnapshotRules(validation_fraction=0.0)).content_hash != snap.content_hash


def test_rules_without_the_trust_rule_keep_their_hash():
    """Snapshots made before the trust rule existed have no trust fields in their manifest; their hash must not
    move (read_snapshot recomputes it), so the rule's fields are left out while unset."""
    snap = build_snapshot([L("c1", "a")], SnapshotRules(validation_fraction=0.0))
    assert snap.content_hash == "8ea3e7e1270780ccb39372f904008a0961ae94588931e7639af351b58e474381"  # before the rule
    assert not {"min_judge_kappa", "min_judge_consistency", "min_judge_labels", "exclude_judges"} & set(snap.manifest()["rules"])
    assert "judge_exclusions" not in snap.manifest()
