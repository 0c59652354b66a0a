"""The trust-and-safety review queue's dataset in Argilla: create it, read its state, write
records, pull reviewers' responses. The dataset's shape is in `review_schema`.

`ReviewQueue` works on one `ArgillaClient` and one `ReviewDatasetSpec`:

- `ensure_dataset()`: create the review dataset or reuse an existing one that has its fields
  and questions.
- `records()`: what the dataset holds per review item (Argilla's record id, the Arbiter status
  the record shows, how many responses were submitted): the caller compares it with its store to
  decide what is new and which records show a stale status.
- `log(records)`: add or update records in batches. Argilla upserts by record id, so logging an
  item twice updates it instead of duplicating it. A record with an `answer` carries it as the
  syncing user's submitted response, which completes it (one submission is enough), so it leaves
  every annotator's pending queue.
- `pull()`: every reviewer's current response per item, with the Argilla username.

It decides nothing about verdicts and stores nothing: the app does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import argilla as rg
from tqdm import tqdm

from labeling.argilla.client import ArgillaClient, ArgillaClientError, PullResult, sdk_errors
from labeling.argilla.review_schema import (
    ReviewDatasetSpec,
    ReviewRecord,
    ReviewResponse,
    build_review_settings,
    fit_answer,
    parse_review_response,
    review_settings_problems,
    to_review_record,
)

__all__ = ["ReviewPullResult", "ReviewQueue", "ReviewRecordState"]

ReviewPullResult = PullResult[ReviewResponse]
"""Responses pulled from the review dataset, plus what could not be parsed (never dropped silently)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewRecordState:
    """One review item's record as Argilla holds it now."""

    item_id: str
    record_id: str  # Argilla's own id
    arbiter_status: str | None  # the status the record shows (metadata)
    submitted: int  # submitted responses


class ReviewQueue:
    """The review dataset `spec` on the server of `client`."""

    def __init__(self, client: ArgillaClient, spec: ReviewDatasetSpec):
        self.client = client
        self.spec = spec
        self._dataset: rg.Dataset | None = None

    def ensure_dataset(self) -> rg.Dataset:
        """The review dataset, created with `build_review_settings` if missing.

        An existing dataset is reused as it is (its categories are not changed); it must have the
        review fields and questions.
        """
        if self._dataset is not None:
            return self._dataset
        dataset = self.client.find_dataset(self.spec)
        if dataset is None:
            with sdk_errors(f"create dataset {self.spec.name!r}"):
                dataset = rg.Dataset(
                    name=self.spec.name,
                    workspace=self.spec.workspace,
                    settings=build_review_settings(self.spec),
                    client=self.client.sdk,
                ).create()
            log.info("created Argilla review dataset %s in workspace %s", self.spec.name, self.spec.workspace)
        problems = review_settings_problems(dataset)
        if problems:
            raise ArgillaClientError(f"dataset {self.spec.name!r} is not a review dataset: {', '.join(problems)}")
        self._dataset = dataset
        return dataset

    def records(self) -> dict[str, ReviewRecordState]:
        """Review item id -> the state of its record, for every record in the dataset."""
        states = {}
        for record in self.client.records_json(self.ensure_dataset(), include_responses=True):
            item_id = str(record.get("external_id") or record["id"])
            states[item_id] = ReviewRecordState(
                item_id=item_id,
                record_id=str(record["id"]),
                arbiter_status=(record.get("metadata") or {}).get("arbiter_status"),
                submitted=sum(1 for r in record.get("responses") or [] if r.get("status") == "submitted"),
            )
        return states

    def log(
        self,
        records: Sequence[ReviewRecord],
        batch_size: int = 100,
        on_confirmed: Callable[[list[str]], None] | None = None,
    ) -> list[str]:
        """Add or update `records`; returns their item ids. `on_confirmed(ids)` runs after every batch
        the server accepted, so a failure part-way leaves the earlier batches confirmed."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ids = [str(r.item_id) for r in records]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate review item ids in one batch of records")
        if not records:
            return []
        dataset = self.ensure_dataset()
        user_id = None
        if any(r.answer is not None for r in records):
            with sdk_errors("identify the syncing user"):
                user_id = self.client.sdk.me.id
            records = [r if r.answer is None else replace(r, answer=fit_answer(r.answer, dataset)) for r in records]
        done: list[str] = []
        for start in tqdm(range(0, len(records), batch_size), desc="review to Argilla", unit="batch"):
            batch = records[start : start + batch_size]
            with sdk_errors(f"write {len(batch)} review records to {self.spec.name!r}"):
                dataset.records.log([to_review_record(r, user_id) for r in batch], batch_size=len(batch))
            batch_ids = [str(r.item_id) for r in batch]
            done.extend(batch_ids)
            if on_confirmed is not None:
                on_confirmed(batch_ids)
        return done

    def pull(self, include_drafts: bool = False) -> ReviewPullResult:
        """Every reviewer's current response per item. Drafts are skipped unless asked for; a
        response that cannot be parsed is reported in `errors`.

        A missing dataset is created (empty) rather than refused: a sync pulls before it pushes, and
        on its first run there is nothing to pull yet.
        """
        return self.client.collect_responses(self.ensure_dataset(), parse_review_response, include_drafts)
