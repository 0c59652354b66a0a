"""LLM/local judge labeling of the store's comparisons: synchronous runs, provider batches, evaluation.

- `run_labeling`: label the comparisons that have no judge label yet with the configured fallback
  chain (`labeling`), committing every few labels (one transaction: labels, job progress, one audit
  entry). Verdicts are cached in `JudgeCacheEntry`, each committed as soon as it is paid for, so a
  run killed at any point and started again labels only the remaining pairs, never duplicates a
  label (unique (comparison, source, producer)) and never pays twice for a verdict.
- `submit_batches` / `collect_batches`: the same through OpenAI's Batch API or Anthropic's Message
  Batches at half price. A comparison in a submitted batch is not submitted again; a collected
  batch is marked so in the same transaction as its labels, so both commands are safe to re-run.
- `evaluate_judge`: agreement of one judge with the human labels of a pairs file.

Configuration comes from `Settings`; the judge chain is `labeling.build_chain`. Local fallback:
the active reward model when there is one, else SmolLM2-135M-Instruct (converted once under
`<var_dir>/models`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import append_audit
from app.db import session_scope
from app.errors import InvalidInput, Unavailable
from app.models import (
    BatchJob,
    Candidate,
    Comparison,
    JudgeCacheEntry,
    Label,
    LabelJob,
    RewardModelVersion,
    Task,
    utcnow,
)
from app.services.labels.jobs import Heartbeat, close_stale_jobs, start_job
from app.settings import Settings
from labeling import (
    AnthropicJudgeConfig,
    Budget,
    ChainConfigError,
    LabelingConfig,
    LabelResult,
    LangfuseConfig,
    OpenAIJudgeConfig,
    RetryPolicy,
    SmolLMJudgeConfig,
    build_chain,
    evaluate_chain,
    label_comparisons,
    load_human_comparisons,
)
from labeling import Comparison as JudgeComparison
from labeling import Label as JudgeLabel
from labeling.batch import (
    BatchError,
    anthropic_batch_status,
    collect_anthropic_batch,
    collect_openai_batch,
    openai_batch_status,
    plan_anthropic_batch,
    plan_openai_batch,
    submit_anthropic_batch,
    submit_openai_batch,
)
from labeling.cost import DEFAULT_PRICES, ModelPrice, PriceTable
from reward_models.pairs import Message, PreferencePair

__all__ = [
    "LabelRunReport",
    "StoreJudgeCache",
    "collect_batches",
    "evaluate_judge",
    "labeling_config",
    "run_labeling",
    "submit_batches",
    "unlabeled_comparisons",
]

JUDGE_SOURCES = ("llm_judge", "local_model")
log = logging.getLogger(__name__)
_CHUNK = 500


class StoreJudgeCache:
    """`labeling.JudgeCache` on the `judge_cache` table; every put commits on its own at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> Mapping[str, Any] | None:
        with Session(self.engine) as session:
            entry = session.get(JudgeCacheEntry, key)
            return entry.result if entry is not None else None

    def put(self, key: str, payload: Mapping[str, Any]) -> None:
        try:
            with session_scope(self.engine) as session:
                session.add(JudgeCacheEntry(key=key, judge=str(payload.get("judge", "")), model=str(payload.get("model", "")),
                                            rubric_version=str(payload.get("rubric_version") or ""), result=dict(payload)))
        except IntegrityError:
            pass  # the same verdict stored by a concurrent run: identical by construction


def _active_scorer(session: Session) -> tuple[Any, str] | None:
    active = session.exec(select(RewardModelVersion).where(RewardModelVersion.status == "active")
                          .order_by(col(RewardModelVersion.created_at).desc())).first()
    if active is None:
        return None
    from reward_models import load_scorer

    try:
        return load_scorer(active.artifact_path), f"{active.name}:{active.id[:8]}"
    except (OSError, ValueError) as exc:  # a broken registry entry must not stop labeling
        log.warning("active reward model %s unusable (%s); the local instruct model is the fallback", active.id, exc)
        return None


