"""The moderation taxonomy Arbiter speaks: OpenAI's omni-moderation categories, in one place.

Verdicts, the `/v1/moderations` summary and the local model's training labels all name categories
from this tuple. This module holds names only; what each provider maps onto them lives with the
provider.
"""

from __future__ import annotations

__all__ = ["OPENAI_CATEGORIES"]

# The categories of OpenAI's omni-moderation models, in the order its API lists them.
OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
