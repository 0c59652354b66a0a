"""Decision types: what a policy decides, declared in YAML.

A decision type is either a finite action set (``kind: action``, e.g. which team gets a support ticket) or free
text (``kind: text``, e.g. a support reply draft). Each declares the JSON schema of the context an application
sends and a prompt template (system + user message, ``str.format`` syntax with the context's fields; ``{actions}``
renders one ``id: description`` line per action, ``{action_names}`` the ids as "a, b or c"). Adding a decision type is configuration: drop a YAML file in
a directory and load it; no code changes.

The built-in types live next to this module in ``decision_types/`` (ticket-routing, content).

Every decision type bounds what reaches the prompt in tokens (``limits``, see :class:`PromptLimits`; defaults
apply to a type that says nothing): each context field is cut to its token budget, and a prompt still longer than
``max_prompt_tokens`` is refused. Counting needs the policy's tokenizer, so ``messages`` takes a ``fit`` function
from the backend; without one, fields are not cut.

This module does not render chat templates (that belongs to a backend, which knows its tokenizer) and does not
decide anything; it only validates contexts and turns them into chat messages.

Example:
    >>> dt = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    >>> messages = dt.messages({"subject": "Refund", "body": "I was charged twice.", "customer": {"tier": "vip"}})
    >>> messages[0]["role"], dt.action_ids[:2]
    ('system', ('billing', 'technical'))
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BUILTIN_DIR = Path(__file__).with_name("decision_types")
"""Directory holding the decision types shipped with Arbiter."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ACTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DecisionTypeError(ValueError):
    """A decision type file is malformed, or a context does not match its schema."""


class PromptTooLong(DecisionTypeError):
    """A request's rendered prompt exceeds its decision type's ``limits.max_prompt_tokens`` (fields already cut)."""


class ActionSpec(BaseModel):
    """One allowed action of a finite decision type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Short identifier; also the text the policy model is scored on.")
    description: str = Field(default="", description="What the action covers; shown to the model in the prompt.")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ACTION_RE.match(value):
            raise ValueError(f"action id {value!r} must be 1-64 chars of letters, digits, '_', '-' or '.'")
        return value


class PromptSpec(BaseModel):
    """The chat messages a policy sees; both templates use ``str.format`` fields from the context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = ""
    user: str


class PromptLimits(BaseModel):
    """How much of a request may reach the policy model, in the policy tokenizer's tokens, and how long it may run.

    A field longer than its budget is cut to its first tokens rather than refused: a long ticket or message is
    legitimate (an application cannot always shorten a customer's email) and its head carries the decision, so
    cutting keeps it servable while bounding its cost. A prompt longer than ``max_prompt_tokens`` after that is
    refused (422): it can only come from many fields or a template that does not fit its own budget. A value
    that is never legitimately long (a language tag, say) belongs under the context schema's ``maxLength``, so
    that it is refused with the schema's message instead of cut.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_field_tokens: int = Field(default=512, ge=1, le=32_768,
                                  description="Budget of each context field in the prompt (tokens); longer values are cut.")
    field_tokens: dict[str, int] = Field(default_factory=dict,
                                         description="Budgets of single fields by dotted path, e.g. customer.language: 8.")
    max_prompt_tokens: int = Field(default=1024, ge=16, le=131_072,
                                   description="Largest rendered prompt (tokens) after fields are cut; longer ones get 422.")
    max_new_tokens: int = Field(default=512, ge=1, le=4096,
                                description="Most tokens one request may generate (a chat request's max_tokens is capped to it).")
    max_generation_s: float = Field(default=30.0, gt=0, le=600,
                                    description="Wall-clock cap of one generation call (text decisions, chat); the text so far is kept.")

    @field_validator("field_tokens")
    @classmethod
    def _check_budgets(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"field token budgets must be positive integers: {bad}")
        return value

    def field_budget(self, path: str) -> int:
        return self.field_tokens.get(path, self.max_field_tokens)


class DecisionType(BaseModel):
    """A validated decision type. Build it with :func:`load_decision_type` or ``DecisionType(**mapping)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["action", "text"]
    description: str = ""
    actions: tuple[ActionSpec, ...] = ()
    context_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    prompt: PromptSpec
    max_new_tokens: int = Field(default=128, ge=1, le=4096, description="Length cap for text decisions.")
    limits: PromptLimits = Field(default_factory=PromptLimits, description="Token and time bounds of one request.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"decision type name {value!r} must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("context_schema")
    @classmethod
    def _check_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"context_schema is not a valid JSON schema: {exc.message}") from exc
        return value

    @model_validator(mode="after")
    def _check_actions(self) -> DecisionType:
        ids = [a.id for a in self.actions]
        if self.kind == "action" and len(ids) < 2:
            raise ValueError(f"decision type {self.name!r}: an action decision needs at least two actions")
        if self.kind == "text" and ids:
            raise ValueError(f"decision type {self.name!r}: a text decision must not declare actions")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"decision type {self.name!r}: duplicate action ids {duplicates}")
        if self.max_new_tokens > self.limits.max_new_tokens:
            raise ValueError(f"decision type {self.name!r}: max_new_tokens {self.max_new_tokens} exceeds "
                             f"limits.max_new_tokens {self.limits.max_new_tokens}")
        return self

    @property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.actions)

    @staticmethod
    def user_text(context: Mapping[str, Any]) -> str:
        """The user-written text of a context: every top-level string field, one per line. Moderation reads it,
        reward models score an action against it, and a decision becomes a labelling task with it as the prompt."""
        return "\n".join(str(v) for v in context.values() if isinstance(v, str))

    def validate_context(self, context: Mapping[str, Any]) -> None:
        """Raise :class:`DecisionTypeError` naming the offending field when ``context`` breaks the schema."""
        validator = jsonschema.Draft202012Validator(self.context_schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(context)))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "<root>"
            raise DecisionTypeError(f"{self.name}: context field {where}: {error.message}")

    def render_actions(self, allowed: Iterable[str] | None = None) -> str:
        """One ``id: description`` line per action (restricted to ``allowed`` when given), in declared order."""
        keep = None if allowed is None else set(allowed)
        lines = []
        for action in self.actions:
            if keep is None or action.id in keep:
                lines.append(f"{action.id}: {action.description}" if action.description else action.id)
        return "\n".join(lines)

    def messages(self, context: Mapping[str, Any], *, validate: bool = True,
                 fit: Callable[[str, int], str] | None = None) -> list[dict[str, str]]:
        """The chat messages (system, user) for ``context``.

        The prompt always lists every declared action, masked or not: masking is applied to the probabilities,
        and keeping the prompt independent of the mask keeps one cached scoring pass valid for any mask.
        With ``fit(text, n)`` (the backend's: ``text`` cut to at most ``n`` tokens), every field taken from the
        context is cut to its budget in ``limits``.
        """
        if validate:
            self.validate_context(context)
        fields = _Lenient(context)
        fields["actions"] = self.render_actions()
        names = list(self.action_ids)
        fields["action_names"] = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
        try:
            if fit is None:
                system = self.prompt.system.format_map(fields)
                user = self.prompt.user.format_map(fields)
            else:
                formatter = _FittingFormatter(fit, self.limits, frozenset(context))
                system = formatter.vformat(self.prompt.system, (), fields)
                user = formatter.vformat(self.prompt.user, (), fields)
        except (AttributeError, IndexError, ValueError) as exc:
            raise DecisionTypeError(f"{self.name}: prompt template cannot be filled: {exc}") from exc
        out = [{"role": "system", "content": system}] if system else []
        out.append({"role": "user", "content": user})
        return out