def price_table(extra_json: str) -> PriceTable:
    """The default prices, with ARBITER_JUDGE_PRICES ({"model": [input, output] per 1M tokens}) on top."""
    prices = dict(DEFAULT_PRICES)
    if extra_json:
        try:
            for model, (inp, out) in json.loads(extra_json).items():
                prices[model] = ModelPrice(float(inp), float(out))
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"ARBITER_JUDGE_PRICES must be JSON like {{\"gpt-4o-mini\": [0.15, 0.6]}}: {exc}") from None
    return PriceTable(prices)


def labeling_config(settings: Settings, judges: Sequence[str] | None = None, budget_usd: float | None = None,
                    session: Session | None = None) -> LabelingConfig:
    """A `LabelingConfig` from settings: API judges where keys are set, the local fallback, tracing."""
    names = [j.strip() for j in (judges or settings.judge_chain.split(",")) if j.strip()]
    openai = anthropic = smollm = None
    temperature = {} if settings.judge_temperature is None else {"temperature": settings.judge_temperature}
    if budget_usd is None:
        budget_usd = settings.judge_budget_usd
    if settings.openai_api_key:
        openai = OpenAIJudgeConfig(api_key=settings.openai_api_key, model=settings.openai_judge_model,
                                   timeout_s=settings.judge_timeout_s, **temperature,
                                   **({"base_url": settings.openai_base_url} if settings.openai_base_url else {}))
    if settings.anthropic_api_key:
        anthropic = AnthropicJudgeConfig(api_key=settings.anthropic_api_key, model=settings.anthropic_judge_model,
                                         timeout_s=settings.judge_timeout_s, **temperature,
                                         **({"base_url": settings.anthropic_base_url} if settings.anthropic_base_url else {}))
    scorer = _active_scorer(session) if session is not None and {"local", "local-rm"} & set(names) else None
    if scorer is None and {"local", "local-smollm2"} & set(names):
        from reward_models.local_models import SMOLLM2_NAME, smollm2_dir

        # Located (and converted from the packaged GGUF) only if the fallback is ever reached.
        smollm = SmolLMJudgeConfig(model_dir=lambda: smollm2_dir(settings.models_dir), model_name=SMOLLM2_NAME)
    langfuse = None
    if settings.langfuse_enabled and settings.langfuse_host:
        langfuse = LangfuseConfig(settings.langfuse_public_key, settings.langfuse_secret_key, settings.langfuse_host)
    try:
        return LabelingConfig(
            judges=names, openai=openai, anthropic=anthropic, smollm=smollm,
            reward_scorer=scorer[0] if scorer else None, reward_model_name=scorer[1] if scorer else "reward-model",
            budget_usd=budget_usd, retry=RetryPolicy(timeout_s=settings.judge_timeout_s), langfuse=langfuse,
            prices=price_table(settings.judge_prices),
        )
    except ChainConfigError as exc:
        raise InvalidInput(str(exc)) from None


def _prompt_text(messages: list[dict]) -> str:
    # The same plain-text rendering the pair files use (a single user turn as is, else "Human: ...").
    return PreferencePair(tuple(Message(m["role"], m["content"]) for m in messages), "", "").prompt_text()


def _to_judge_comparisons(session: Session, rows: Sequence[Comparison]) -> list[JudgeComparison]:
    out: list[JudgeComparison] = []
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i : i + _CHUNK]
        cand_ids = {x for c in chunk for x in (c.candidate_a_id, c.candidate_b_id)}
        cands = {c.id: c for c in session.exec(select(Candidate).where(col(Candidate.id).in_(cand_ids))).all()}
        tasks = {t.id: t for t in session.exec(select(Task).where(col(Task.id).in_({c.task_id for c in chunk}))).all()}
        out += [JudgeComparison(c.id, _prompt_text(tasks[c.task_id].prompt), cands[c.candidate_a_id].content,
                                cands[c.candidate_b_id].content) for c in chunk]
    return out


