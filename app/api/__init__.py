"""The HTTP API: app factory in ``main``, dependencies in ``deps``, one router per module in ``routes``."""
