"""The configuration table of README.md, generated from ``Settings`` (so the two cannot drift).

    .venv/bin/python -m app.settings_doc   # prints the markdown table
"""

from __future__ import annotations

from app.settings import Settings


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default in ("", None) else f"`{default}`"
        if name in ("secret_key", "openai_api_key", "anthropic_api_key", "langfuse_secret_key", "argilla_api_key"):
            shown = "" if not default else "`change-me` (refused in production)"
        rows.append(f"| `ARBITER_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
