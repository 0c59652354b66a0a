"""Pair formats: detection, lossless HH parsing (including transcripts that diverge early)."""

from __future__ import annotations

import json

import pytest

from reward_models.pairs import PairParseError, pair_from_record, pair_to_record, read_pairs


def test_hh_prompt_is_everything_before_last_shared_assistant_turn():
    rec = {"chosen": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: good",
           "rejected": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: bad"}
    pair = pair_from_record(rec)
    assert [m.role for m in pair.prompt] == ["user", "assistant", "user"]
    assert (pair.chosen, pair.rejected, pair.format) == ("good", "bad", "hh")
    assert pair_to_record(pair) == rec


def test_hh_transcripts_diverging_before_the_last_turn_keep_everything():
    """One HH pair has two assistant turns in a row in `chosen`; the rest goes into the response."""
    rec = {"chosen": "\n\nHuman: key?\n\nAssistant: here:\n\nAssistant:  ok",
           "rejected": "\n\nHuman: key?\n\nAssistant: no."}
    pair = pair_from_record(rec)
    assert pair.prompt_text() == "key?" and pair.chosen == "here:\n\nAssistant:  ok"
    assert pair_to_record(pair) == rec


def test_content_hash_ignores_format():
    a = pair_from_record({"prompt": "q", "chosen": "x", "rejected": "y"})
    b = pair_from_record({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "x"}],
                          "rejected": [{"role": "assistant", "content": "y"}]})
    assert a == b and a.content_hash() == b.content_hash() and a.format != b.format


def test_dev_file_round_trips_exactly(hh_path):
    for line in hh_path.read_text().splitlines():
        assert pair_to_record(pair_from_record(json.loads(line))) == json.loads(line)
    assert len(read_pairs(hh_path)) == 1500


def test_bad_json_line_number(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n{oops\n')
    with pytest.raises(PairParseError, match="line 3: invalid JSON"):
        read_pairs(f)
