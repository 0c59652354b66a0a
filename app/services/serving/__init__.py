"""The serving wing: the decision path (``decisions``), the OpenAI-compatible chat (``chat``) and moderation
(``moderations``) endpoints' services, the policy runtime and its micro-batcher, which policy serves a unit
(``rollout``), the serving stack a process holds (``stack``) and its start-up warm-up (``warmup``)."""
