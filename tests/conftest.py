"""Fixtures shared by every test folder.

The store: ``database_url`` is a fresh SQLite file per test, or, when ARBITER_TEST_DATABASE_URL is
set (``make test-postgres``), a fresh PostgreSQL schema per test. Tests marked
``@pytest.mark.both_databases`` run once on each (PostgreSQL on 127.0.0.1:5432, database ``test``;
skipped with a clear reason when that server is not reachable).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_databases: run the test on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def _pg_reachable(url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL not reachable at {url}: {type(exc).__name__}"


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    backend = getattr(request, "param", None) or ("postgresql" if os.environ.get("ARBITER_TEST_DATABASE_URL") else "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'arbiter.db'}"
        return
    base = os.environ.get("ARBITER_TEST_DATABASE_URL") or DEFAULT_PG
    reason = _pg_reachable(base)
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        from app.db import _engine_for

        _engine_for(url).dispose()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def settings(database_url: str, tmp_path: Path):
    from app.settings import Settings

    # No start-up warm-up: it would load SmolLM2 behind every TestClient (tests/app/test_warmup.py covers it).
    return Settings(environment="test", var_dir=tmp_path / "var", database_url=database_url, preload_policies=False)


@pytest.fixture
def engine(settings):
    from app.db import get_engine, upgrade_schema

    engine = get_engine(settings)
    upgrade_schema(engine)
    return engine


@pytest.fixture
def session(engine):
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def app(settings, engine):
    from app.api.main import create_app

    return create_app(settings)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def make_key(engine) -> Callable[[str], str]:
    """``make_key(role)`` -> the secret of a new API key with that role."""
    from app.auth import create_key
    from app.db import session_scope

    def factory(role: str) -> str:
        with session_scope(engine) as s:
            _, secret = create_key(s, role, f"test {role}", actor="test")
        return secret

    return factory


@pytest.fixture
def auth(make_key) -> Callable[[str], dict[str, str]]:
    """``auth(role)`` -> headers carrying a new key of that role."""
    return lambda role: {"Authorization": f"Bearer {make_key(role)}"}


@pytest.fixture
def cli_env(settings, monkeypatch: pytest.MonkeyPatch):
    """Point the `arbiter` CLI (run in-process with typer's CliRunner) at the test store."""
    from app.settings import get_settings

    monkeypatch.setenv("ARBITER_DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("ARBITER_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("ARBITER_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.fixture
def run_cli(cli_env):
    """``run_cli(*args)`` -> typer Result of `arbiter args...` against the test store."""
    from typer.testing import CliRunner

    from app.cli.main import build_cli

    cli = build_cli()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="session")
def hh_path() -> Path:
    """The 1,500 HH-RLHF harmless pairs in ../shared/data (never copied into the repository)."""
    path = SHARED_DATA / "hh_harmless_dev.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared HH-RLHF dev data is needed for this test")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct checkpoint, converted once into the repository's var/models."""
    from reward_models.local_models import smollm2_dir

    return smollm2_dir(REPO / "var" / "models")


@pytest.fixture(scope="session")
def tiny_causal_lm(smollm2_path: Path):
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer: the shape of the policy model, instantly."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture
def tiny_base_dir(tmp_path, tiny_causal_lm):
    """The tiny model saved as a checkpoint, so training and loading read it like a real base model."""
    model, tokenizer = tiny_causal_lm
    path = tmp_path / "tiny-base"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def serving_app(app, settings, engine, tiny_causal_lm):
    """The app with its policies served by the tiny model (the safety layer is the real one)."""
    from app.services.serving.policy_runtime import PolicyRuntime
    from app.services.serving.stack import Serving, build_safety_layer, prepare_store
    from policies.backends.local import TransformersBackend

    model, tokenizer = tiny_causal_lm
    backend = TransformersBackend(model, tokenizer, name="tiny")
    serving = Serving(PolicyRuntime(settings, backend_factory=lambda version: backend), build_safety_layer(settings))
    prepare_store(engine, serving)
    app.state.serving = serving
    return app


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The session's embedded Argilla server (real argilla-server, started once); skips when it cannot run."""
    from tests.labeling.live_argilla import shared_embedded_argilla

    result = shared_embedded_argilla(REPO / "var" / "argilla-venv", tmp_path_factory.mktemp("argilla"), request.config)
    if isinstance(result, str):
        pytest.skip(result)
    return result


@pytest.fixture
def argilla_settings(settings, live):
    """Test settings pointing at the live Argilla, with preference and review datasets of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(update={
        "argilla_api_url": live.instance.url,
        "argilla_api_key": live.instance.owner.api_key,
        "argilla_workspace": live.instance.workspace,
        "argilla_dataset": f"prefs-{suffix}",
        "argilla_review_dataset": f"review-{suffix}",
    })
