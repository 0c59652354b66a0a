"""One router per module; ``app.api.main`` includes every module here that defines ``router``."""