class _Budgeted:
    """A template field's value with its dotted path, on its way through ``_FittingFormatter``."""

    __slots__ = ("path", "value")

    def __init__(self, path: str, value: Any):
        self.path, self.value = path, value


class _FittingFormatter(string.Formatter):
    """``str.format_map`` semantics, except that each field taken from the context is cut to its token budget."""

    def __init__(self, fit: Callable[[str, int], str], limits: PromptLimits, context_keys: frozenset[str]):
        self.fit, self.limits, self.context_keys = fit, limits, context_keys

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        value, first = super().get_field(field_name, args, kwargs)
        return _Budgeted(re.sub(r"\[([^\]]*)\]", r".\1", field_name), value), first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if isinstance(value, _Budgeted):
            return _Budgeted(value.path, super().convert_field(value.value, conversion))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        if not isinstance(value, _Budgeted):
            return super().format_field(value, format_spec)
        text = super().format_field(value.value, format_spec)
        if value.path.split(".", 1)[0] not in self.context_keys:  # {actions}, {action_names}, absent fields
            return text
        return self.fit(text, self.limits.field_budget(value.path))


class _Lenient(dict):
    """Context mapping for templates: optional fields that are absent render as empty text, nested dicts too.

    Required fields are enforced by the JSON schema before rendering, so leniency here only affects optional ones.
    """

    def __init__(self, data: Mapping[str, Any]):
        super().__init__({k: _Lenient(v) if isinstance(v, Mapping) else v for k, v in data.items()})

    def __missing__(self, key: str) -> str:
        return ""


def load_decision_type(path: str | Path) -> DecisionType:
    """Load and validate one decision type YAML file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DecisionTypeError(f"decision type file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise DecisionTypeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DecisionTypeError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return DecisionType(**raw)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise DecisionTypeError(f"{path}: {exc}") from exc


def load_decision_types(*directories: str | Path) -> dict[str, DecisionType]:
    """All ``*.yaml``/``*.yml`` decision types in ``directories`` (the built-in ones when none given), by name.

    A later directory may not silently redefine a name from an earlier one: duplicates are an error.
    """
    found: dict[str, DecisionType] = {}
    origin: dict[str, Path] = {}
    for directory in directories or (BUILTIN_DIR,):
        directory = Path(directory)
        if not directory.is_dir():
            raise DecisionTypeError(f"decision type directory not found: {directory}")
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            dt = load_decision_type(path)
            if dt.name in found:
                raise DecisionTypeError(f"decision type {dt.name!r} defined twice: {origin[dt.name]} and {path}")
            found[dt.name], origin[dt.name] = dt, path
    return found


def deployment_decision_types(extra_dir: str | Path | None = None) -> dict[str, DecisionType]:
    """The decision types a deployment serves and trains: the shipped ones plus ``extra_dir``
    (``ARBITER_DECISION_TYPES_DIR``), loaded once per directory. Serving, training and the review queue all
    ask this one function, so a type defined only in ``extra_dir`` is known to each of them."""
    return dict(_deployment_types(Path(extra_dir).resolve() if extra_dir else None))


@lru_cache(maxsize=8)
def _deployment_types(extra_dir: Path | None) -> dict[str, DecisionType]:
    return load_decision_types(BUILTIN_DIR, *([extra_dir] if extra_dir else []))
