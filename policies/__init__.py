"""Policies: decide (pick an action with an exact propensity, or draft text), learn (DPO, GRPO/RLOO against a
reward model), evaluate off-policy, and roll out safely (shadow, canary, rollback).

Modules, one concept each:

- ``decision_types``: what is decided, declared in YAML (finite action set or free text);
- ``backends``: where the model runs (in-process transformers, or an OpenAI-compatible server);
- ``propensity``: softmax / temperature / exploration floor / mask -> exact probabilities;
- ``action_policy``: ``ActionPolicy`` (score every action, sample, log the propensity) and ``TextPolicy``;
- ``preference_data``, ``dpo``, ``online_rl``, ``training``, ``recipes``: pairs, recipes and training runs
  with lineage;
- ``simulator``: seeded ticket-routing simulator with known expected rewards;
- ``rollout``: lifecycle states, sticky split, canary rollback rule, promotion gate;
- ``ope``: IPS, SNIPS and doubly robust estimates with bootstrap intervals;
- ``evaluation``: accuracy, win rate, KL to the reference.

The training modules (``dpo``, ``online_rl``) are not imported here: they pull in TRL; import them directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and readers; at run time the names below load on first use
    from policies.action_policy import ActionDecision, ActionPolicy, TextDraft, TextPolicy
    from policies.backends import (
        BackendSpec,
        OpenAICompatibleBackend,
        PolicyBackend,
        TransformersBackend,
        load_backend,
    )
    from policies.canary import MetricTest, analyse_canary
    from policies.decision_types import (
        BUILTIN_DIR,
        ActionSpec,
        DecisionType,
        DecisionTypeError,
        load_decision_type,
        load_decision_types,
    )
    from policies.drift import Reading, Record, compare_windows
    from policies.evaluation import (
        greedy_accuracy,
        kl_to_reference,
        policy_probabilities,
        score_all,
        win_rate,
    )
    from policies.ope import (
        Estimate,
        LoggedDecisions,
        OPEReport,
        context_features,
        doubly_robust,
        evaluate,
        fit_reward_model,
        ips,
        snips,
    )
    from policies.preference_data import (
        DPOExample,
        LoggedOutcome,
        examples_from_preference_pairs,
        pairs_from_action_values,
        pairs_from_outcomes,
    )
    from policies.propensity import AllActionsMaskedError, action_probabilities, rng_for, sample_action
    from policies.recipes import Recipe, RecipeError, load_recipe
    from policies.rollout import (
        ArmStats,
        CanaryThresholds,
        CanaryVerdict,
        Change,
        PolicyState,
        Rollout,
        RolloutError,
        Route,
        canary_verdict,
        check_transition,
        ope_gate,
        plan_rollback,
        plan_transition,
        route,
    )
    from policies.simulator import TEAMS, Outcome, Ticket, TicketSimulator
    from policies.training import Lineage, LoraSpec, TrainingResult

__all__ = [
    "BUILTIN_DIR",
    "TEAMS",
    "ActionDecision",
    "ActionPolicy",
    "ActionSpec",
    "AllActionsMaskedError",
    "ArmStats",
    "BackendSpec",
    "CanaryThresholds",
    "CanaryVerdict",
    "Change",
    "DPOExample",
    "DecisionType",
    "DecisionTypeError",
    "Estimate",
    "Lineage",
    "LoggedDecisions",
    "LoggedOutcome",
    "LoraSpec",
    "MetricTest",
    "OPEReport",
    "OpenAICompatibleBackend",
    "Outcome",
    "PolicyBackend",
    "PolicyState",
    "Recipe",
    "RecipeError",
    "Reading",
    "Record",
    "Rollout",
    "RolloutError",
    "Route",
    "TextDraft",
    "TextPolicy",
    "Ticket",
    "TicketSimulator",
    "TrainingResult",
    "TransformersBackend",
    "action_probabilities",
    "analyse_canary",
    "canary_verdict",
    "check_transition",
    "compare_windows",
    "context_features",
    "doubly_robust",
    "evaluate",
    "examples_from_preference_pairs",
    "fit_reward_model",
    "greedy_accuracy",
    "ips",
    "kl_to_reference",
    "load_backend",
    "load_decision_type",
    "load_decision_types",
    "load_recipe",
    "ope_gate",
    "pairs_from_action_values",
    "pairs_from_outcomes",
    "plan_rollback",
    "plan_transition",
    "policy_probabilities",
    "rng_for",
    "route",
    "sample_action",
    "score_all",
    "snips",
    "win_rate",
]

# name -> submodule, imported on first use so that importing one light module (say ``policies.action_policy``)
# does not load torch, transformers or a provider SDK through this package face.
_LAZY = {
    "ActionDecision": "action_policy",
    "ActionPolicy": "action_policy",
    "TextDraft": "action_policy",
    "TextPolicy": "action_policy",
    "BackendSpec": "backends",
    "OpenAICompatibleBackend": "backends",
    "PolicyBackend": "backends",
    "TransformersBackend": "backends",
    "load_backend": "backends",
    "BUILTIN_DIR": "decision_types",
    "ActionSpec": "decision_types",
    "DecisionType": "decision_types",
    "DecisionTypeError": "decision_types",
    "load_decision_type": "decision_types",
    "load_decision_types": "decision_types",
    "greedy_accuracy": "evaluation",
    "kl_to_reference": "evaluation",
    "policy_probabilities": "evaluation",
    "score_all": "evaluation",
    "win_rate": "evaluation",
    "Estimate": "ope",
    "LoggedDecisions": "ope",
    "OPEReport": "ope",
    "context_features": "ope",
    "doubly_robust": "ope",
    "evaluate": "ope",
    "fit_reward_model": "ope",
    "ips": "ope",
    "snips": "ope",
    "DPOExample": "preference_data",
    "LoggedOutcome": "preference_data",
    "examples_from_preference_pairs": "preference_data",
    "pairs_from_action_values": "preference_data",
    "pairs_from_outcomes": "preference_data",
    "AllActionsMaskedError": "propensity",
    "action_probabilities": "propensity",
    "rng_for": "propensity",
    "sample_action": "propensity",
    "Recipe": "recipes",
    "RecipeError": "recipes",
    "load_recipe": "recipes",
    "MetricTest": "canary",
    "Reading": "drift",
    "Record": "drift",
    "compare_windows": "drift",
    "analyse_canary": "canary",
    "ArmStats": "rollout",
    "CanaryThresholds": "rollout",
    "CanaryVerdict": "rollout",
    "Change": "rollout",
    "PolicyState": "rollout",
    "Rollout": "rollout",
    "RolloutError": "rollout",
    "Route": "rollout",
    "canary_verdict": "rollout",
    "check_transition": "rollout",
    "ope_gate": "rollout",
    "plan_rollback": "rollout",
    "plan_transition": "rollout",
    "route": "rollout",
    "TEAMS": "simulator",
    "Outcome": "simulator",
    "Ticket": "simulator",
    "TicketSimulator": "simulator",
    "Lineage": "training",
    "LoraSpec": "training",
    "TrainingResult": "training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
