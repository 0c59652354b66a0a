"""Shared helpers of the CLI commands: settings + engine, output as text or JSON, errors."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import Engine

from app.db import get_engine, upgrade_schema
from app.errors import ArbiterError
from app.settings import Settings, get_settings

__all__ = ["cli_context", "emit", "fail", "handle_errors", "lazy_module", "resolve_recipe", "JsonOpt", "SHIPPED_RECIPES"]

JsonOpt = typer.Option(False, "--json", help="Print one JSON object instead of text.")
SHIPPED_RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def resolve_recipe(recipe: Path | str) -> Path:
    """A recipe file: a path that exists, else a shipped recipe by name (``dpo_content``, ``dpo_content.yaml`` or
    ``recipes/dpo_content.yaml``), so the README's commands work from any directory."""
    path = Path(recipe)
    if path.is_file():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    shipped = SHIPPED_RECIPES / name
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in SHIPPED_RECIPES.glob("*.yaml")))
    raise ArbiterError(f"recipe {recipe} does not exist (neither as a file nor as a shipped recipe: {known})",
                       code="bad_recipe", status=422)


class lazy_module:  # noqa: N801 - stands in for a module name
    """A module imported on first attribute access.

    Building the CLI imports every command module; a service that pulls in torch, transformers,
    sklearn or the Argilla SDK at import would make every call, ``--help`` included, pay for them
    (seconds each). ``svc = lazy_module("app.services.models.policies")`` keeps ``svc.promote(...)`` as it
    reads, and imports the module only when a command that uses it runs.
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


def cli_context(migrate: bool = True) -> tuple[Settings, Engine]:
    """Settings and the engine, with the schema brought up to date (cheap when it already is)."""
    settings = get_settings()
    engine = get_engine(settings)
    if migrate:
        upgrade_schema(engine)
    return settings, engine


def _default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def emit(obj: Any, as_json: bool, text: str | Callable[[], str] | None = None) -> None:
    """Print ``obj`` as one JSON line, or ``text`` (default: a readable rendering of obj)."""
    if as_json:
        sys.stdout.write(json.dumps(obj, default=_default, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    if callable(text):
        text = text()
    if text is None:
        text = json.dumps(obj, default=_default, indent=2, ensure_ascii=False)
    typer.echo(text)


def fail(message: str, code: int = 1, as_json: bool = False, error_code: str = "error") -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": {"code": error_code, "message": message}}) + "\n")
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: Callable) -> Callable:
    """Turn ArbiterError into a clear message and exit code 2 instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ArbiterError as exc:
            fail(exc.message, code=2, as_json=bool(kwargs.get("as_json")), error_code=exc.code)

    return wrapper
