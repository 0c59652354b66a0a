"""The models wing: reward models (snapshots, training, registry: ``reward``), policies (registry, states,
OPE gate, canary, promotion and rollback: ``policies``), approvals to leave shadow (``approvals``) and policy training jobs (``policy_training``)."""
