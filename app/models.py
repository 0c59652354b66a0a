"""The store: every SQLModel table of Arbiter.

Families follow ``XBase`` (shared fields) -> ``XCreate`` (input) -> ``X(table=True)`` (row) ->
``XPublic`` (what the API returns) where the API exposes them. Identifiers are random hex strings
except the audit log, whose integer sequence is part of its hash chain. Uniqueness constraints
carry the idempotency guarantees (importing a file twice, re-running a labeling job, retrying a
request): jobs rely on them rather than on checking first.

Schema changes go through Alembic (``app/migrations``); ``tests/app/test_migrations.py`` fails when
these classes and the migrations disagree.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, DateTime, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "ApiKey", "ApiKeyPublic", "ArgillaPush", "AuditEntry", "AuditHead", "BatchJob", "Candidate",
    "Comparison", "DatasetSnapshot", "Decision", "DecisionPublic", "JudgeCacheEntry", "Label",
    "LabelJob", "MonitorReading", "Outcome", "PolicyApproval", "PolicyVersion", "ReviewItem", "RewardModelVersion", "RuleSetVersion",
    "Task", "new_id", "utcnow", "ROLES", "LABEL_SOURCES", "POLICY_STATES",
]

ROLES = ("admin", "app", "annotator", "reviewer")
LABEL_SOURCES = ("human", "llm_judge", "local_model", "reviewer", "outcome")
POLICY_STATES = ("candidate", "shadow", "canary", "active", "retired")


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend. PostgreSQL's ``timestamptz`` keeps the zone, but
    SQLite stores text without one and gives back naive datetimes; so values are converted to UTC on
    the way in (SQLite would otherwise drop a non-UTC offset silently) and marked UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kw)


def _json(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


def _text(**kw: Any) -> Any:
    return Field(sa_type=Text, **kw)


# --- access -------------------------------------------------------------------------------------


class ApiKeyBase(SQLModel):
    name: str = Field(max_length=100)
    role: str = Field(max_length=20, index=True)


class ApiKey(ApiKeyBase, table=True):
    """An API key; only its SHA-256 is stored, the secret is shown once at creation."""

    id: str = Field(default_factory=new_id, primary_key=True)
    prefix: str = Field(max_length=32, index=True)  # first characters, to recognise a key in lists
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts()
    revoked_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class ApiKeyPublic(ApiKeyBase):
    """What listing keys shows: never the secret or its hash."""

    id: str
    prefix: str
    created_at: datetime
    revoked_at: Optional[datetime] = None


class AuditEntry(SQLModel, table=True):
    """One link of the hash-chained, append-only audit log (see app/audit.py)."""

    __tablename__ = "audit_entry"
    seq: int = Field(primary_key=True)  # 1, 2, 3, ... without gaps; part of the hash
    ts: datetime = _ts()
    actor: str = Field(max_length=200)
    action: str = Field(max_length=100, index=True)
    subject_type: str = Field(max_length=50)
    subject_id: str = Field(max_length=200)
    details: dict = _json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    mac: Optional[str] = Field(default=None, max_length=64)  # HMAC of `hash` under the audit key; None: unkeyed legacy
    key_id: Optional[str] = Field(default=None, max_length=16)  # fingerprint of that key


class AuditHead(SQLModel, table=True):
    """The chain's last sequence number and hash, so that removing the newest entries is detected."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="", max_length=64)
    key_id: Optional[str] = Field(default=None, max_length=16)  # once keyed, writers without this key are refused


# --- what is decided on and compared ------------------------------------------------------------


class Task(SQLModel, table=True):
    """An input to respond to or decide on: a prompt (messages) and/or a decision context."""

    id: str = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(default="prompt", max_length=20, index=True)  # prompt | decision
    decision_type: Optional[str] = Field(default=None, max_length=100, index=True)
    prompt: list = _json(list)  # [{"role", "content"}, ...]
    context: dict = _json()
    content_hash: str = Field(max_length=64, unique=True)
    source: str = Field(default="api", max_length=200)
    source_format: Optional[str] = Field(default=None, max_length=20)
    split: Optional[str] = Field(default=None, max_length=20)  # e.g. "heldout" for evaluation tasks
    created_at: datetime = _ts()


