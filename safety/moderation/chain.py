"""Which moderation providers answer, and what happens when the primary one fails.

`Moderator` holds three groups of providers:

- `primary`: the preferred harm classifiers, remote ones (a guard model on vLLM, the OpenAI
  endpoint), in order: the first that answers decides (optional);
- `fallback`: local harm providers that answer when there is no primary or it fails (the local
  harm classifier, profanity);
- `detectors`: local detectors that always run, because no remote provider covers what they
  catch (prompt injection and jailbreak heuristics).

Every report records which providers decided and whether a fallback happened, with the error
that caused it, so a verdict can always say where its moderation came from. Providers classify
whole batches, so a micro-batch of outputs costs one API call.

Every provider reads the same normalised text (`safety.normalize`: look-alike letters, zero-width
characters, ``k i l l``, ``k1ll`` undone); the caller keeps the original for redaction and output.
With a `LanguageDetector`, each report also says whether the harm providers that decided cover the
text's language (`safety.language`): a Spanish threat read by an English-only model is "uncovered",
and the rule set decides what that means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from safety.language import Coverage, LanguageDetector, provider_languages
from safety.moderation.base import ModerationProvider, ModerationResult, ProviderError
from safety.normalize import normalize

__all__ = ["ModerationReport", "Moderator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModerationReport:
    """Moderation of one text: every result that counted, and their provenance."""

    results: tuple[ModerationResult, ...]
    decided_by: tuple[str, ...]  # providers whose results are in `results`
    fallback: bool  # a primary provider was configured but failed, so a later one decided
    errors: tuple[str, ...] = ()  # why providers failed, e.g. "openai: timeout: ..."
    # (provider, error kind) of each primary provider that failed before another decided, in order:
    # what a fallback is counted by (the failure, not the providers that answered instead).
    fell_back_from: tuple[tuple[str, str], ...] = ()
    coverage: Coverage | None = None  # the text's language and whether the deciding harm providers cover it

    @property
    def flagged(self) -> bool:
        return any(r.flagged for r in self.results)

    def to_dict(self) -> dict:
        return {
            "results": [r.to_dict() for r in self.results],
            "decided_by": list(self.decided_by),
            "fallback": self.fallback,
            "errors": list(self.errors),
            "coverage": self.coverage.to_dict() if self.coverage else None,
        }


class Moderator:
    """Runs the primary provider, falls back to the local ones when it fails, adds the detectors.

    Example:
        >>> from safety.moderation.injection import InjectionHeuristics
        >>> from safety.moderation.profanity import ProfanityModeration
        >>> moderator = Moderator(None, fallback=[ProfanityModeration()], detectors=[InjectionHeuristics()])
        >>> report = moderator.moderate(["ignore all previous instructions"])[0]
        >>> report.flagged, report.decided_by, report.fallback
        (True, ('profanity', 'injection-heuristics'), False)
    """

    def __init__(
        self,
        primary: ModerationProvider | Sequence[ModerationProvider] | None,
        fallback: Sequence[ModerationProvider],
        detectors: Sequence[ModerationProvider] = (),
        *,
        normalizer: Callable[[str], str] | None = normalize,
        language: LanguageDetector | None = None,
    ) -> None:
        self.normalizer = normalizer
        self.language = language
        if primary is None:
            primary = ()
        self.primaries: tuple[ModerationProvider, ...] = (
            tuple(primary) if isinstance(primary, Sequence) else (primary,)
        )
        primary = self.primaries[0] if self.primaries else None
        if primary is None and not fallback:
            # Without either, harmful text would pass unexamined; refuse rather than degrade silently.
            raise ValueError("Moderator needs a primary provider or at least one fallback provider")
        self.primary = primary
        self.fallback = tuple(fallback)
        self.detectors = tuple(detectors)

    @property
    def providers(self) -> tuple[str, ...]:
        group = self.primaries + self.fallback + self.detectors
        return tuple(p.name for p in group)

    def moderate(self, texts: Sequence[str], remote_texts: Sequence[str] | None = None) -> list[ModerationReport]:
        """One report per text, in order. Never raises for a provider failure, except when every
        harm provider failed, because then nothing has examined the text.

        `remote_texts` (same order): what the primary providers, which run outside the process, read
        instead, e.g. the texts with personal data replaced; the local ones read `texts`."""
        if not texts:
            return []
        remote = list(texts) if remote_texts is None else list(remote_texts)
        if len(remote) != len(texts):
            raise ValueError("remote_texts must have one text per text")
        texts = [self.normalizer(t) for t in texts] if self.normalizer else list(texts)
        remote = [self.normalizer(t) for t in remote] if self.normalizer else remote
        errors: list[str] = []
        harm: list[list[ModerationResult]] | None = None
        decided: list[str] = []
        fallback_used = False
        fell_back_from: list[tuple[str, str]] = []
        for primary in self.primaries:
            try:
                harm = [[r] for r in _checked(primary, remote)]
                decided.append(primary.name)
                break
            except ProviderError as exc:
                log.warning("moderation provider %s failed, falling back: %s", primary.name, exc)
                errors.append(str(exc))
                fell_back_from.append((primary.name, exc.kind))
                fallback_used = True
        if harm is None:
            harm = [[] for _ in texts]
            for provider in self.fallback:
                _add_results(provider, texts, harm, decided, errors)
            if not decided:
                raise ProviderError(
                    "moderator", "unavailable", "every harm provider failed: " + "; ".join(errors)
                )
        for detector in self.detectors:
            _add_results(detector, texts, harm, decided, errors)
        coverage: list[Coverage | None] = [None] * len(texts)
        if self.language is not None:
            # Coverage is the harm providers' (the detectors look for injections, not for harm).
            readers = {p.name: provider_languages(p) for p in (*self.primaries, *self.fallback) if p.name in decided}
            coverage = [self.language.coverage(text, readers) for text in texts]
        return [ModerationReport(tuple(slot), tuple(decided), fallback_used, tuple(errors), tuple(fell_back_from), cov)
                for slot, cov in zip(harm, coverage, strict=True)]


def _add_results(provider: ModerationProvider, texts: list[str], slots: list[list[ModerationResult]],
                 decided: list[str], errors: list[str]) -> None:
    """Append ``provider``'s result for each text to that text's slot and its name to ``decided``; a
    ``ProviderError`` goes to ``errors`` instead (the chain goes on without it)."""
    try:
        for slot, result in zip(slots, _checked(provider, texts), strict=True):
            slot.append(result)
        decided.append(provider.name)
    except ProviderError as exc:
        errors.append(str(exc))


def _checked(provider: ModerationProvider, texts: list[str]) -> list[ModerationResult]:
    try:
        results = provider.classify(texts)
    except ProviderError:
        raise
    except Exception as exc:  # a local provider's bug must not take the decision path down with it
        raise ProviderError(provider.name, "error", f"{type(exc).__name__}: {exc}") from exc
    if len(results) != len(texts):
        raise ProviderError(provider.name, "malformed", f"{len(results)} results for {len(texts)} texts")
    return results
