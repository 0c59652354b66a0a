"""Decision types: what a policy decides, declared in YAML.

A decision type is either a finite action set (``kind: action``, e.g. which team gets a support ticket) or free
text (``kind: text``, e.g. a support reply draft). Each declares the JSON schema of the context an application
sends and a prompt template (system + user message, ``str.format`` syntax with the context's fields; ``{actions}``
renders one ``id: description`` line per action, ``{action_names}`` the ids as "a, b or c"). Adding a decision type is configuration: drop a YAML file in
a directory and load it; no code changes.

The built-in types live next to this module in ``decision_types/`` (ticket-routing, content).

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
from collections.abc import Iterable, Mapping
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

    def messages(self, context: Mapping[str, Any], *, validate: bool = True) -> list[dict[str, str]]:
        """The chat messages (system, user) for ``context``.

        The prompt always lists every declared action, masked or not: masking is applied to the probabilities,
        and keeping the prompt independent of the mask keeps one cached scoring pass valid for any mask.
        """
        if validate:
            self.validate_context(context)
        fields = _Lenient(context)
        fields["actions"] = self.render_actions()
        names = list(self.action_ids)
        fields["action_names"] = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
        try:
            system = self.prompt.system.format_map(fields)
            user = self.prompt.user.format_map(fields)
        except (AttributeError, IndexError, ValueError) as exc:
            raise DecisionTypeError(f"{self.name}: prompt template cannot be filled: {exc}") from exc
        out = [{"role": "system", "content": system}] if system else []
        out.append({"role": "user", "content": user})
        return out


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
