"""Provider batch APIs (OpenAI Batch API, Anthropic Message Batches) for judge requests at half price."""

from labeling.batch.anthropic_batch import (
    anthropic_batch_status,
    build_anthropic_batch_requests,
    collect_anthropic_batch,
    plan_anthropic_batch,
    submit_anthropic_batch,
)
from labeling.batch.common import (
    BatchCollection,
    BatchError,
    BatchPlan,
    BatchStatus,
    BatchSubmission,
    custom_id,
    parse_custom_id,
)
from labeling.batch.openai_batch import (
    build_openai_batch_lines,
    collect_openai_batch,
    openai_batch_status,
    plan_openai_batch,
    submit_openai_batch,
)

__all__ = [
    "BatchCollection",
    "BatchError",
    "BatchPlan",
    "BatchStatus",
    "BatchSubmission",
    "anthropic_batch_status",
    "build_anthropic_batch_requests",
    "build_openai_batch_lines",
    "collect_anthropic_batch",
    "collect_openai_batch",
    "custom_id",
    "openai_batch_status",
    "parse_custom_id",
    "plan_anthropic_batch",
    "plan_openai_batch",
    "submit_anthropic_batch",
    "submit_openai_batch",
]
