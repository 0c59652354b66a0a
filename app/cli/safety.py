"""`arbiter safety eval`: the safety layer's moderation measured on a team's own labelled texts.

Commands join the shared `safety` group in `register`; a new one is a function plus one line there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from app.cli.common import JsonOpt, emit, handle_errors
from app.errors import InvalidInput
from app.settings import get_settings

BATCH = 32  # texts per moderator call: one remote request per batch for OpenAI, concurrent ones for a guard


def _progress(message: str) -> None:
    typer.echo(message, err=True)


def _finite(value: Any) -> Any:
    """The value with every non-finite float replaced by None, so the output is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _table(out: dict[str, Any]) -> str:
    lines = [
        f"{out['texts']} texts from {out['data']}, moderated as {out['stage']} by {', '.join(out['chain'])}",
        f"decided by: {', '.join(f'{p} ({n})' for p, n in out['decided_by'].items())}; fallbacks: {out['fallbacks']}",
        f"{'category':<24} {'n':>6} {'pos':>5}  {'AUPRC [95% CI]':<24} {'F1 [95% CI]':<24} {'FPR [95% CI]':<24}",
    ]
    for name, m in out["metrics"].items():
        note = "" if m["scored"] else "  (no provider scores this category)"
        lines.append(f"{name:<24} {m['n']:>6} {m['positives']:>5}  {_fmt(m['auprc'], m['auprc_ci']):<24} "
                     f"{_fmt(m['f1'], m['f1_ci']):<24} {_fmt(m['fpr'], m['fpr_ci']):<24}{note}")
    any_unsafe = out["metrics"]["any"]  # evaluation.ANY_UNSAFE, listed first
    lines.append(f"language no deciding provider covers: {any_unsafe['uncovered']} text(s); unsafe texts flagged or "
                 f"marked uncovered: {_fmt(any_unsafe['recall_or_uncovered'])}")
    return "\n".join(lines)


@handle_errors
def safety_eval(
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, readable=True,
                              help='JSON Lines: {"text": ..., "categories": {"hate": true, ...}} or {"text": ..., "flagged": true}.'),
    stage: str = typer.Option("input", help="Read the texts as user input or as generated output (input | output)."),
    bootstrap: int = typer.Option(1000, min=0, max=100_000, help="Bootstrap resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    as_json: bool = JsonOpt,
) -> None:
    """AUPRC, F1 and false-positive rate per category and for "any unsafe", with bootstrap 95% intervals,
    of the moderation chain the decision path uses (same providers, fallback and policy as /v1/moderations)."""
    # The moderation chain loads torch, transformers and sklearn: imported here, not for every `arbiter` call.
    from app.services.serving.moderations import moderate_texts
    from app.services.serving.stack import build_safety_layer
    from safety.moderation.evaluation import ANY_UNSAFE, evaluate_moderation, read_labelled

    if stage not in ("input", "output"):
        raise InvalidInput(f"--stage must be input or output, got {stage!r}")
    try:
        examples = read_labelled(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(str(exc)) from None
    layer = build_safety_layer(get_settings())
    summaries = []
    for start in range(0, len(examples), BATCH):
        batch = examples[start:start + BATCH]
        summaries.extend(moderate_texts(layer, [e.text for e in batch], stage))
        _progress(f"moderated {start + len(batch)}/{len(examples)} texts")
    metrics = evaluate_moderation(examples, summaries, resamples=bootstrap, seed=seed, progress=_progress)
    decided: dict[str, int] = {}
    for s in summaries:
        for provider in s.report.get("decided_by", []):
            decided[provider] = decided.get(provider, 0) + 1
    errors = sorted({e for s in summaries for e in s.report.get("errors", [])})
    out = _finite({
        "data": str(data),
        "texts": len(examples),
        "stage": stage,
        "chain": list(layer.moderator.providers) if layer.moderator else [],
        "decided_by": decided,
        "fallbacks": sum(1 for s in summaries if s.report.get("fallback")),
        "errors": errors[:20],
        "bootstrap": {"resamples": bootstrap, "confidence": 0.95, "seed": seed},
        "metrics": {ANY_UNSAFE: metrics[ANY_UNSAFE], **{k: v for k, v in metrics.items() if k != ANY_UNSAFE}},
    })
    json.dumps(out, allow_nan=False)  # fail here rather than print invalid JSON
    emit(out, as_json, lambda: _table(out))


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["safety"].command("eval")(safety_eval)
