"""Fixtures for the policies tests: the routing decision type, simulated tickets, tiny-model backends."""

from __future__ import annotations

import copy

import pytest

from policies.backends.local import TransformersBackend
from policies.decision_types import BUILTIN_DIR, load_decision_type
from policies.simulator import TicketSimulator


@pytest.fixture(scope="session")
def routing_type():
    return load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")


@pytest.fixture(scope="session")
def content_type():
    return load_decision_type(BUILTIN_DIR / "content.yaml")


@pytest.fixture(scope="session")
def tickets():
    return TicketSimulator(seed=3).tickets(24)


@pytest.fixture
def tiny_model(tiny_causal_lm):
    """A private copy of the session's tiny Llama (training mutates models in place)."""
    model, tokenizer = tiny_causal_lm
    return copy.deepcopy(model), tokenizer


@pytest.fixture
def tiny_backend(tiny_causal_lm):
    model, tokenizer = tiny_causal_lm
    return TransformersBackend(model, tokenizer, name="tiny", batch_size=4)

