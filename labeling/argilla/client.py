"""Push comparisons to Argilla and pull annotators' responses back, with the official SDK (v2).

`ArgillaClient` wraps `argilla.Argilla` for the three things Arbiter needs:

- `ensure_dataset(spec)`: create the preference dataset (see `schema`) or reuse an existing one.
- `push(spec, items)`: add records whose ids are not in the dataset yet, in batches; after each
  batch the server has confirmed, `on_confirmed(ids)` is called so that the caller can record the
  push in its own store. Ids already in Argilla are reported as `already_present` (a previous run
  may have pushed them and crashed before recording), so a push is idempotent and resumable.
- `pull(spec)`: every annotator's current response per comparison, with the annotator's username
  and the time of the last change.

`find_dataset`, `records_json`, `sdk` and `sdk_errors` are the building blocks the review dataset
(`review_queue`) shares with it.

Failures are mapped in one place (`sdk_errors`) to `ArgillaUnavailable` (cannot connect),
`ArgillaAuthError` (401/403) and `ArgillaClientError` (anything else the server refused).

Responses are read through the SDK's own authenticated HTTP client on the records endpoint,
because the SDK's record objects drop the responses' timestamps and the annotator identity
Arbiter stores with each label. This module does not decide which comparisons to push
(`labeling.selection`) and stores nothing.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import argilla as rg
import httpx
from argilla._exceptions import ArgillaAPIError, ArgillaError
from argilla._exceptions._client import ArgillaCredentialsError
from tqdm import tqdm

from labeling.argilla.review_schema import ReviewDatasetSpec
from labeling.argilla.schema import (
    JUDGES_FIELD,
    DatasetSpec,
    HumanResponse,
    PushItem,
    build_settings,
    parse_api_response,
    settings_problems,
    to_record,
)

__all__ = [
    "ArgillaAuthError",
    "ArgillaClient",
    "ArgillaClientError",
    "ArgillaConnection",
    "ArgillaUnavailable",
    "PullResult",
    "PushResult",
    "sdk_errors",
]

log = logging.getLogger(__name__)

_PAGE = 1000  # the records endpoint's maximum page size
T = TypeVar("T")  # one parsed response: HumanResponse (comparisons) or ReviewResponse (review items)


class ArgillaClientError(RuntimeError):
    """Argilla refused or failed a request."""


class ArgillaUnavailable(ArgillaClientError):
    """Argilla could not be reached (not running, wrong URL, network)."""


class ArgillaAuthError(ArgillaClientError):
    """Argilla rejected the API key or the user's role."""


@dataclass(frozen=True)
class ArgillaConnection:
    """Where Argilla is and who we are there (an owner or admin API key)."""

    api_url: str
    api_key: str
    timeout_s: int = 30
    retries: int = 0  # fail fast: pushes are resumable, a retry loop would only hide an outage

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("http://", "https://")):
            raise ValueError(f"api_url must be an http(s) URL, got {self.api_url!r}")
        if not self.api_key:
            raise ValueError("api_key is required")


@dataclass
class PushResult:
    """What a push did: ids added now, ids that were already there, and the dataset used."""

    dataset: str
    pushed: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)

    @property
    def confirmed(self) -> list[str]:
        """Every id that is in Argilla after this push."""
        return self.pushed + self.already_present


@dataclass
class PullResult(Generic[T]):
    """Responses pulled from a dataset, plus what could not be parsed (never silently dropped)."""

    dataset: str
    responses: list[T] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    records_seen: int = 0


