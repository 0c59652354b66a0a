"""ASGI entry point for `uvicorn app.api.asgi:app` (what `arbiter serve` runs)."""

from app.api.main import create_app

app = create_app()
