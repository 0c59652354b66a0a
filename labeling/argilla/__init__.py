"""Human annotators in Argilla: push comparisons, pull responses, run an embedded server.

- `schema`: the preference dataset's shape and the values crossing the boundary.
- `client`: push / pull with the official `argilla` SDK (v2).
- `review_schema`, `review_queue`: the trust-and-safety review queue's dataset (one record per
  review item, a verdict / category / note / corrected-output per response).
- `suggestions`: which judge may pre-select its verdict (measured reliability), and how every
  judge's opinion is shown to annotators.
- `webhooks`: verify and read Argilla's Standard Webhooks deliveries.
- `server`: start / stop the embedded argilla-server (own virtual environment, no Elasticsearch).
- `inprocess_search`, `inprocess_store`, `server_main`: run INSIDE argilla-server's environment
  (the search engine, its cached documents, the entry point); they are not imported here.
  `record_documents` holds the engine's pure matching rules and runs in both environments.
"""

from labeling.argilla.client import (
    ArgillaAuthError,
    ArgillaClient,
    ArgillaClientError,
    ArgillaConnection,
    ArgillaUnavailable,
    PullResult,
    PushResult,
)
from labeling.argilla.review_queue import ReviewPullResult, ReviewQueue, ReviewRecordState
from labeling.argilla.review_schema import (
    REVIEW_VERDICTS,
    ReviewAnswer,
    ReviewDatasetSpec,
    ReviewRecord,
    ReviewResponse,
    render_context,
    render_reasons,
)
from labeling.argilla.schema import (
    PREFERENCE_LABELS,
    SAFETY_FLAGS,
    DatasetSpec,
    HumanResponse,
    JudgeSuggestion,
    PushItem,
)
from labeling.argilla.server import (
    ArgillaCredentials,
    EmbeddedArgilla,
    EmbeddedArgillaConfig,
    EmbeddedArgillaError,
    embedded_status,
    free_port,
    start_embedded,
    stop_embedded,
)
from labeling.argilla.suggestions import (
    JudgeOpinion,
    JudgeReliability,
    SuggestionPolicy,
    assess_judges,
    choose_suggestion,
    render_judges,
)
from labeling.argilla.webhooks import (
    RESPONSE_EVENTS,
    InvalidWebhook,
    WebhookEvent,
    event_dataset,
    parse_response_event,
    parse_review_response_event,
    verify_delivery,
)

__all__ = [
    "PREFERENCE_LABELS",
    "RESPONSE_EVENTS",
    "REVIEW_VERDICTS",
    "SAFETY_FLAGS",
    "ArgillaAuthError",
    "ArgillaClient",
    "ArgillaClientError",
    "ArgillaConnection",
    "ArgillaCredentials",
    "ArgillaUnavailable",
    "DatasetSpec",
    "EmbeddedArgilla",
    "EmbeddedArgillaConfig",
    "EmbeddedArgillaError",
    "HumanResponse",
    "InvalidWebhook",
    "JudgeOpinion",
    "JudgeReliability",
    "JudgeSuggestion",
    "PullResult",
    "PushItem",
    "PushResult",
    "ReviewAnswer",
    "ReviewDatasetSpec",
    "ReviewPullResult",
    "ReviewQueue",
    "ReviewRecord",
    "ReviewRecordState",
    "ReviewResponse",
    "SuggestionPolicy",
    "WebhookEvent",
    "assess_judges",
    "choose_suggestion",
    "embedded_status",
    "event_dataset",
    "free_port",
    "parse_response_event",
    "parse_review_response_event",
    "render_context",
    "render_judges",
    "render_reasons",
    "start_embedded",
    "stop_embedded",
    "verify_delivery",
]
