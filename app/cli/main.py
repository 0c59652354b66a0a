"""Entry point of the `arbiter` command.

Shared command groups (``train``, ``eval``, ``policy``, ``argilla``, ``review``, ``models``) are made
here; every module in ``app/cli`` that defines ``register(cli, groups)`` adds its commands to the
root or to a group, so a new area of the CLI needs no edit in this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import app.cli as cli_pkg
from app.settings import SettingsRefused

GROUPS = {
    "train": "Train reward models and policies.",
    "eval": "Evaluate judges and reward models.",
    "models": "The reward-model registry.",
    "policy": "Policy rollout: shadow, canary, promote, rollback.",
    "argilla": "Human annotation in Argilla.",
    "review": "The trust-and-safety review queue.",
    "safety": "The safety layer: measure moderation on your own labelled texts.",
}


def build_cli() -> typer.Typer:
    cli = typer.Typer(name="arbiter", help="Arbiter: learn from human and AI feedback and act on it safely.",
                      no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    groups = {name: typer.Typer(help=doc, no_args_is_help=True) for name, doc in GROUPS.items()}
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in ("main", "common"):
            continue
        module = importlib.import_module(f"{cli_pkg.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(cli, groups)
    for name, group in groups.items():
        if group.registered_commands or group.registered_groups:
            cli.add_typer(group, name=name)
    return cli


def main() -> None:
    try:
        build_cli()()
    except SettingsRefused as exc:
        # One line naming the settings, no traceback: a traceback would print values, some of them secrets.
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
