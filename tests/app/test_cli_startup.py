"""Building the `arbiter` CLI, `--help` and `keys list` import no heavy library.

Each of torch, transformers, TRL, PEFT, sklearn and the Argilla SDK costs seconds to import; a CLI
that loads them for every call made `arbiter --help` take 10-17 s. Only the commands that use them
may import them (bench/cli_startup.py measures the time; this checks the behaviour behind it).
The check runs in a fresh interpreter, because this test process has long imported all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "transformers", "trl", "peft", "sklearn", "argilla", "anthropic", "openai")

PROBE = """
import json, sys
from typer.testing import CliRunner
from app.cli.main import build_cli

cli = build_cli()
runner = CliRunner()
results = {}
for args in (["--help"], ["keys", "list"], ["policy", "--help"], ["review", "list", "--help"]):
    r = runner.invoke(cli, args, catch_exceptions=False)
    results[" ".join(args)] = r.exit_code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"exit_codes": results, "heavy": heavy}))
"""


def test_cli_builds_and_lists_keys_without_heavy_imports(cli_env):
    env = {"ARBITER_DATABASE_URL": cli_env.sqlalchemy_url, "ARBITER_VAR_DIR": str(cli_env.var_dir),
           "ARBITER_ENVIRONMENT": "test", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["exit_codes"] == {"--help": 0, "keys list": 0, "policy --help": 0, "review list --help": 0}
    assert out["heavy"] == [], f"building the CLI imported {out['heavy'][:10]}"
