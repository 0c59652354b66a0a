"""An argilla-server search engine that needs no Elasticsearch: it answers from the database.

argilla-server keeps records, responses and suggestions in its SQL database and mirrors them into
Elasticsearch/OpenSearch only to search them. For one machine and a few thousand records that
mirror is not worth a JVM: this engine, registered as `"arbiter-inprocess"` through
`SearchEngine.register`, reads the documents Elasticsearch would hold from the database
(`inprocess_store`, cached per dataset behind a change fingerprint) and filters, scores and sorts
them in Python (`record_documents`). The database stays the only copy: the index hooks
(`index_records`, `update_record_response`, ...) merely drop cached documents, the server and its
rq worker can never disagree, and a restart needs no re-index.

What it serves (what the Argilla UI and SDK ask for): records by response status per user
(pending / draft / submitted / discarded), text queries, metadata / suggestion / response /
record-property filters, sorting (records, metadata, suggestions, responses), dataset and
per-user progress counts, metadata metrics, and brute-force vector similarity.

Deliberate differences from the Elasticsearch engine:
- Without an explicit sort, records come in insertion order (score first for text queries).
  Elasticsearch shuffles them per user; Arbiter pushes records in priority order and wants
  annotators to see them in that order.
- Per-user progress counts only that user's responses (Elasticsearch's nested aggregation also
  counts other users' responses on the same records).
- Cost is O(records in the dataset) per query: fine for thousands, not for millions. Use the
  official image with Elasticsearch at that scale.

This module runs inside argilla-server's virtual environment (it imports `argilla_server`), never
inside Arbiter's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from argilla_server.database import AsyncSessionLocal
from argilla_server.enums import MetadataPropertyType, ResponseStatusFilter, SimilarityOrder, SortOrder
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)
from sqlalchemy import func, select

try:  # imported as part of the `labeling.argilla` package
    from . import inprocess_store as store
    from . import record_documents as matching
except ImportError:  # imported as a top-level module inside argilla-server's environment
    import inprocess_store as store  # type: ignore[no-redef]
    import record_documents as matching  # type: ignore[no-redef]

ENGINE_NAME = "arbiter-inprocess"


def _user_id(user: User | None) -> str | None:
    return str(user.id) if user is not None else None


@SearchEngine.register(engine_name=ENGINE_NAME)
class InProcessSearchEngine(SearchEngine):
    """Answers argilla-server's search calls from its own database (see the module docstring)."""

    @classmethod
    async def new_instance(cls) -> InProcessSearchEngine:
        return cls()

    async def close(self):
        pass

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {"engine": ENGINE_NAME, "storage": "argilla-server database"}

    # ---------------------------------------------------------------- index hooks
    # The database is the index: a write only makes this process's cached documents stale (the
    # store's fingerprint catches writes made by other processes, such as the rq worker).

    async def create_index(self, dataset: Dataset):
        store.invalidate(dataset.id)

    async def delete_index(self, dataset: Dataset):
        store.invalidate(dataset.id)

    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty):
        store.invalidate(dataset.id)

    async def index_records(self, dataset: Dataset, records: Iterable[Record]):
        store.invalidate(dataset.id)

    async def partial_record_update(self, record: Record, **update):
        store.invalidate(record.dataset_id)

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]):
        store.invalidate(dataset.id)

    async def update_record_response(self, response: Response):
        store.invalidate()  # the response's record may not be loaded; dropping everything is cheap

    async def delete_record_response(self, response: Response):
        store.invalidate()

    async def update_record_suggestion(self, suggestion: Suggestion):
        store.invalidate()

    async def delete_record_suggestion(self, suggestion: Suggestion):
        store.invalidate()

    # ---------------------------------------------------------------- filters and sorting

    def _matches(self, doc: matching.RecordDoc, filter: Filter) -> bool:
        if isinstance(filter, AndFilter):
            return all(self._matches(doc, f) for f in filter.filters)
        scope = filter.scope
        if isinstance(scope, ResponseFilterScope):
            return self._matches_response_filter(doc, filter)
        if isinstance(scope, MetadataFilterScope):
            value = doc.metadata.get(scope.metadata_property)
        elif isinstance(scope, SuggestionFilterScope):
            value = doc.suggestions.get(scope.question, {}).get(scope.property)
        elif isinstance(scope, RecordFilterScope):
            value = doc.record_property(scope.property)
        else:
            raise TypeError(f"Cannot process filter scope {scope}")
        return _apply(filter, value)

    def _matches_response_filter(self, doc: matching.RecordDoc, filter: Filter) -> bool:
        scope: ResponseFilterScope = filter.scope
        user_id = _user_id(scope.user)
        mine = [r for r in doc.responses if user_id is None or r.user_id == user_id]
        if scope.question:
            return any(_apply(filter, r.values.get(scope.question)) for r in mine)
        if scope.property == "status" and isinstance(filter, TermsFilter):
            statuses = {str(v) for v in filter.values}
            # "pending" for a user means "this user has not responded yet" (no response at all).
            if ResponseStatusFilter.pending.value in statuses and not mine:
                return True
            return any(r.status in statuses for r in mine)
        raise ValueError(f"Cannot process filter scope {scope}")

    def _sort_getter(self, order: Order):
        scope = order.scope
        if isinstance(scope, MetadataFilterScope):
            return lambda d: d.metadata.get(scope.metadata_property)
        if isinstance(scope, SuggestionFilterScope):
            return lambda d: d.suggestions.get(scope.question, {}).get(scope.property)
        if isinstance(scope, RecordFilterScope):
            return lambda d: d.record_property(scope.property)
        if isinstance(scope, ResponseFilterScope):
            user_id = _user_id(scope.user)
            key = scope.question or scope.property

            def response_value(doc: matching.RecordDoc):
                values = [
                    (r.values.get(key) if scope.question else getattr(r, key, None))
                    for r in doc.responses
                    if user_id is None or r.user_id == user_id
                ]
                values = [v for v in values if v is not None]
                numbers = [v for v in values if isinstance(v, (int, float))]
                if numbers:  # Elasticsearch's nested sort in "avg" mode
                    return sum(numbers) / len(numbers)
                return values[0] if values else None

            return response_value
        raise ValueError(f"Cannot sort by scope {scope}")

    # ---------------------------------------------------------------- search

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | None = None,  # Elasticsearch seeds a per-user shuffle with it; unused here
    ) -> SearchResponses:
        docs = await store.documents(dataset.id)
        scored = self._filter_and_score(dataset, docs, query, filter)
        if sort:
            keys = [(self._sort_getter(o), o.order == SortOrder.desc) for o in sort]
            ordered = matching.sort_documents([d for d, _ in scored], keys)
            scores = {d.id: s for d, s in scored}
            ranked = [(d, scores[d.id]) for d in ordered]
        elif query is not None:
            ranked = sorted(scored, key=lambda ds: -ds[1])  # stable: ties keep insertion order
        else:
            ranked = scored
        page = ranked[offset : offset + limit]
        return SearchResponses(
            items=[SearchResponseItem(record_id=UUID(d.id), score=s) for d, s in page],
            total=len(ranked),
        )

    def _filter_and_score(
        self,
        dataset: Dataset,
        docs: list[matching.RecordDoc],
        query: TextQuery | str | None,
        filter: Filter | None,
    ) -> list[tuple[matching.RecordDoc, float]]:
        if isinstance(query, str):
            query = TextQuery(q=query)
        if query is not None and query.field and dataset.field_by_name(query.field) is None:
            raise ValueError(f"Field {query.field} not found in dataset {dataset.id}")
        clauses = matching.parse_text_query(query.q) if query is not None else []

        result = []
        for doc in docs:
            if filter is not None and not self._matches(doc, filter):
                continue
            score = 1.0
            if query is not None:
                found = matching.score_tokens(clauses, doc.tokens(query.field))
                if found is None:
                    continue
                score = found
            result.append((doc, score))
        return result

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError("Must provide either vector value or record to compute the similarity search")
        excluded = str(record.id) if record is not None else None
        if not value:
            value = record.vector_value_by_vector_settings(vector_settings)
        if not value:
            raise ValueError("Cannot find a vector value to apply with provided info")

        docs = await store.documents(dataset.id)
        stored = await store.vectors(dataset.id, vector_settings.id)
        candidates = []
        for doc, _ in self._filter_and_score(dataset, docs, query, filter):
            if doc.id == excluded or doc.id not in stored:
                continue
            similarity = matching.cosine_similarity(value, stored[doc.id])
            if order == SimilarityOrder.least_similar:
                similarity = -similarity
            # Elasticsearch reports cosine knn scores as (1 + cosine) / 2.
            candidates.append((doc, (1.0 + similarity) / 2.0))
        candidates.sort(key=lambda ds: -ds[1])
        if threshold is not None:
            candidates = [(d, s) for d, s in candidates if s >= threshold]
        candidates = candidates[:max_results]
        return SearchResponses(
            items=[SearchResponseItem(record_id=UUID(d.id), score=s) for d, s in candidates],
            total=len(candidates),
        )

    # ---------------------------------------------------------------- counts and metrics

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        async with AsyncSessionLocal() as db:
            rows = (
                await db.execute(
                    select(Record.status, func.count()).where(Record.dataset_id == dataset.id).group_by(Record.status)
                )
            ).all()
        counts = {str(status): n for status, n in rows}
        return {"total": sum(counts.values()), **counts}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        async with AsyncSessionLocal() as db:
            rows = (
                await db.execute(
                    select(Response.status, func.count())
                    .join(Record, Record.id == Response.record_id)
                    .where(Record.dataset_id == dataset.id, Response.user_id == user.id)
                    .group_by(Response.status)
                )
            ).all()
        counts = {str(status): n for status, n in rows}
        return {"total": sum(counts.values()), **counts}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        docs = await store.documents(metadata_property.dataset_id)
        values = []
        for doc in docs:
            value = doc.metadata.get(metadata_property.name)
            if value is None:
                continue
            values.extend(value if isinstance(value, list) else [value])

        if metadata_property.type == MetadataPropertyType.terms:
            counts: dict[str, int] = {}
            for v in values:
                counts[str(v)] = counts.get(str(v), 0) + 1
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            return TermsMetrics(
                total=len(values),
                values=[TermsMetrics.TermCount(term=t, count=c) for t, c in ordered],
            )
        metrics_class = (
            IntegerMetadataMetrics if metadata_property.type == MetadataPropertyType.integer else FloatMetadataMetrics
        )
        numbers = [v for v in values if isinstance(v, (int, float))]
        return metrics_class(min=min(numbers) if numbers else None, max=max(numbers) if numbers else None)


def _apply(filter: Filter, value: Any) -> bool:
    if isinstance(filter, TermsFilter):
        return matching.terms_match(value, filter.values)
    if isinstance(filter, RangeFilter):
        return matching.range_match(value, filter.ge, filter.le)
    raise ValueError(f"Cannot process filter {filter}")


__all__ = ["ENGINE_NAME", "InProcessSearchEngine"]
