"""Token bounds of a decision type: each context field reaches the prompt cut to its budget, in the policy
tokenizer's tokens, for every decision type (a user-defined one without ``limits`` gets the defaults)."""

from __future__ import annotations

import pytest

from policies.action_policy import ActionPolicy, bounded_prompt, check_prompt
from policies.backends.base import approx_count_tokens, approx_fit_tokens
from policies.backends.local import TransformersBackend, fit_with_tokenizer
from policies.decision_types import BUILTIN_DIR, DecisionType, PromptLimits, PromptTooLong, load_decision_type


@pytest.fixture(scope="module")
def backend(tiny_causal_lm):
    model, tokenizer = tiny_causal_lm
    return TransformersBackend(model, tokenizer, name="tiny")


def _tokens(backend, text: str) -> int:
    return backend.count_tokens(text)


@pytest.mark.parametrize("text", ["word " * 5000, "\U0001F600" * 3000, "x" * 200_000, "short"])
def test_fit_keeps_the_longest_head_within_budget(backend, text):
    """The cut is a head of the original characters (no decode round trip) of at most n tokens; a value that fits
    comes back unchanged; a 200 KB run of one letter costs no more than a short value (pre-cut by characters)."""
    for n in (1, 7, 64):
        cut = fit_with_tokenizer(backend.tokenizer, text, n)
        assert text.startswith(cut) and _tokens(backend, cut) <= n
        if _tokens(backend, text) <= n:
            assert cut == text
        else:
            assert _tokens(backend, cut) >= n - 2  # the longest head, up to a token merging across the cut


def test_every_field_is_cut_to_its_budget_and_the_template_is_not(backend):
    """ticket-routing gives customer.language 12 tokens, subject 96 and every other field 512: a 20 KB body reaches
    the prompt as its first 512 tokens; the actions listed by the template are never cut."""
    dt = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    # Legal by the schema (subject <= 300 characters, body <= 8000, language <= 35) and as costly as it gets:
    # an emoji is three tokens, so the subject alone would be 900.
    ctx = {"subject": "\U0001F600" * 300, "body": "charged twice " * 570, "customer": {"tier": "vip", "language": "en-GB" * 7}}
    dt.validate_context(ctx)
    messages = dt.messages(ctx, validate=False, fit=backend.fit_tokens)
    user = messages[1]["content"]
    subject = user.split("Subject: ", 1)[1].split("\n", 1)[0]
    body = user.split("\n", 2)[2]
    language = user.split("\n", 1)[0].split(", ", 1)[1]
    assert _tokens(backend, subject) <= 96 and _tokens(backend, body) <= 512 and _tokens(backend, language) <= 12
    assert ctx["body"].startswith(body) and len(body) > 1000
    assert dt.render_actions() in messages[0]["content"]
    assert _tokens(backend, bounded_prompt(dt, backend, ctx)) < dt.limits.max_prompt_tokens


def test_a_type_without_limits_gets_the_defaults_and_short_contexts_are_untouched(backend):
    dt = DecisionType(name="custom", kind="action", actions=[{"id": "a"}, {"id": "b"}],
                      prompt={"user": "{note} / {meta[who]!r:>3}"})
    assert dt.limits == PromptLimits() and dt.limits.max_field_tokens == 512 and dt.limits.max_prompt_tokens == 1024
    short = {"note": "hello", "meta": {"who": "me"}}
    assert dt.messages(short, fit=backend.fit_tokens) == dt.messages(short)  # same rendering as format_map
    long = dt.messages({"note": "n " * 5000, "meta": {"who": "w " * 5000}}, fit=backend.fit_tokens)[0]["content"]
    assert _tokens(backend, long) <= 2 * 512 + 8


def test_a_prompt_over_the_limit_is_refused(backend):
    dt = DecisionType(name="custom", kind="action", actions=[{"id": "a"}, {"id": "b"}], prompt={"user": "{x} {y} {z}"},
                      limits={"max_field_tokens": 40, "max_prompt_tokens": 64})
    policy = ActionPolicy(dt, backend)
    assert check_prompt(dt, backend, policy.checked_prompt({"x": "a", "y": "b", "z": "c"})) < 64
    with pytest.raises(PromptTooLong, match="limit is 64"):
        policy.checked_prompt({"x": "word " * 100, "y": "word " * 100, "z": "word " * 100})


def test_limits_are_validated():
    with pytest.raises(ValueError, match="positive"):
        PromptLimits(field_tokens={"a": 0})
    with pytest.raises(ValueError, match="exceeds"):
        DecisionType(name="t", kind="text", prompt={"user": "{m}"}, max_new_tokens=600, limits={"max_new_tokens": 512})


def test_estimates_without_a_tokenizer():
    """A remote backend has no tokenizer in process: 3 bytes count as one token, and the cut keeps whole characters."""
    assert approx_count_tokens("abcdef") == 2 and approx_count_tokens("abcdefg") == 3
    cut = approx_fit_tokens("\u00e9" * 100, 5)  # 2 bytes each: 15 bytes allow 7 characters
    assert cut == "\u00e9" * 7 and approx_count_tokens(cut) <= 5
