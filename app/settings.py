"""Typed settings: the only module in Arbiter that reads the environment.

Every variable is ``ARBITER_<NAME>`` (see the table in README.md), read once into ``Settings``;
code receives a ``Settings`` object (or a config object built from it) and never looks at
``os.environ`` itself. Empty variables count as unset.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, ValidationError, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

__all__ = ["Settings", "SettingsRefused", "get_settings", "refusal_message", "DEFAULT_SECRET", "MIN_SECRET_LENGTH"]

DEFAULT_SECRET = "change-me"
MIN_SECRET_LENGTH = 32  # characters of ARBITER_SECRET_KEY / ARBITER_AUDIT_KEY in production


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value (a secret, a URL with a password) never appears in an error.
    model_config = SettingsConfigDict(env_prefix="ARBITER_", env_file=".env", env_ignore_empty=True, extra="ignore",
                                      hide_input_in_errors=True)

    # --- where things live -------------------------------------------------------------------
    environment: Literal["local", "test", "production"] = Field("local", description="`production` refuses default secrets and SQLite.")
    var_dir: Path = Field(Path("var"), description="Directory for the SQLite store, models, artifacts and logs.")
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite file `<var_dir>/arbiter.db`. PostgreSQL: `postgresql+psycopg://user@host/db`.")

    # --- API ---------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `arbiter serve` binds.")
    port: int = Field(8000, description="Port `arbiter serve` binds.")
    max_body_bytes: int = Field(1_000_000, description="Largest accepted request body; larger requests get 413.")
    secret_key: str = Field(DEFAULT_SECRET, description="Server secret; must be changed in production, to at least 32 characters (Argilla webhooks use their own secret, below). Keys the audit log unless `ARBITER_AUDIT_KEY` is set.")
    audit_key: str = Field("", description="Key of the audit log's MACs (HMAC-SHA256), kept outside the database so that a database writer cannot forge entries; default: derived from `ARBITER_SECRET_KEY` (none while that is the default). At least 32 characters in production. Every process that writes to the store needs the same one.")

    # --- LLM judges ----------------------------------------------------------------------------
    openai_api_key: str = Field("", description="Enables the OpenAI judge and moderation.")
    openai_base_url: str = Field("", description="Override the OpenAI API address (Azure, a proxy, or a test server).")
    anthropic_api_key: str = Field("", description="Enables the Anthropic judge.")
    anthropic_base_url: str = Field("", description="Override the Anthropic API address.")
    judge_chain: str = Field("openai,anthropic,local", description="Comma-separated fallback order of judges; unavailable ones are skipped.")
    openai_judge_model: str = Field("gpt-4o-mini", description="Model of the OpenAI judge.")
    anthropic_judge_model: str = Field("claude-haiku-4-5", description="Model of the Anthropic judge.")
    judge_temperature: Optional[float] = Field(None, ge=0, le=2, description="Sampling temperature of the API judges (default: OpenAI 0, Anthropic the provider's).")
    judge_budget_usd: Optional[float] = Field(None, ge=0, description="Default spending limit of `arbiter label` (overridden by --budget-usd).")
    judge_prices: str = Field("", description='Extra or changed prices as JSON {"model": [input_usd_per_mtok, output_usd_per_mtok]}; batch calls cost half.')
    judge_concurrency: int = Field(8, description="Concurrent judge calls.")
    judge_timeout_s: float = Field(30.0, description="Per-call timeout of a judge.")

    # --- tracing -------------------------------------------------------------------------------
    langfuse_public_key: str = Field("", description="Langfuse public key; tracing is off unless both keys are set.")
    langfuse_secret_key: str = Field("", description="Langfuse secret key.")
    langfuse_host: str = Field("", description="Langfuse address, e.g. http://langfuse:3000.")

    # --- Argilla -------------------------------------------------------------------------------
    argilla_api_url: str = Field("", description="Argilla server URL; empty means not configured (the embedded one sets it).")
    argilla_api_key: str = Field("", description="Argilla API key of an owner/admin user.")
    argilla_workspace: str = Field("arbiter", description="Argilla workspace for Arbiter's datasets.")
    argilla_dataset: str = Field("arbiter-preferences", description="Argilla dataset for comparisons.")
    argilla_review_workspace: str = Field("arbiter-review", description="Argilla workspace of the review dataset: reviewers are its members, annotators are not (the embedded Argilla sets this up; elsewhere create it and add only reviewers).")
    argilla_review_dataset: str = Field("arbiter-review", description="Argilla dataset mirroring the trust-and-safety review queue (`arbiter review sync`).")
    argilla_suggestion_min_consistency: float = Field(0.8, ge=0.0, le=1.0, description="A judge's verdict is pre-selected in Argilla only when its measured position consistency (share of its labels unchanged by swapping the responses) is at least this.")
    argilla_suggestion_min_labels: int = Field(20, ge=1, description="Labels with measured position consistency a judge needs before it may pre-select (fewer: not trusted yet); also the human-labeled pairs needed before its agreement with humans counts.")
    argilla_suggestion_min_agreement: float = Field(0.6, ge=0.0, le=1.0, description="Where humans labeled enough of the same pairs, a judge also needs at least this agreement with the human majority to pre-select.")
    argilla_webhook_secret: str = Field("", description="Standard Webhooks secret (whsec_...) of the Argilla webhook.")
    argilla_port: int = Field(6900, description="Port of the embedded Argilla server.")
    redis_url: str = Field("", description="Redis used by the embedded Argilla server, which needs a database of its own (its queue names are fixed). Default: `redis://127.0.0.1:6379/<n>` with n = 1 + `ARBITER_ARGILLA_PORT` mod 15, so embedded instances on different ports do not share one.")

    snapshot_min_judge_kappa: float = Field(0.2, ge=-1.0, le=1.0, description="A judge whose Cohen's kappa with the human majority (measured on at least `ARBITER_SNAPSHOT_MIN_JUDGE_LABELS` pairs) is below this is at chance (kappa 0): its labels make no training pairs in a snapshot of the store's labels; the snapshot records the rule and the judges it excluded. -1 turns the check off.")
    snapshot_min_judge_consistency: float = Field(0.6, ge=0.0, le=1.0, description="Likewise for position consistency (share of a judge's labels unchanged by swapping the responses; a coin flip keeps about half, a judge that always picks the first response none). 0 turns the check off.")
    snapshot_min_judge_labels: int = Field(20, ge=1, description="Measurements on fewer labels (or human-labeled pairs) do not exclude a judge from snapshots: an unmeasured judge is not known to be at chance.")

    # --- moderation ----------------------------------------------------------------------------
    moderation_model: str = Field("omni-moderation-latest", description="OpenAI moderation model.")
    moderation_timeout_s: float = Field(5.0, description="Timeout of the moderation API before the local providers decide.")
    moderation_remote_order: str = Field("guard,openai", description="Comma-separated order in which the configured remote moderation providers are tried (`guard`, `openai`); the first that answers decides, the local providers answer when all fail. The guard comes first by default: it runs on your own machines, while an OpenAI key may be set for the judges alone.")
    guard_base_url: str = Field("", description="OpenAI-compatible endpoint (vLLM) serving a guard model, e.g. `http://guard:8001/v1`; enables the guard moderation provider.")
    guard_model: str = Field("", description="The guard model's name on that endpoint, e.g. `meta-llama/Llama-Guard-3-8B`.")
    guard_family: Literal["llama-guard", "qwen3guard", "granite-guardian"] = Field("llama-guard", description="Prompt and answer format of the guard model: Llama Guard 3, Qwen3Guard-Gen or Granite Guardian 3.x.")
    guard_api_key: str = Field("", description="API key of the guard endpoint (vLLM `--api-key`); empty when it needs none.")
    guard_timeout_s: float = Field(5.0, gt=0, description="Timeout of one guard-model request before the next moderation provider decides.")
    pii_ner_model: str = Field("auto", description="spaCy pipeline that finds names for PII redaction: `auto` (the packaged English one when installed), a package name, or `none` (patterns only: names are not redacted, and each text costs well under a millisecond instead of tens).")

    # --- decision types and rules --------------------------------------------------------------
    decision_types_dir: Optional[Path] = Field(None, description="Extra decision types (YAML), added to the shipped ones in policies/decision_types.")
    rulesets_dir: Optional[Path] = Field(None, description="Safety rule sets (YAML, one per decision type) replacing the shipped safety/rulesets.")

    # --- policies ------------------------------------------------------------------------------
    policy_temperature: float = Field(1.0, description="Softmax temperature of action policies.")
    policy_epsilon: float = Field(0.05, description="Exploration floor mixed into action policies.")
    policy_base_url: str = Field("", description="OpenAI-compatible endpoint (vLLM, TGI, Ollama) serving the policy model.")
    policy_max_batch: int = Field(32, ge=1, le=1024, description="Most concurrent requests scored in one model call (dynamic micro-batching); 1 disables batching.")
    policy_dtype: Literal["auto", "float32", "bfloat16"] = Field("float32", description="Precision of local policy models. `bfloat16` (or `auto`: bfloat16 where matrix products run it natively, a CPU with AMX or AVX512_BF16, or a CUDA GPU) scores 1.4-1.9x faster on 2 CPU cores but moves the policy's probabilities by up to 0.1; see `bench/api_latency.py --dtype`.")
    preload_policies: bool = Field(True, description="Load and warm the serving policies when the API starts (in the background; `/readyz` answers 503 until they are ready). Off: each loads on its first request.")
    policy_max_wait_ms: float = Field(2.0, ge=0, le=10_000, description="How long a policy call lingers for concurrent requests to join its batch (dynamic micro-batching).")
    canary_auto_rollback: bool = Field(True, description="Check a canary against the active policy after each of its outcomes and blocked decisions, and roll it back automatically when it is worse.")
    canary_min_decisions: int = Field(200, description="Decisions a canary needs before the automatic rollback check.")
    canary_min_outcomes: int = Field(100, description="Outcomes a canary needs before its mean reward is compared.")
    canary_max_block_rate_delta: float = Field(0.05, gt=0, description="Sequential: the block-rate margin a canary must be shown to stay within before promotion is supported. Fixed: rollback when canary block rate exceeds active's by more.")
    canary_max_reward_drop: float = Field(0.05, gt=0, description="Sequential: the mean-reward margin (non-inferiority) a canary must be shown to stay within before promotion is supported. Fixed: rollback when canary mean reward is lower than active's by more.")
    canary_method: Literal["sequential", "fixed"] = Field("sequential", description="`sequential`: an always-valid test (mixture SPRT) of canary vs active on mean reward and block rate, safe to check after every outcome; rollback only on evidence of worse. `fixed`: the raw-delta rule above (noise alone rolls a good canary back once checked often enough).")
    canary_alpha: float = Field(0.05, gt=0, lt=1, description="Sequential method: the chance that an equal canary is ever rolled back, over all checks of both metrics.")
    policy_approvals_required: int = Field(1, ge=1, le=2, description="Distinct admins who must approve a policy (`arbiter policy approve`, `POST /v1/policies/{id}/approvals`) before it leaves shadow: to canary, and to active. With 2, nobody approves a policy from their own training run.")
    policy_auto_approve: str = Field("", description="Comma-separated decision types that opt into automatic approval: a policy of one is approved (by `system:gates`, audited) when every gate passed, e.g. the OPE gate at promotion. Empty: people approve every policy.")
    canary_require_evidence: bool = Field(False, description="`arbiter policy promote` (and the API) refuses a canary, unless forced, until the sequential canary check's verdict is `promote` (evidence that it is not worse at both margins). Off: the verdict is recorded with the promotion but does not block it.")

    # --- monitoring ----------------------------------------------------------------------------
    monitor_reference_decisions: int = Field(500, ge=30, description="Reference window of the monitors: a policy's first N decisions.")
    monitor_reference_hours: Optional[float] = Field(None, gt=0, description="Instead of the first N decisions: the decisions of a policy's first H hours (from its first decision).")
    monitor_window_decisions: int = Field(500, ge=30, description="Rolling window of the monitors: a policy's latest N decisions after its reference window.")
    monitor_alpha: float = Field(0.001, gt=0, lt=1, description="A drift or rate test alerts only below this p-value (and at least `ARBITER_MONITOR_MIN_EFFECT`); low because a report runs dozens of tests.")
    monitor_min_effect: float = Field(0.1, gt=0, description="Smallest change a monitor alerts on: Jensen-Shannon distance (categorical fields, actions), KS statistic (numeric fields, text length, rewards), or rise of a safety rate.")
    monitor_max_review_backlog: int = Field(100, ge=0, description="Pending review items of a decision type above which its backlog monitor alerts.")
    monitor_max_intervention_rate: float = Field(0.2, ge=0, le=1, description="Share of a window's decisions whose review overturned the policy (rejected or edited) above which the intervention monitor alerts.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the common short forms and pin the installed driver (psycopg 3).
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix):]
            return url
        return f"sqlite:///{(self.var_dir / 'arbiter.db').as_posix()}"

    @property
    def models_dir(self) -> Path:
        return self.var_dir / "models"

    @property
    def artifacts_dir(self) -> Path:
        return self.var_dir / "artifacts"

    @property
    def policy_auto_approve_types(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.policy_auto_approve.split(",") if t.strip())

    @property
    def langfuse_enabled(self) -> bool:
        return bool(self.langfuse_public_key and self.langfuse_secret_key)

    @model_validator(mode="after")
    def _distinct_argilla_datasets(self) -> "Settings":
        # The webhook tells review answers from preference labels by the dataset's name.
        if self.argilla_review_dataset == self.argilla_dataset:
            raise ValueError("ARBITER_ARGILLA_REVIEW_DATASET must differ from ARBITER_ARGILLA_DATASET")
        # Annotators are members of the preference workspace; reviewers alone of the review one.
        if self.argilla_review_workspace == self.argilla_workspace:
            raise ValueError("ARBITER_ARGILLA_REVIEW_WORKSPACE must differ from ARBITER_ARGILLA_WORKSPACE")
        return self

    @model_validator(mode="after")
    def _guard_needs_a_model(self) -> "Settings":
        if self.guard_base_url and not self.guard_model:
            raise ValueError("ARBITER_GUARD_BASE_URL is set but ARBITER_GUARD_MODEL is not: name the guard model it serves")
        unknown = [p for p in self.moderation_remote_providers if p not in ("guard", "openai")]
        if unknown:
            raise ValueError(f"ARBITER_MODERATION_REMOTE_ORDER: unknown providers {unknown}; known: guard, openai")
        return self

    @property
    def moderation_remote_providers(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.moderation_remote_order.split(",") if p.strip())

    @model_validator(mode="after")
    def _refuse_defaults_in_production(self) -> "Settings":
        # Every refusal is reported at once, naming settings and never their values (start-up prints it).
        if self.environment == "production":
            problems = []
            if self.secret_key == DEFAULT_SECRET:
                problems.append("ARBITER_SECRET_KEY must be set to a real secret in production")
            elif len(self.secret_key) < MIN_SECRET_LENGTH:
                problems.append(f"ARBITER_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters in production")
            if self.audit_key and len(self.audit_key) < MIN_SECRET_LENGTH:
                problems.append(f"ARBITER_AUDIT_KEY must be at least {MIN_SECRET_LENGTH} characters in production")
            if self.sqlalchemy_url.startswith("sqlite"):
                problems.append("production needs ARBITER_DATABASE_URL (PostgreSQL); SQLite is for local use")
            if problems:
                raise ValueError("; ".join(problems))
        return self


class SettingsRefused(Exception):
    """The environment holds settings Arbiter refuses; the message names them and shows no value."""


def refusal_message(exc: ValidationError | SettingsError) -> str:
    """One line naming the refused settings and why, without any value (a value may be a secret)."""
    if isinstance(exc, SettingsError):
        # pydantic-settings' message names the field and the source, not the value.
        return str(exc).split("\n", 1)[0]
    parts = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        msg = error.get("msg", "invalid")
        msg = msg.removeprefix("Value error, ")
        loc = [str(x) for x in error.get("loc", ()) if isinstance(x, str)]
        parts.append(f"ARBITER_{loc[0].upper()}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid settings"


@lru_cache
def get_settings() -> Settings:
    """The settings of this process; raises ``SettingsRefused`` (no values, no pydantic dump) when refused."""
    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise SettingsRefused(f"refused settings: {refusal_message(exc)}") from None
