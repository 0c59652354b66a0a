"""What the CLI's text output tells a newcomer: headers, one time format, whose key acted, what a count means."""

from __future__ import annotations

import json
import re

import pytest

from app.cli.label import _run_text
from app.db import session_scope
from app.models import ReviewItem

WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def test_keys_create_and_list_show_created_at_the_same_way(run_cli):
    created = run_cli("keys", "create", "--role", "app", "--name", "billing-bot")
    assert created.exit_code == 0, created.output
    [when] = re.findall(f"created ({WHEN})", created.output)
    listed = run_cli("keys", "list")
    header, row = listed.output.strip().splitlines()
    assert header.split() == ["PREFIX", "ROLE", "ID", "CREATED", "NAME"]
    assert when in row and row.rstrip().endswith("billing-bot")


@pytest.mark.both_databases
def test_audit_list_names_the_key_behind_an_api_action(run_cli, client, auth):
    """The audit trail records `key:<id>` (stable even if a key is renamed); the listing says whose key it is."""
    r = client.post("/v1/keys", json={"role": "app", "name": "shop-frontend"}, headers=auth("admin"))
    assert r.status_code == 201
    text = run_cli("audit", "list").output
    line = next(ln for ln in text.splitlines() if "key.created" in ln and r.json()["id"] in ln)
    assert "test admin (key:" in line
    rows = json.loads(run_cli("audit", "list", "--json").output)
    api_row = next(row for row in rows if row["subject_id"] == r.json()["id"])
    assert api_row["actor"].startswith("key:") and api_row["actor_name"] == "test admin"


def test_review_list_has_a_header_row(run_cli, engine):
    with session_scope(engine) as session:
        session.add(ReviewItem(decision_type="content", kind="flagged", content="some reply", context={},
                               reasons=[{"code": "no-pii"}]))
    lines = run_cli("review", "list").output.strip().splitlines()
    assert lines[0].split()[:4] == ["ID", "STATUS", "KIND", "DECISION"] and "some reply" in lines[1]


def test_label_report_says_where_unlabelable_pairs_go():
    """A pair a judge cannot label goes to the next judge of the chain; after the last one it stays unlabeled."""
    report = {"selected": 10, "labeled": 9, "failed": 1, "cost_usd": 0.0, "skipped_judges": [],
              "judges": {"openai": {"labels": 7, "consistency_rate": 0.9, "cost_usd": 0.01, "failed_pairs": 3},
                         "local": {"labels": 2, "consistency_rate": None, "cost_usd": 0.0, "failed_pairs": 1}}}
    text = _run_text(report)
    assert "openai: 7 labels, consistency 0.90, $0.010000, 3 pairs it could not label (handed to local)" in text
    assert "local: 2 labels, consistency n/a, $0.000000, 1 pairs it could not label (left unlabeled for the next run)" in text
    assert "passed on" not in text
