"""`arbiter agreement --json` and `GET /v1/labeling/agreement` over labels in the store."""

from __future__ import annotations

import json

import pytest

from app.db import session_scope
from app.models import Label
from tests.app.factories import add_comparison

# Three comparisons, two annotators, two judges. Human majority: c0 -> a, c1 -> b; c2 is split.
HUMAN = {0: {"ann": "a", "bob": "a"}, 1: {"ann": "b", "bob": "b"}, 2: {"ann": "a", "bob": "b"}}
JUDGES = {0: {"good": "a", "bad": "b"}, 1: {"good": "b", "bad": "a"}, 2: {"good": "a", "bad": "a"}}


@pytest.fixture
def labelled(engine) -> list[str]:
    ids = []
    with session_scope(engine) as s:
        for i in range(3):
            c = add_comparison(s, f"q{i}", "x", "y")
            ids.append(c.id)
            for annotator, choice in HUMAN[i].items():
                s.add(Label(comparison_id=c.id, choice=choice, source="human", producer=annotator))
            for judge, choice in JUDGES[i].items():
                s.add(Label(comparison_id=c.id, choice=choice, source="llm_judge", producer=judge, judge=judge))
            # Neither an imported dataset label nor a discarded record is an annotator's preference.
            s.add(Label(comparison_id=c.id, choice="a", source="human", producer="dataset:hh.jsonl"))
            s.add(Label(comparison_id=c.id, choice="discarded", source="human", producer="carol"))
    return ids


def _check(report: dict) -> None:
    assert (report["n_items"], report["n_with_majority"], report["n_multiply_annotated"]) == (3, 2, 3)
    # Two raters, 3 units: values a,a | b,b | a,b -> coincidences give alpha = 1 - 5*2/(36-18) = 4/9.
    assert report["krippendorff_alpha"] == pytest.approx(1 - 5 * 2 / 18)
    judges = {j["judge"]: j for j in report["judges"]}
    assert judges["good"]["n"] == 2 and judges["good"]["agreement"] == 1.0 and judges["good"]["kappa"] == 1.0
    assert judges["bad"]["agreement"] == 0.0 and judges["bad"]["kappa"] == pytest.approx(-1.0)
    annotators = {a["annotator"]: a for a in report["annotators"]}
    assert set(annotators) == {"ann", "bob"}
    assert annotators["ann"]["n_labels"] == 3 and annotators["ann"]["agreement_with_majority"] == pytest.approx(2 / 3)


def test_cli_agreement_json(labelled, run_cli):
    result = run_cli("agreement", "--json")
    assert result.exit_code == 0, result.output
    _check(json.loads(result.stdout))
    with_imported = json.loads(run_cli("agreement", "--json", "--include-imported").stdout)
    assert "dataset:hh.jsonl" in {a["annotator"] for a in with_imported["annotators"]}


def test_api_agreement_with_roles(labelled, client, auth):
    response = client.get("/v1/labeling/agreement", headers=auth("annotator"))
    assert response.status_code == 200
    _check(response.json())
    assert client.get("/v1/labeling/agreement", headers=auth("app")).status_code == 403
    assert client.get("/v1/labeling/agreement").status_code == 401


def test_empty_store_gives_undefined_not_errors(engine, client, auth):
    report = client.get("/v1/labeling/agreement", headers=auth("reviewer")).json()
    assert report["n_items"] == 0 and report["krippendorff_alpha"] is None and report["judges"] == []
