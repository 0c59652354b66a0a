"""The Prometheus alert rules in deploy/prometheus: valid for promtool, unit-tested with promtool, and every
monitor they name is one the monitoring report sets (plus one rule on automatic canary rollbacks)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "arbiter-alerts.yml"
MONITORS = {"input_drift", "action_distribution", "action_entropy", "action_vs_propensity", "reward_drift",
            "safety_rate", "intervention_rate", "review_backlog"}


def test_rules_name_only_monitors_the_report_sets():
    import app.services.monitoring as monitoring

    source = Path(monitoring.__file__).read_text() + (Path(monitoring.__file__).parents[2] / "policies" / "drift.py").read_text()
    assert all(f'"{m}"' in source for m in MONITORS)  # the names the service and policies.drift emit
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    named = set()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        if "arbiter_canary_rollbacks_total" in rule["expr"]:
            continue  # the canary check's counter (app.metrics.CANARY_ROLLBACKS)
        assert "arbiter_monitor_alert" in rule["expr"]
        for match in re.findall(r'monitor=~?"([^"]+)"', rule["expr"]):
            named |= set(match.split("|"))
    assert named == MONITORS


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian: apt-get install prometheus)")
def test_promtool_checks_and_unit_tests_the_rules():
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", "arbiter-alerts.test.yml"], cwd=RULES_DIR,
                          capture_output=True, text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr
