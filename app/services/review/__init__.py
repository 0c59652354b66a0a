"""The review wing: the trust-and-safety queue and what a verdict means (``queue``), and its mirror in
Argilla (``argilla_sync``)."""
