"""The values that flow through a judge: what it is asked, what it answers, and the final label.

A *judge* sees one comparison in one order (the response shown first is "A" to the judge) and
returns either a `Verdict` or a `JudgeFailure`: failure is an ordinary return value, not an
exception, so that code combining judges (retries, fallback chains) has to handle it on purpose
(the same idea as trl's judges returning -1). Position-bias control turns the two single-order
verdicts of a comparison into one `Label` (see `labeling.pairwise`).

This module only defines data; it does not call any provider, price anything or store anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

Order = Literal["ab", "ba"]
"""Which response the judge sees first: "ab" shows response A first, "ba" shows response B first."""

Preference = Literal["first", "second", "tie"]
"""A single-order verdict, relative to what the judge was shown."""

Choice = Literal["a", "b", "tie"]
"""A label, relative to the comparison's own responses A and B."""

FailureKind = Literal[
    "rate_limit",  # 429: retry after the advertised delay
    "server_error",  # 5xx, overloaded, 408/409: retry with backoff
    "timeout",  # the call exceeded its time limit
    "connection",  # the provider could not be reached
    "malformed",  # the answer could not be parsed into a verdict (billed)
    "refusal",  # the model declined to judge this pair (billed)
    "auth",  # bad or missing key
    "bad_request",  # the provider rejected the request itself (e.g. too long)
    "budget_exhausted",  # the next call could cost more than the budget left
    "circuit_open",  # the provider failed repeatedly; calls are paused
    "error",  # anything else; logged with its traceback
]

RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limit", "server_error", "timeout", "connection", "malformed"})
"""Failure kinds worth another attempt at the same judge."""

PROVIDER_FAILURE_KINDS: frozenset[str] = frozenset({"rate_limit", "server_error", "timeout", "connection", "auth"})
"""Failure kinds that say the provider itself is unhealthy (these trip the circuit breaker)."""


@dataclass(frozen=True)
class Comparison:
    """Two candidate responses to one prompt, waiting for a preference label."""

    id: str
    prompt: str
    response_a: str
    response_b: str

    def __post_init__(self) -> None:
        if not str(self.id):
            raise ValueError("Comparison.id must be a non-empty string")
        for name in ("prompt", "response_a", "response_b"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Comparison.{name} must be a str, got {type(getattr(self, name)).__name__}")


@dataclass(frozen=True)
class JudgeRequest:
    """One comparison shown in one order: `first` is presented to the judge as "A"."""

    comparison_id: str
    order: Order
    prompt: str
    first: str
    second: str

    @classmethod
    def from_comparison(cls, comparison: Comparison, order: Order) -> JudgeRequest:
        if order == "ab":
            first, second = comparison.response_a, comparison.response_b
        elif order == "ba":
            first, second = comparison.response_b, comparison.response_a
        else:
            raise ValueError(f"order must be 'ab' or 'ba', got {order!r}")
        return cls(comparison.id, order, comparison.prompt, first, second)


@dataclass(frozen=True)
class Verdict:
    """A judge's answer for one request. `cost_usd` counts every attempt spent producing it."""

    preferred: Preference
    confidence: float
    rationale: str
    judge: str
    provider: str
    model: str
    rubric_version: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 1
    cached: bool = False
    batch: bool = False

    def __post_init__(self) -> None:
        if self.preferred not in ("first", "second", "tie"):
            raise ValueError(f"preferred must be 'first', 'second' or 'tie', got {self.preferred!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (what caches store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes: Any) -> Verdict:
        return replace(self, **changes)


@dataclass(frozen=True)
class JudgeFailure:
    """A judge saying "I failed" for one request, with enough detail to decide what to do next."""

    kind: FailureKind
    message: str
    judge: str
    provider: str
    model: str
    retry_after_s: float | None = None
    cost_usd: float = 0.0  # money already spent (malformed or refused answers are billed)
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 1

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def with_(self, **changes: Any) -> JudgeFailure:
        return replace(self, **changes)


JudgeResult = Verdict | JudgeFailure


@runtime_checkable
class Judge(Protocol):
    """Anything that can judge one ordered comparison.

    `name` identifies the judge in labels and reports ("openai", "local-smollm2", ...), `provider`
    groups judges that share a circuit breaker ("local" for judges that cost nothing), `model` is
    the configured model and `rubric_version` the hash of the rubric text (None for judges without
    a rubric). Paid judges also offer `estimate_cost(request) -> float`, an upper bound of a call's
    cost, which `BudgetedJudge` reserves before calling.
    """

    name: str
    provider: str
    model: str
    rubric_version: str | None

    async def judge(self, request: JudgeRequest) -> JudgeResult: ...


@dataclass(frozen=True)
class Label:
    """The final, position-debiased label of one comparison, with its provenance and cost."""

    comparison_id: str
    choice: Choice
    confidence: float
    consistent: bool
    rationale: str
    judge: str
    provider: str
    model: str
    rubric_version: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float  # everything spent on this comparison, including judges that failed before
    latency_s: float
    cached: bool
    batch: bool
    verdicts: tuple[Verdict, Verdict]  # (order "ab", order "ba")
    fallbacks: tuple[JudgeFailure, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelFailure:
    """Every judge in the chain failed for this comparison; it stays unlabeled for a later run."""

    comparison_id: str
    failures: tuple[JudgeFailure, ...]
    cost_usd: float = 0.0

    @property
    def reason(self) -> str:
        return "; ".join(f"{f.judge}: {f.kind} ({f.message})" for f in self.failures) or "no judge configured"


LabelResult = Label | LabelFailure