@contextlib.contextmanager
def sdk_errors(action: str) -> Iterator[None]:
    """Map SDK and transport errors to this module's exceptions, with what we were doing."""
    try:
        yield
    except httpx.TransportError as exc:
        raise ArgillaUnavailable(f"Argilla is unreachable while trying to {action}: {exc}") from exc
    except ArgillaAPIError as exc:
        if exc.status_code in (401, 403):
            raise ArgillaAuthError(f"Argilla refused to {action} (HTTP {exc.status_code}): {exc}") from exc
        raise ArgillaClientError(f"Argilla failed to {action} (HTTP {exc.status_code}): {exc}") from exc
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        kind = ArgillaAuthError if code in (401, 403) else ArgillaClientError
        raise kind(f"Argilla failed to {action} (HTTP {code}): {exc.response.text[:300]}") from exc
    except ArgillaCredentialsError as exc:  # the SDK checks the key when the client is created
        raise ArgillaAuthError(f"Argilla rejected the API key while trying to {action}: {exc}") from exc
    except ArgillaError as exc:
        # The SDK wraps connection failures of some calls in its generic error.
        if isinstance(exc.__cause__, httpx.TransportError):
            raise ArgillaUnavailable(f"Argilla is unreachable while trying to {action}: {exc}") from exc
        raise ArgillaClientError(f"Argilla failed to {action}: {exc}") from exc