class Candidate(SQLModel, table=True):
    """A response or an action for a task, and who produced it."""

    __table_args__ = (UniqueConstraint("task_id", "content_hash"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    task_id: str = Field(foreign_key="task.id", index=True)
    content: str = _text()
    action: Optional[str] = Field(default=None, max_length=200)
    produced_by: str = Field(default="dataset", max_length=200)  # "policy:<id>", "dataset:<name>", "reviewer:<key>"
    content_hash: str = Field(max_length=64)
    created_at: datetime = _ts()


class Comparison(SQLModel, table=True):
    """A pair of candidates of one task, to be labeled. ``pair_hash`` makes creation idempotent."""

    id: str = Field(default_factory=new_id, primary_key=True)
    task_id: str = Field(foreign_key="task.id", index=True)
    candidate_a_id: str = Field(foreign_key="candidate.id")
    candidate_b_id: str = Field(foreign_key="candidate.id")
    pair_hash: str = Field(max_length=64, unique=True)
    source: str = Field(default="api", max_length=200)
    priority: float = 0.0
    created_at: datetime = _ts()


class Label(SQLModel, table=True):
    """A preference between the two candidates of a comparison, with its provenance.

    One label per (comparison, source, producer): a human changing their answer updates the row,
    a re-run judging job finds it already there.
    """

    __table_args__ = (UniqueConstraint("comparison_id", "source", "producer"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    comparison_id: str = Field(foreign_key="comparison.id", index=True)
    choice: str = Field(max_length=8)  # a | b | tie | discarded
    confidence: float = 1.0
    rationale: str = _text(default="")
    source: str = Field(max_length=20, index=True)  # human | llm_judge | local_model | reviewer | outcome
    producer: str = Field(max_length=200)  # annotator name, judge name, reviewer key id
    judge: Optional[str] = Field(default=None, max_length=100)
    model: Optional[str] = Field(default=None, max_length=200)
    rubric_version: Optional[str] = Field(default=None, max_length=64)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    details: dict = _json()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


# --- labeling jobs ------------------------------------------------------------------------------


class JudgeCacheEntry(SQLModel, table=True):
    """A judge's verdict on (model, rubric version, pair in one order): never billed twice."""

    __tablename__ = "judge_cache"
    key: str = Field(primary_key=True, max_length=64)
    judge: str = Field(max_length=100)
    model: str = Field(max_length=200)
    rubric_version: str = Field(max_length=64)
    result: dict = _json()
    created_at: datetime = _ts()


class LabelJob(SQLModel, table=True):
    """A run of `arbiter label`: its parameters, progress and spend."""

    id: str = Field(default_factory=new_id, primary_key=True)
    status: str = Field(default="running", max_length=20)
    params: dict = _json()
    n_done: int = 0
    cost_usd: float = 0.0
    created_at: datetime = _ts()
    finished_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    # Who runs it and when it last showed life: a `running` row whose process is gone, or whose
    # heartbeat is older than the lease, is stale (killed), and the next run closes it.
    host: Optional[str] = Field(default=None, max_length=255)
    pid: Optional[int] = None
    heartbeat_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class BatchJob(SQLModel, table=True):
    """A provider batch (OpenAI Batch API / Anthropic Message Batches) awaiting collection."""

    __table_args__ = (UniqueConstraint("provider", "batch_id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    provider: str = Field(max_length=20)
    batch_id: str = Field(max_length=200)
    status: str = Field(default="submitted", max_length=20, index=True)
    comparison_ids: list = _json(list)
    params: dict = _json()
    submitted_at: datetime = _ts()
    collected_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class ArgillaPush(SQLModel, table=True):
    """A comparison confirmed present in an Argilla dataset."""

    __table_args__ = (UniqueConstraint("comparison_id", "dataset"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    comparison_id: str = Field(foreign_key="comparison.id", index=True)
    dataset: str = Field(max_length=200)
    pushed_at: datetime = _ts()


# --- models and policies ------------------------------------------------------------------------


class DatasetSnapshot(SQLModel, table=True):
    """A frozen training set built from labels, identified by its content hash."""

    id: str = Field(default_factory=new_id, primary_key=True)
    content_hash: str = Field(max_length=64, unique=True)
    rules: dict = _json()
    n_pairs: int = 0
    n_train: int = 0
    n_validation: int = 0
    path: str = Field(max_length=500)
    created_at: datetime = _ts()


class RewardModelVersion(SQLModel, table=True):
    """A trained reward model in the registry."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    base_model: str = Field(max_length=500)
    snapshot_id: Optional[str] = Field(default=None, foreign_key="datasetsnapshot.id")
    snapshot_hash: Optional[str] = Field(default=None, max_length=64)
    hyperparams: dict = _json()
    metrics: dict = _json()
    artifact_path: str = Field(max_length=500)
    status: str = Field(default="registered", max_length=20)  # registered | active | retired
    created_at: datetime = _ts()


class PolicyVersion(SQLModel, table=True):
    """A policy for one decision type, with its lineage and rollout state."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    decision_type: str = Field(max_length=100, index=True)
    backend: str = Field(default="transformers", max_length=50)
    base_model: str = Field(max_length=500)
    artifact_path: Optional[str] = Field(default=None, max_length=500)
    reward_model_id: Optional[str] = Field(default=None, foreign_key="rewardmodelversion.id")
    snapshot_id: Optional[str] = Field(default=None, foreign_key="datasetsnapshot.id")
    state: str = Field(default="candidate", max_length=20, index=True)
    traffic_share: float = 0.0
    hyperparams: dict = _json()
    metrics: dict = _json()
    # Who registered it (the training run's actor): with two approvers required, nobody approves their own run.
    created_by: Optional[str] = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class PolicyApproval(SQLModel, table=True):
    """An approval for a policy to leave shadow (canary, then active): by whom, why, or automatic on passed gates."""

    id: str = Field(default_factory=new_id, primary_key=True)
    policy_id: str = Field(foreign_key="policyversion.id", index=True)
    actor: str = Field(max_length=200)  # key:<id> over the API, cli[:<name>] from the CLI, system:gates when automatic
    reason: Optional[str] = _text(default=None)
    automatic: bool = False
    details: dict = _json()  # the gates an automatic approval rests on
    created_at: datetime = _ts()


class RuleSetVersion(SQLModel, table=True):
    """A safety rule set as it was loaded; decisions refer to it by hash."""

    hash: str = Field(primary_key=True, max_length=64)
    decision_type: str = Field(max_length=100, index=True)
    content: str = _text()
    created_at: datetime = _ts()


# --- decisions and what happened after ---------------------------------------------------------


class DecisionBase(SQLModel):
    decision_type: str = Field(max_length=100, index=True)
    unit_id: Optional[str] = Field(default=None, max_length=200)
    action: Optional[str] = Field(default=None, max_length=200)
    output: Optional[str] = _text(default=None)
    propensity: Optional[float] = None
    safety_verdict: str = Field(default="allow", max_length=20, index=True)


class Decision(DecisionBase, table=True):
    """One decision served (or blocked), with everything needed to audit and evaluate it."""

    id: str = Field(default_factory=new_id, primary_key=True)
    policy_version_id: Optional[str] = Field(default=None, foreign_key="policyversion.id", index=True)
    context: dict = _json()
    action_probs: dict = _json()  # probabilities of every allowed action, for off-policy evaluation
    proposed_action: Optional[str] = Field(default=None, max_length=200)
    proposed_output: Optional[str] = _text(default=None)
    shadow_policy_version_id: Optional[str] = Field(default=None, foreign_key="policyversion.id")
    shadow_action: Optional[str] = Field(default=None, max_length=200)
    shadow_propensity: Optional[float] = None
    safety_details: dict = _json()
    rule_set_hash: Optional[str] = Field(default=None, max_length=64)
    latency_ms: float = 0.0
    # An Idempotency-Key is unique per caller (the API key that sent it), as Stripe and the IETF
    # Idempotency-Key draft scope it: the same key from another caller is another request.
    idempotency_key: Optional[str] = Field(default=None, max_length=200)
    idempotency_scope: Optional[str] = Field(default=None, max_length=200)
    request_hash: Optional[str] = Field(default=None, max_length=64)
    created_at: datetime = _ts()

    __table_args__ = (UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_decision_idempotency"),)


class DecisionPublic(DecisionBase):
    """What the decision API returns."""

    id: str
    policy_version_id: Optional[str]
    rule_set_hash: Optional[str]
    safety_details: dict
    created_at: datetime


class Outcome(SQLModel, table=True):
    """What happened after a decision: a reward and free-form feedback. One per decision: a second one is refused
    (409) unless it is an explicit, audited correction, which replaces the values in place."""

    id: str = Field(default_factory=new_id, primary_key=True)
    decision_id: str = Field(foreign_key="decision.id", index=True, unique=True)
    reward: Optional[float] = None
    feedback: dict = _json()
    created_at: datetime = _ts()
    corrected_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class ReviewItem(SQLModel, table=True):
    """Something the safety layer flagged or escalated, waiting for (or with) a reviewer's verdict."""

    id: str = Field(default_factory=new_id, primary_key=True)
    decision_id: Optional[str] = Field(default=None, foreign_key="decision.id", index=True)
    decision_type: Optional[str] = Field(default=None, max_length=100, index=True)
    kind: str = Field(default="flagged", max_length=20)  # flagged | escalated
    content: str = _text(default="")
    context: dict = _json()
    reasons: list = _json(list)
    # pending | approved (the output may be served) | rejected (it must not be) | edited (serve the correction)
    status: str = Field(default="pending", max_length=20, index=True)
    # right | wrong: was the safety layer right to flag / escalate it? None: pending, or a legacy verdict that
    # did not say (migration 0005).
    safety_layer: Optional[str] = Field(default=None, max_length=10)
    category: Optional[str] = Field(default=None, max_length=100)
    note: Optional[str] = _text(default=None)
    edited_content: Optional[str] = _text(default=None)
    reviewer: Optional[str] = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    decided_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    reopened_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)  # an admin reopened its verdict


class MonitorReading(SQLModel, table=True):
    """One monitor's reading in one report (``app.services.monitoring``): the history of drift and rates."""

    id: str = Field(default_factory=new_id, primary_key=True)
    report_id: str = Field(max_length=32, index=True)  # readings taken together share it
    decision_type: str = Field(max_length=100, index=True)
    policy_version_id: Optional[str] = Field(default=None, max_length=32, index=True)  # None: per decision type
    monitor: str = Field(max_length=50)
    key: str = Field(default="", max_length=200)  # a context field, a safety effect, or ""
    value: Optional[float] = None
    threshold: float = 0.0
    status: str = Field(max_length=20)  # ok | alert | insufficient_data
    details: dict = _json()
    created_at: datetime = _ts(index=True)
