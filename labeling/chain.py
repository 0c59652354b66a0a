"""The fallback chain: judges tried in order until one labels the pair.

For each comparison the chain asks its first judge for both orders; if that judge fails (after
its own retries), the next judge is asked, and so on (e.g. openai -> anthropic -> local). The
label records which judge produced it and the failures that came before, so a pair is never lost
to one failing provider. If every judge fails, the result is a `LabelFailure` and the pair stays
unlabeled for the next run.

Both orders of a pair always come from the same judge: mixing judges within a pair would make the
consistency check meaningless.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from labeling.pairwise import combine_orders, judge_both_orders
from labeling.verdicts import Comparison, Judge, JudgeFailure, LabelFailure, LabelResult


class FallbackChain:
    """Judges in fallback order. `label(comparison)` returns a `Label` or a `LabelFailure`."""

    def __init__(self, judges: Sequence[Judge]) -> None:
        if not judges:
            raise ValueError("a fallback chain needs at least one judge")
        names = [j.name for j in judges]
        if len(set(names)) != len(names):
            raise ValueError(f"judge names must be unique in a chain, got {names}")
        self.judges = tuple(judges)

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.judges]

    async def label(self, comparison: Comparison, limiter: AbstractAsyncContextManager | None = None) -> LabelResult:
        failures: list[JudgeFailure] = []
        for judge in self.judges:
            outcome = await judge_both_orders(judge, comparison, limiter)
            if isinstance(outcome, JudgeFailure):
                failures.append(outcome)
                continue
            ab, ba = outcome
            return combine_orders(comparison.id, ab, ba, tuple(failures))
        return LabelFailure(comparison.id, tuple(failures), sum(f.cost_usd for f in failures))