class ArgillaClient:
    """Arbiter's view of one Argilla server. Create one per job; it holds an HTTP connection pool."""

    def __init__(self, connection: ArgillaConnection):
        self.connection = connection
        with sdk_errors("connect"):
            self._client = rg.Argilla(
                api_url=connection.api_url,
                api_key=connection.api_key,
                timeout=connection.timeout_s,
                retries=connection.retries,
            )

    @property
    def sdk(self) -> rg.Argilla:
        """The SDK client itself, for the other datasets' modules (`review_queue`)."""
        return self._client

    # ------------------------------------------------------------------ datasets

    def find_dataset(self, spec: DatasetSpec | ReviewDatasetSpec) -> rg.Dataset | None:
        """The dataset `spec.name` in `spec.workspace`, or None; a missing workspace is an error."""
        with sdk_errors(f"look up dataset {spec.name!r}"), warnings.catch_warnings():
            # The SDK warns when a name is not found; here that is an expected answer.
            warnings.simplefilter("ignore", UserWarning)
            if self._client.workspaces(name=spec.workspace) is None:
                raise ArgillaClientError(f"Argilla workspace {spec.workspace!r} does not exist")
            return self._client.datasets(name=spec.name, workspace=spec.workspace)

    def ensure_dataset(self, spec: DatasetSpec) -> rg.Dataset:
        """The preference dataset `spec.name`, created with `schema.build_settings` if missing.

        An existing dataset is reused as it is (its task distribution is not changed); it must
        have the fields and the preference question.
        """
        dataset = self.find_dataset(spec)
        if dataset is None:
            with sdk_errors(f"create dataset {spec.name!r}"):
                dataset = rg.Dataset(
                    name=spec.name, workspace=spec.workspace, settings=build_settings(spec), client=self._client
                ).create()
            log.info("created Argilla dataset %s in workspace %s", spec.name, spec.workspace)
        problems = settings_problems(dataset)
        if problems:
            raise ArgillaClientError(f"dataset {spec.name!r} is not a preference dataset: {', '.join(problems)}")
        return dataset

    def records_json(self, dataset: rg.Dataset, include_responses: bool) -> Iterator[dict[str, Any]]:
        """Every record of the dataset as the API returns it (JSON), page by page."""
        http = self._client.api.http_client
        offset = 0
        while True:
            params: dict[str, Any] = {"offset": offset, "limit": _PAGE}
            if include_responses:
                params["include"] = "responses"
            with sdk_errors(f"list records of {dataset.name!r}"):
                response = http.get(f"/api/v1/datasets/{dataset.id}/records", params=params)
                response.raise_for_status()
            items = response.json()["items"]
            yield from items
            if len(items) < _PAGE:
                return
            offset += len(items)

    def existing_ids(self, dataset: rg.Dataset) -> set[str]:
        """The record ids (comparison ids) already in the dataset."""
        return {str(r["external_id"]) for r in self.records_json(dataset, False) if r.get("external_id")}

    # ------------------------------------------------------------------ push

    def push(
        self,
        spec: DatasetSpec,
        items: Sequence[PushItem],
        batch_size: int = 100,
        on_confirmed: Callable[[list[str]], None] | None = None,
    ) -> PushResult:
        """Add the items that are not in the dataset yet; see the module docstring.

        `on_confirmed` runs first for the ids found already present, then after every batch the
        server accepted. If a batch fails, the exception propagates and the batches before it stay
        confirmed, so the next push resumes where this one stopped.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ids = [str(item.comparison_id) for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate comparison ids in one push")

        dataset = self.ensure_dataset(spec)
        present = self.existing_ids(dataset)
        result = PushResult(dataset=spec.name, already_present=[i for i in ids if i in present])
        if result.already_present and on_confirmed is not None:
            on_confirmed(list(result.already_present))

        todo = [item for item in items if str(item.comparison_id) not in present]
        with_judges = JUDGES_FIELD in {f.name for f in dataset.fields}
        for start in tqdm(range(0, len(todo), batch_size), desc="push to Argilla", unit="batch", disable=not todo):
            batch = todo[start : start + batch_size]
            records = [to_record(item, with_judges=with_judges) for item in batch]
            with sdk_errors(f"push {len(records)} records to {spec.name!r}"):
                dataset.records.log(records, batch_size=len(records))
            batch_ids = [str(item.comparison_id) for item in batch]
            result.pushed.extend(batch_ids)
            if on_confirmed is not None:
                on_confirmed(batch_ids)
        return result

    # ------------------------------------------------------------------ pull

    def usernames(self) -> dict[str, str]:
        """Argilla user id -> username (needs an owner or admin key)."""
        with sdk_errors("list users"):
            return {str(user.id): user.username for user in self._client.users}

    def pull(self, spec: DatasetSpec, include_drafts: bool = False) -> PullResult[HumanResponse]:
        """Every annotator's current response per comparison in the dataset.

        Drafts are skipped unless asked for: a draft is not a label yet. A response that cannot
        be parsed is reported in `errors` instead of being dropped silently.
        """
        dataset = self.find_dataset(spec)
        if dataset is None:
            raise ArgillaClientError(f"dataset {spec.name!r} does not exist in workspace {spec.workspace!r}")
        return self.collect_responses(dataset, parse_api_response, include_drafts)

    def collect_responses(self, dataset: rg.Dataset, parse: Callable[[str, str, dict[str, Any]], T],
                          include_drafts: bool = False) -> PullResult[T]:
        """Every response in `dataset`, each parsed by `parse(record id, annotator username, response JSON)`.

        Drafts are skipped unless asked for: a draft is not an answer yet. A response `parse` refuses
        (ValueError) is reported in `errors` instead of being dropped silently.
        """
        result: PullResult[T] = PullResult(dataset=dataset.name)
        users = self.usernames()
        for record in self.records_json(dataset, include_responses=True):
            result.records_seen += 1
            record_id = record.get("external_id") or record["id"]
            for response in record.get("responses") or []:
                if response.get("status") == "draft" and not include_drafts:
                    continue
                annotator = users.get(str(response.get("user_id")), str(response.get("user_id")))
                try:
                    result.responses.append(parse(record_id, annotator, response))
                except ValueError as exc:
                    result.errors.append(str(exc))
        return result

    # ------------------------------------------------------------------ webhooks

    def ensure_webhook(self, url: str, events: Sequence[str] = ("response.created", "response.updated")) -> str:
        """Make Argilla call `url` on response events; returns the webhook's signing secret.

        Reuses an existing webhook with the same URL (adding missing events), so it is safe to
        call on every start.
        """
        with sdk_errors("register webhook"):
            for webhook in self._client.webhooks:
                if webhook.url == url:
                    missing = [e for e in events if e not in webhook.events]
                    if missing or not webhook.enabled:
                        webhook.events = list(webhook.events) + missing
                        webhook.enabled = True
                        webhook.update()
                    return webhook.secret
            # `_client` is the SDK's own way to bind a resource to a client other than the default.
            webhook = rg.Webhook(
                url=url, events=list(events), description="Arbiter label ingest", _client=self._client
            ).create()
            return webhook.secret
