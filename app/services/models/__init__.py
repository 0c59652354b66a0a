"""The models wing: reward models (snapshots, training, registry: ``reward``), policies (registry, states,
OPE gate, canary, promotion and rollback: ``policies``) and policy training jobs (``policy_training``)."""
