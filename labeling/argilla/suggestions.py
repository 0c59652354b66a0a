"""Which judge's verdict annotators may see pre-selected in Argilla, and how every judge's opinion is shown.

A suggestion pre-selects an answer, and annotators anchor on what is pre-selected; so only a judge whose
measured reliability passes a threshold may suggest:

- position consistency: the share of its labels whose verdict survived swapping the two responses
  (`consistent` in a judge label), over at least `min_labels` labels (fewer: not measured yet, not trusted);
- agreement with the human majority, where humans labeled enough of the same pairs (`min_labels` of them):
  at least `min_agreement`. Unmeasured agreement does not block a consistent judge.

Among the reliable judges that gave a decisive answer on a pair, the most confident one suggests. Every
judge's answer, confidence, reasoning and measured reliability is shown in the record's `judges` field
anyway, marked "not pre-selected" when the judge is not reliable, so annotators see who said what and why.

Pure functions over plain values: the app counts the labels in its store and calls `assess_judges`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from labeling.argilla.schema import PREFERENCE_LABELS, JudgeSuggestion

__all__ = ["JudgeOpinion", "JudgeReliability", "SuggestionPolicy", "assess_judges", "choose_suggestion",
           "render_judges"]


@dataclass(frozen=True)
class SuggestionPolicy:
    """The thresholds a judge must pass to pre-select its verdict (see the module docstring)."""

    min_consistency: float = 0.8
    min_labels: int = 20
    min_agreement: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_consistency <= 1.0 or not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError("min_consistency and min_agreement must lie in [0, 1]")
        if self.min_labels < 1:
            raise ValueError("min_labels must be at least 1")


@dataclass(frozen=True)
class JudgeReliability:
    judge: str
    n_consistency: int  # labels whose position consistency was measured
    consistency: float | None  # share of them that were consistent
    n_agreement: int = 0  # pairs with both its label and a human majority
    agreement: float | None = None
    reliable: bool = False
    reason: str = ""  # why it may not suggest (empty when reliable)


@dataclass(frozen=True)
class JudgeOpinion:
    """One judge's label on one pair, as annotators see it."""

    judge: str
    choice: str  # a | b | tie
    confidence: float | None = None
    reasoning: str = ""
    consistent: bool | None = None  # did this verdict survive swapping the responses?


def assess_judges(
    consistency: Mapping[str, Iterable[bool]],
    agreement: Mapping[str, tuple[int, float | None]],
    policy: SuggestionPolicy,
) -> dict[str, JudgeReliability]:
    """Per judge: its measured position consistency (`consistency[judge]`: one bool per label where it was
    measured) and agreement with humans (`agreement[judge]`: (n, share)), and whether it may suggest."""
    out = {}
    for judge in sorted(set(consistency) | set(agreement)):
        flags = list(consistency.get(judge, ()))
        n_agree, agree = agreement.get(judge, (0, None))
        rate = sum(flags) / len(flags) if flags else None
        if len(flags) < policy.min_labels:
            reason = f"position consistency measured on {len(flags)} label(s), fewer than {policy.min_labels}"
        elif rate is not None and rate < policy.min_consistency:
            reason = f"position consistency {rate:.2f} < {policy.min_consistency:.2f}"
        elif n_agree >= policy.min_labels and agree is not None and agree < policy.min_agreement:
            reason = f"agreement with the human majority {agree:.2f} < {policy.min_agreement:.2f} (n={n_agree})"
        else:
            reason = ""
        out[judge] = JudgeReliability(judge, len(flags), rate, n_agree, agree, not reason, reason)
    return out


def choose_suggestion(opinions: Iterable[JudgeOpinion],
                      reliability: Mapping[str, JudgeReliability]) -> JudgeSuggestion | None:
    """The verdict to pre-select: the most confident decisive answer of a reliable judge; None when no
    reliable judge answered (then nothing is pre-selected)."""
    trusted = [o for o in opinions if o.choice in PREFERENCE_LABELS
               and (r := reliability.get(o.judge)) is not None and r.reliable]
    if not trusted:
        return None
    best = max(trusted, key=lambda o: (o.confidence if o.confidence is not None else 0.0, o.judge))
    score = None if best.confidence is None else min(max(best.confidence, 0.0), 1.0)
    return JudgeSuggestion(choice=best.choice, agent=best.judge[:200], score=score)  # type: ignore[arg-type]


def _percent(x: float | None) -> str:
    return "not measured" if x is None else f"{x:.0%}"


def render_judges(opinions: Iterable[JudgeOpinion], reliability: Mapping[str, JudgeReliability],
                  suggestion: JudgeSuggestion | None) -> str:
    """Markdown for the record's `judges` field: who said what, how sure, why, and how reliable it is."""
    lines = []
    for o in sorted(opinions, key=lambda o: o.judge):
        r = reliability.get(o.judge)
        said = PREFERENCE_LABELS.get(o.choice, o.choice)
        sure = "" if o.confidence is None else f", confidence {o.confidence:.2f}"
        swap = {True: "same after swapping the responses", False: "changed when the responses were swapped",
                None: "not checked with the responses swapped"}[o.consistent]
        if r is None:
            standing = "reliability not measured: not pre-selected"
        else:
            measured = (f"position consistency {_percent(r.consistency)} over {r.n_consistency} label(s)"
                        + (f", agreement with humans {_percent(r.agreement)} (n={r.n_agreement})"
                           if r.agreement is not None else ""))
            if suggestion is not None and suggestion.agent == o.judge[:200] and r.reliable:
                standing = f"{measured}; **pre-selected**"
            elif r.reliable:
                standing = f"{measured}; reliable, another judge was more confident"
            else:
                standing = f"{measured}; not pre-selected: {r.reason}"
        reasoning = " ".join(o.reasoning.split())
        lines.append(f"- **{o.judge}**: {said}{sure} ({swap}). {standing}."
                     + (f"\n  > {reasoning[:600]}" if reasoning else ""))
    return "\n".join(lines) or "_(no judge has labeled this pair)_"