def unlabeled_comparisons(session: Session, limit: int | None = None, exclude: set[str] | None = None) -> list[JudgeComparison]:
    """Comparisons without a judge label, highest priority first."""
    judged = exists().where(Label.comparison_id == Comparison.id, col(Label.source).in_(JUDGE_SOURCES))
    query = select(Comparison).where(~judged).order_by(col(Comparison.priority).desc(), Comparison.created_at, Comparison.id)
    rows = [c for c in session.exec(query).all() if not exclude or c.id not in exclude]
    return _to_judge_comparisons(session, rows[:limit] if limit is not None else rows)


def _label_row(label: JudgeLabel, job_id: str | None) -> Label:
    return Label(
        comparison_id=label.comparison_id, choice=label.choice, confidence=label.confidence, rationale=label.rationale,
        source="local_model" if label.provider == "local" else "llm_judge", producer=label.judge, judge=label.judge,
        model=label.model, rubric_version=label.rubric_version, input_tokens=label.input_tokens,
        output_tokens=label.output_tokens, cost_usd=label.cost_usd, latency_ms=label.latency_s * 1000,
        details={"consistent": label.consistent, "cached": label.cached, "batch": label.batch, "job_id": job_id,
                 "verdicts": [{"order": o, "preferred": v.preferred, "confidence": v.confidence, "model": v.model,
                               "cost_usd": v.cost_usd} for o, v in zip(("ab", "ba"), label.verdicts)],
                 "fallbacks": [{"judge": f.judge, "kind": f.kind, "message": f.message} for f in label.fallbacks]},
    )


def store_labels(session: Session, labels: Sequence[JudgeLabel], actor: str, job_id: str | None = None) -> list[str]:
    """Insert labels not already present (one judge label per comparison); returns the stored ids."""
    if not labels:
        return []
    ids = [lb.comparison_id for lb in labels]
    present = set(session.exec(select(Label.comparison_id).where(col(Label.comparison_id).in_(ids),
                                                                 col(Label.source).in_(JUDGE_SOURCES))).all())
    new = [lb for lb in labels if lb.comparison_id not in present]
    session.add_all([_label_row(lb, job_id) for lb in new])
    session.flush()
    if new:
        append_audit(session, actor, "labels.judged", "label_job" if job_id else "batch", job_id or "batch", {
            "n": len(new), "comparison_ids": [lb.comparison_id for lb in new],
            "judges": sorted({lb.judge for lb in new}), "cost_usd": round(sum(lb.cost_usd for lb in new), 8)})
    return [lb.comparison_id for lb in new]


