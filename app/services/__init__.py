"""Services: the functions routes and CLI commands call. They take a Session and plain values,
raise ArbiterError subclasses, and write audit entries in the caller's transaction.

Wings, by what a reader looks for:
- ``serving/``: the decision path, chat and moderation endpoints, the policy runtime (batching: ``reward_models.batching``), rollout routing;
- ``labels/``: pair files, comparisons, labels from outcomes, judging jobs, agreement, Argilla for annotators;
- ``models/``: reward models and policies (registry, training, states, gates, canary);
- ``review/``: the trust-and-safety queue and its Argilla mirror;
- ``argilla``, ``argilla_webhook``: the one Argilla connection and the one webhook router, shared by the wings;
- ``monitoring``: monitors over the store.
"""
