"""An annotator in a real browser: log in to the embedded Argilla, answer a pending pair, and
Arbiter pulls the answer into a human label.

Headless Chromium through Selenium (Debian packages `chromium` and `chromium-driver`); skipped
with the reason when they or the embedded Argilla are missing. Screenshots go to
`test-artifacts/` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.db import session_scope
from app.models import Candidate, Comparison, Label, Task
from app.services.argilla import open_client
from app.services.labels.argilla_sync import dataset_spec, pull_labels, push_comparisons
from labeling.argilla import ArgillaConnection

pytestmark = [pytest.mark.argilla, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

PROMPT = "What is a safe way to dispose of old batteries?"
RESPONSE_A = "Throw them in the household bin."
RESPONSE_B = "Take them to a battery **recycling point**; many shops collect them."


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="arbiter-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _seed(engine) -> str:
    with session_scope(engine) as s:
        task = Task(prompt=[{"role": "user", "content": PROMPT}], content_hash=uuid.uuid4().hex, source="e2e")
        s.add(task)
        s.flush()
        a = Candidate(task_id=task.id, content=RESPONSE_A, content_hash="a")
        b = Candidate(task_id=task.id, content=RESPONSE_B, content_hash="b")
        s.add_all([a, b])
        s.flush()
        comparison = Comparison(task_id=task.id, candidate_a_id=a.id, candidate_b_id=b.id,
                                pair_hash=uuid.uuid4().hex, source="e2e")
        s.add(comparison)
        s.flush()
        s.add(Label(comparison_id=comparison.id, choice="a", confidence=0.55, source="llm_judge",
                    producer="judge-x", judge="judge-x", details={"consistent": False}))
        return comparison.id


def test_annotator_answers_in_the_browser_and_arbiter_pulls_it(engine, settings, live, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    comparison_id = _seed(engine)
    settings = settings.model_copy(update={"argilla_workspace": live.instance.workspace,
                                           "argilla_dataset": f"browser-{uuid.uuid4().hex[:8]}"})
    client = open_client(ArgillaConnection(live.instance.url, live.instance.owner.api_key))
    spec = dataset_spec(settings)
    assert push_comparisons(engine, client, spec, strategy="uncertainty", limit=5).pushed == 1
    ARTIFACTS.mkdir(exist_ok=True)
    wait = WebDriverWait(browser, 60)

    # Log in as the annotator, like a person would.
    browser.get(f"{live.instance.url}/sign-in")
    wait.until(ec.presence_of_element_located((By.NAME, "Username"))).send_keys(live.instance.annotator.username)
    browser.find_element(By.NAME, "Password").send_keys(live.instance.annotator.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # The dataset card on the home page leads to the pending queue.
    dataset = client._client.datasets(name=spec.name, workspace=spec.workspace)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"a[href*='{dataset.id}']"))).click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), PROMPT))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "label[for='preference_b']")))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert RESPONSE_A in page and "recycling point" in page and "Pending" in page
    browser.save_screenshot(str(ARTIFACTS / "argilla_annotator_pending.png"))

    # The judge's suggestion pre-selects A; the annotator prefers B, explains, and submits.
    browser.find_element(By.CSS_SELECTOR, "label[for='preference_b']").click()
    rationale = browser.find_element(By.CSS_SELECTOR, "[aria-label='Question: rationale'] [contenteditable='true']")
    rationale.click()
    rationale.send_keys("B is safe; A harms the environment.")
    browser.find_element(By.CSS_SELECTOR, "label[for='safety_flags_a_unsafe']").click()
    browser.save_screenshot(str(ARTIFACTS / "argilla_annotator_answer.png"))
    browser.find_element(By.CSS_SELECTOR, "button.button--submit").click()
    # The queue empties once the only pending record is submitted.
    wait.until(lambda d: PROMPT not in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(ARTIFACTS / "argilla_annotator_submitted.png"))

    report = pull_labels(engine, client, spec)
    assert report.created == 1, report
    with Session(engine) as s:
        label = s.exec(select(Label).where(Label.source == "human")).one()
    assert (label.comparison_id, label.producer, label.choice) == (comparison_id, "annotator", "b")
    assert label.rationale == "B is safe; A harms the environment."
    assert label.details["safety_flags"] == ["a_unsafe"]
