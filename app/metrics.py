"""Prometheus metrics of the service, defined once per process.

Domain code does not import this module; the app records what services report.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "HTTP_REQUESTS", "HTTP_LATENCY", "DECISION_LATENCY", "SAFETY_BLOCKS", "MODERATION_FALLBACKS",
    "DECISION_REWARD", "DECISIONS", "LABELS_INGESTED", "POLICY_BATCH_SIZE", "MONITOR_VALUE", "MONITOR_ALERT",
    "CANARY_ROLLBACKS",
]

HTTP_REQUESTS = Counter("arbiter_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("arbiter_http_request_seconds", "HTTP request latency", ["method", "route"])
DECISIONS = Counter("arbiter_decisions_total", "Decisions served", ["decision_type", "policy", "verdict"])
DECISION_LATENCY = Histogram(
    "arbiter_decision_seconds", "Latency of a decision (policy + safety + logging)", ["decision_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SAFETY_BLOCKS = Counter("arbiter_safety_blocks_total", "Safety interventions", ["decision_type", "effect", "rule", "provider"])
MODERATION_FALLBACKS = Counter(
    "arbiter_moderation_fallbacks_total",
    "Checked texts whose moderation fell back because a provider failed, by the provider that failed and the error kind",
    ["provider", "kind"],
)
DECISION_REWARD = Histogram("arbiter_decision_reward", "Rewards reported for decisions", ["decision_type", "policy"],
                            buckets=(-1, -0.5, 0, 0.25, 0.5, 0.75, 1, 2))
LABELS_INGESTED = Counter("arbiter_labels_ingested_total", "Labels written", ["source"])
POLICY_BATCH_SIZE = Histogram("arbiter_policy_batch_size", "Requests scored together in one policy model call (micro-batching)",
                              ["decision_type"], buckets=(1, 2, 4, 8, 12, 16, 24, 32, 64, 128))
# Set by each monitoring report (app.services.monitoring); policy is "" for per-decision-type monitors.
MONITOR_VALUE = Gauge("arbiter_monitor_value", "Latest value of a monitor (drift effect size, rate increase, backlog)",
                      ["decision_type", "policy", "monitor", "key"])
MONITOR_ALERT = Gauge("arbiter_monitor_alert", "1 while a monitor's latest reading is an alert, else 0",
                      ["decision_type", "policy", "monitor", "key"])
CANARY_ROLLBACKS = Counter("arbiter_canary_rollbacks_total", "Canaries rolled back by the automatic canary check",
                           ["decision_type", "method"])
