"""Hand-written texts for `bench/safety_moderation.py`, read from `bench/data/safety_moderation_sets.json`.

None of them is a text of the TF-IDF harm classifier's seed set (the bench checks). Three
generations: the first sets were written before that seed set was extended and were looked at
while it was; the `FRESH_` sets were written after a first round and then looked at during a
second; the `UNSEEN_` and `FINAL_` sets were written last and never used to tune anything. Harmful
sets hold `[text, category]` pairs, the others plain texts.
"""

from __future__ import annotations

import json
from pathlib import Path

_SETS = json.loads((Path(__file__).resolve().parent / "data" / "safety_moderation_sets.json").read_text())

BENIGN_QUESTIONS: list[str] = _SETS["BENIGN_QUESTIONS"]
BENIGN_REPLIES: list[str] = _SETS["BENIGN_REPLIES"]
FRESH_BENIGN: list[str] = _SETS["FRESH_BENIGN"]
FRESH_REPLIES: list[str] = _SETS["FRESH_REPLIES"]
UNSEEN_BENIGN: list[str] = _SETS["UNSEEN_BENIGN"]
UNSEEN_REPLIES: list[str] = _SETS["UNSEEN_REPLIES"]
FINAL_BENIGN: list[str] = _SETS["FINAL_BENIGN"]
FINAL_REPLIES: list[str] = _SETS["FINAL_REPLIES"]
HARMFUL: list[tuple[str, str]] = [tuple(p) for p in _SETS["HARMFUL"]]
FRESH_HARMFUL: list[tuple[str, str]] = [tuple(p) for p in _SETS["FRESH_HARMFUL"]]
UNSEEN_HARMFUL: list[tuple[str, str]] = [tuple(p) for p in _SETS["UNSEEN_HARMFUL"]]
FINAL_HARMFUL: list[tuple[str, str]] = [tuple(p) for p in _SETS["FINAL_HARMFUL"]]
