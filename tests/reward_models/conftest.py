"""Fixtures for reward-model tests; the tiny model and toy data are built in ``tiny.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tiny import save_tiny_decoder


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory) -> Path:
    return save_tiny_decoder(tmp_path_factory.mktemp("tiny-llama"))
