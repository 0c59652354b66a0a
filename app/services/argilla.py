"""Where Argilla is and how Arbiter talks to it, for both of its datasets (annotators' comparisons and the
review queue's mirror): the connection from settings, the embedded server's configuration, one client, the
mapping of client failures to Arbiter's errors, and the webhook's signing secret.

Where Argilla is: `ARBITER_ARGILLA_API_URL` + `ARBITER_ARGILLA_API_KEY`, or else the embedded server's
credentials (`<var_dir>/argilla/credentials.json`, written by `arbiter argilla up`). What goes into the
datasets is decided by `app.services.labels.argilla_sync` and `app.services.review.argilla_sync`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from app.errors import ArbiterError, Unavailable
from app.settings import Settings
from labeling.argilla import (
    ArgillaAuthError,
    ArgillaClient,
    ArgillaClientError,
    ArgillaConnection,
    ArgillaUnavailable,
    EmbeddedArgillaConfig,
)

__all__ = [
    "argilla_connection",
    "argilla_error",
    "embedded_config",
    "id_chunks",
    "open_client",
    "register_webhook",
    "store_webhook_secret",
    "webhook_secret",
]

_CHUNK = 500
REPO_ROOT = Path(__file__).resolve().parents[2]


def embedded_config(settings: Settings, venv_dir: Path | None = None) -> EmbeddedArgillaConfig:
    """The embedded Argilla's files live in `<var_dir>/argilla`; its virtual environment is where
    `scripts/setup_argilla.sh` puts it (`<repo>/var/argilla-venv`) unless `venv_dir` says otherwise."""
    return EmbeddedArgillaConfig(
        data_dir=Path(settings.var_dir) / "argilla",
        venv_dir=venv_dir or REPO_ROOT / "var" / "argilla-venv",
        port=settings.argilla_port,
        # Two instances sharing a Redis database would take each other's jobs (rq's queue names are fixed); each
        # port has its own database unless ARBITER_REDIS_URL says otherwise (1..15: many other tools use 0).
        redis_url=settings.redis_url or f"redis://127.0.0.1:6379/{1 + settings.argilla_port % 15}",
        workspace=settings.argilla_workspace,
        review_workspace=settings.argilla_review_workspace,
    )


def argilla_connection(settings: Settings) -> ArgillaConnection:
    """Explicit settings first, then the embedded server's owner credentials."""
    if settings.argilla_api_url:
        if not settings.argilla_api_key:
            raise Unavailable("ARBITER_ARGILLA_API_URL is set but ARBITER_ARGILLA_API_KEY is not", code="argilla_not_configured")
        return ArgillaConnection(settings.argilla_api_url, settings.argilla_api_key)
    credentials = Path(settings.var_dir) / "argilla" / "credentials.json"
    if credentials.exists():
        owner = json.loads(credentials.read_text())["owner"]
        return ArgillaConnection(f"http://127.0.0.1:{settings.argilla_port}", owner["api_key"])
    raise Unavailable(
        "Argilla is not configured: run `arbiter argilla up` for the embedded server, "
        "or set ARBITER_ARGILLA_API_URL and ARBITER_ARGILLA_API_KEY",
        code="argilla_not_configured",
    )


def argilla_error(exc: ArgillaClientError) -> ArbiterError:
    """The Arbiter error (code and HTTP status) for a failure of the Argilla client."""
    if isinstance(exc, ArgillaUnavailable):
        return Unavailable(str(exc), code="argilla_unavailable")
    if isinstance(exc, ArgillaAuthError):
        return ArbiterError(str(exc), code="argilla_auth", status=502)
    return ArbiterError(str(exc), code="argilla_error", status=502)


def open_client(connection: ArgillaConnection) -> ArgillaClient:
    try:
        return ArgillaClient(connection)
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc


def _secret_file(settings: Settings) -> Path:
    return Path(settings.var_dir) / "argilla" / "webhook_secret"


def webhook_secret(settings: Settings) -> str:
    """`ARBITER_ARGILLA_WEBHOOK_SECRET`, else the one `arbiter argilla webhook` stored."""
    if settings.argilla_webhook_secret:
        return settings.argilla_webhook_secret
    path = _secret_file(settings)
    return path.read_text().strip() if path.exists() else ""


def store_webhook_secret(settings: Settings, secret: str) -> Path:
    path = _secret_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    path.chmod(0o600)
    return path


def register_webhook(settings: Settings, client: ArgillaClient, url: str) -> Path:
    """Make Argilla call `url` on response events and keep the signing secret where the API finds it."""
    try:
        secret = client.ensure_webhook(url)
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc
    return store_webhook_secret(settings, secret)


def id_chunks(values: list[str]) -> Iterable[list[str]]:
    """`values` in slices small enough for one `IN (...)` query."""
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]