@dataclass
class LabelRunReport:
    job_id: str | None
    selected: int
    labeled: int
    failed: int
    cost_usd: float
    judges: dict[str, Any] = field(default_factory=dict)
    skipped_judges: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    closed_stale_jobs: list[str] = field(default_factory=list)  # earlier runs found killed, now `interrupted`

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_labeling(engine: Engine, settings: Settings, *, judges: Sequence[str] | None = None,
                 budget_usd: float | None = None, limit: int | None = None, concurrency: int | None = None,
                 commit_every: int = 8, actor: str = "cli", progress: bool = False) -> LabelRunReport:
    """Label the unlabeled comparisons (see the module docstring for the crash-safety guarantees)."""
    closed = close_stale_jobs(engine)
    with Session(engine) as session:
        config = labeling_config(settings, judges, budget_usd, session)
        comparisons = unlabeled_comparisons(session, limit)
    if not comparisons:
        return LabelRunReport(None, 0, 0, 0, 0.0, closed_stale_jobs=closed)
    try:
        built = build_chain(config, cache=StoreJudgeCache(engine))
    except ChainConfigError as exc:
        raise Unavailable(str(exc)) from None
    job = start_job(engine, {"judges": built.chain.names, "budget_usd": budget_usd, "limit": limit,
                             "selected": len(comparisons)})
    pending: list[JudgeLabel] = []
    totals = {"stored": 0, "unsaved_cost": 0.0}  # spend (labels and failed pairs) not yet on the job row

    def flush() -> None:
        with session_scope(engine) as session:
            stored = store_labels(session, pending, actor, job.id)
            row = session.get(LabelJob, job.id)
            row.n_done += len(stored)
            row.cost_usd += totals["unsaved_cost"]
        totals["stored"] += len(stored)
        totals["unsaved_cost"] = 0.0
        pending.clear()

    def on_result(result: LabelResult) -> None:
        totals["unsaved_cost"] += result.cost_usd
        if isinstance(result, JudgeLabel):
            pending.append(result)
            if len(pending) >= commit_every:
                flush()

    async def go():
        try:
            return await label_comparisons(comparisons, built.chain, concurrency=concurrency or settings.judge_concurrency,
                                           on_result=on_result, progress=progress)
        finally:
            await built.aclose()

    status = "failed"
    try:
        with Heartbeat(engine, job.id):
            report = asyncio.run(go())
            flush()
        status = "finished"
    finally:
        built.tracer.shutdown()
        with session_scope(engine) as session:
            row = session.get(LabelJob, job.id)
            row.status, row.finished_at = status, utcnow()
    return LabelRunReport(job.id, len(comparisons), totals["stored"], len(report.failures), round(report.cost_usd, 8),
                          {k: v.to_dict() for k, v in report.judges.items()}, built.skipped,
                          [{"comparison_id": f.comparison_id, "reason": f.reason} for f in report.failures[:50]], closed)


_BATCH = {"openai": (plan_openai_batch, submit_openai_batch, openai_batch_status, collect_openai_batch),
          "anthropic": (plan_anthropic_batch, submit_anthropic_batch, anthropic_batch_status, collect_anthropic_batch)}


def _batch_judge(settings: Settings, judges: Sequence[str] | None, session: Session, provider: str | None = None):
    """The first API judge of the chain (or the given provider's): batches exist only for those."""
    names = [j for j in (judges or ["openai", "anthropic"]) if j in _BATCH and provider in (None, j)]
    try:
        built = build_chain(labeling_config(settings, names, None, session)) if names else None
    except ChainConfigError:
        built = None
    if built is not None:
        return next(iter(built.base_judges.values()))
    raise Unavailable("batch labeling needs the OpenAI or Anthropic judge: set ARBITER_OPENAI_API_KEY "
                      "or ARBITER_ANTHROPIC_API_KEY")


def submit_batches(engine: Engine, settings: Settings, *, judges: Sequence[str] | None = None,
                   budget_usd: float | None = None, limit: int | None = None, actor: str = "cli") -> dict[str, Any]:
    """Submit the unlabeled comparisons not already in a pending batch to the first API judge."""
    with Session(engine) as session:
        in_flight = {cid for job in session.exec(select(BatchJob).where(BatchJob.status == "submitted")).all()
                     for cid in job.comparison_ids}
        comparisons = unlabeled_comparisons(session, limit, exclude=in_flight)
        judge = _batch_judge(settings, judges, session)
    if not comparisons:
        return {"submitted": False, "reason": "nothing to submit", "pending_in_batches": len(in_flight)}
    plan_fn, submit_fn, _, _ = _BATCH[judge.name]
    plan = plan_fn(judge, comparisons, cache=StoreJudgeCache(engine), budget=Budget(budget_usd))
    if not plan.requests:
        return {"submitted": False, "reason": "every comparison is cached or over budget",
                "left_out_for_budget": len(plan.left_out_for_budget)}

    async def go():
        try:
            return await submit_fn(judge, plan)
        finally:
            await judge.aclose()

    submission = asyncio.run(go())
    with session_scope(engine) as session:
        job = BatchJob(provider=submission.provider, batch_id=submission.batch_id, comparison_ids=list(submission.comparison_ids),
                       params={k: v for k, v in submission.to_dict().items() if k != "comparison_ids"})
        session.add(job)
        session.flush()
        append_audit(session, actor, "labels.batch_submitted", "batch_job", job.id,
                     {"provider": job.provider, "batch_id": job.batch_id, "n": len(job.comparison_ids),
                      "estimated_cost_usd": submission.estimated_cost_usd})
    return {"submitted": True, "batch_job_id": job.id, "provider": submission.provider, "batch_id": submission.batch_id,
            "comparisons": len(submission.comparison_ids), "requests": submission.request_count,
            "estimated_cost_usd": round(submission.estimated_cost_usd, 8),
            "left_out_for_budget": len(plan.left_out_for_budget), "fully_cached": len(plan.fully_cached)}


