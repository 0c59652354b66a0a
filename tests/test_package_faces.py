"""Package faces are lazy: importing one light module does not load what its siblings need.

``policies/__init__.py`` and ``labeling/__init__.py`` used to import every submodule, so ``policies.ope``
(numpy) pulled in torch and transformers, and ``labeling.agreement`` the Anthropic and OpenAI SDKs. Each case
runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _loaded_after(statement: str, modules: list[str]) -> dict[str, bool]:
    code = f"import json, sys\n{statement}\nprint(json.dumps({{m: m in sys.modules for m in {modules!r}}}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("statement", "heavy"), [
    ("import policies.ope", ["torch", "transformers", "trl"]),
    ("import policies.propensity, policies.rollout", ["torch", "transformers", "trl"]),
    ("import labeling.agreement", ["anthropic", "openai", "torch"]),
    ("import labeling, policies, reward_models", ["torch", "transformers", "anthropic", "openai"]),
])
def test_light_imports_stay_light(statement, heavy):
    assert _loaded_after(statement, heavy) == dict.fromkeys(heavy, False)


def test_the_faces_still_export_every_name():
    import labeling
    import policies

    for package in (policies, labeling):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert missing == [], f"{package.__name__} lists names it cannot give: {missing}"