async def _poll_and_collect(engine: Engine, job: BatchJob, judge: Any, comparisons: list[JudgeComparison]):
    _, _, status_fn, collect_fn = _BATCH[job.provider]
    try:
        status = await status_fn(judge, job.batch_id)
        if not status.done:
            return status, None
        return status, await collect_fn(judge, job.batch_id, comparisons, cache=StoreJudgeCache(engine))
    finally:
        await judge.aclose()


def collect_batches(engine: Engine, settings: Settings, *, actor: str = "cli") -> dict[str, Any]:
    """Ingest every ended batch; report the others. Labels and the batch's status commit together."""
    with Session(engine) as session:
        jobs = session.exec(select(BatchJob).where(BatchJob.status == "submitted").order_by(BatchJob.submitted_at)).all()
    results: list[dict[str, Any]] = []
    for job in jobs:
        with Session(engine) as session:
            judge = _batch_judge(settings, None, session, provider=job.provider)
            rows = session.exec(select(Comparison).where(col(Comparison.id).in_(job.comparison_ids))).all()
            comparisons = _to_judge_comparisons(session, rows)
        try:
            status, collection = asyncio.run(_poll_and_collect(engine, job, judge, comparisons))
        except BatchError as exc:
            results.append({"batch_job_id": job.id, "batch_id": job.batch_id, "error": str(exc)})
            continue
        entry: dict[str, Any] = {"batch_job_id": job.id, "provider": job.provider, "batch_id": job.batch_id,
                                 "state": status.state, "succeeded": status.succeeded, "failed": status.failed}
        if collection is not None:
            with session_scope(engine) as session:
                stored = store_labels(session, collection.labels, actor, None)
                row = session.get(BatchJob, job.id)
                row.status, row.collected_at = "collected", utcnow()
                row.params = {**row.params, "labels": len(stored), "unlabeled": len(collection.failures),
                              "cost_usd": collection.cost_usd}
                append_audit(session, actor, "labels.batch_collected", "batch_job", job.id,
                             {"labels": len(stored), "unlabeled": len(collection.failures), "cost_usd": collection.cost_usd})
            entry.update(labels=len(stored), unlabeled=len(collection.failures), cost_usd=round(collection.cost_usd, 8))
        results.append(entry)
    return {"batches": results, "collected": sum(1 for r in results if "labels" in r)}


def evaluate_judge(settings: Settings, judge: str, data: str, *, limit: int | None = None, seed: int = 0,
                   session: Session | None = None) -> dict[str, Any]:
    """Agreement of one judge with the human labels of a pairs file, and its consistency rate."""
    try:
        items = load_human_comparisons(data, limit=limit, seed=seed)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{data}: {exc}") from None
    try:
        built = build_chain(labeling_config(settings, [judge], None, session), cache=None)
    except ChainConfigError as exc:
        raise Unavailable(f"judge {judge!r} is not available: {exc}") from None

    async def go():
        try:
            return await evaluate_chain(built.chain, items, concurrency=settings.judge_concurrency)
        finally:
            await built.aclose()

    try:
        evaluation = asyncio.run(go())
    finally:
        built.tracer.shutdown()
    return {"judge": judge, "data": str(data), **evaluation.to_dict()}

