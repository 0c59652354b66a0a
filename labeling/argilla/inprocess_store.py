"""Record documents for the in-process search engine, read from argilla-server's database.

The engine answers every search from the documents of one dataset. Building them costs a few
hundred milliseconds for a few thousand records, so they are cached per dataset and rebuilt only
when a cheap fingerprint changes: counts and latest `updated_at` of the dataset's records,
responses, suggestions and metadata properties. Any write by the server or by its rq worker (a
separate process) moves the fingerprint, so the cache cannot serve stale results across
processes; writes in this process also drop the entry at once (`invalidate`).

Rows are read with column queries rather than ORM objects: that is most of the speed.

This module runs inside argilla-server's virtual environment (it imports `argilla_server`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import UUID

from argilla_server.database import AsyncSessionLocal
from argilla_server.models import Field, MetadataProperty, Question, Record, Response, Suggestion, Vector
from sqlalchemy import func, select

try:  # imported as part of the `labeling.argilla` package
    from .record_documents import RecordDoc, ResponseDoc
except ImportError:  # imported as a top-level module inside argilla-server's environment
    from record_documents import RecordDoc, ResponseDoc  # type: ignore[no-redef]

__all__ = ["documents", "invalidate", "vectors"]

MAX_CACHED_DATASETS = 8
_CACHE: OrderedDict[UUID, tuple[tuple, list[RecordDoc]]] = OrderedDict()


def invalidate(dataset_id: UUID | None = None) -> None:
    """Forget one dataset's documents (or all of them)."""
    if dataset_id is None:
        _CACHE.clear()
    else:
        _CACHE.pop(dataset_id, None)


def _text_of(field: Field, value: Any) -> str:
    """The searchable text of one field value (chat messages: their contents; images: nothing)."""
    if value is None or field.is_image:
        return ""
    if field.is_chat and isinstance(value, list):
        return "\n".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return str(value)


async def _fingerprint(db, dataset_id: UUID) -> tuple:
    parts: list[Any] = []
    for model in (Response, Suggestion):
        row = (
            await db.execute(
                select(func.count(model.id), func.max(model.updated_at))
                .join(Record, Record.id == model.record_id)
                .where(Record.dataset_id == dataset_id)
            )
        ).one()
        parts.extend(row)
    for model in (Record, MetadataProperty):
        row = (
            await db.execute(
                select(func.count(model.id), func.max(model.updated_at)).where(model.dataset_id == dataset_id)
            )
        ).one()
        parts.extend(row)
    return tuple(parts)


async def _load(db, dataset_id: UUID) -> list[RecordDoc]:
    fields = (await db.scalars(select(Field).where(Field.dataset_id == dataset_id))).all()
    question_names = dict(
        (await db.execute(select(Question.id, Question.name).where(Question.dataset_id == dataset_id))).all()
    )
    # Like the Elasticsearch mapping, only declared metadata properties are searchable.
    property_names = set(
        (await db.scalars(select(MetadataProperty.name).where(MetadataProperty.dataset_id == dataset_id))).all()
    )
    in_dataset = Record.dataset_id == dataset_id

    docs: dict[UUID, RecordDoc] = {}
    rows = await db.execute(
        select(Record.id, Record.external_id, Record.status, Record.inserted_at, Record.updated_at,
               Record.fields, Record.metadata_)
        .where(in_dataset)
        .order_by(Record.inserted_at.asc(), Record.external_id.asc())
    )
    for record_id, external_id, status, inserted_at, updated_at, values, metadata in rows:
        docs[record_id] = RecordDoc(
            id=str(record_id),
            external_id=external_id,
            status=str(status),
            inserted_at=inserted_at,
            updated_at=updated_at,
            texts={f.name: _text_of(f, (values or {}).get(f.name)) for f in fields},
            metadata={k: v for k, v in (metadata or {}).items() if k in property_names},
        )

    responses = await db.execute(
        select(Response.record_id, Response.user_id, Response.status, Response.values)
        .join(Record, Record.id == Response.record_id)
        .where(in_dataset)
        .order_by(Response.inserted_at.asc())
    )
    for record_id, user_id, status, values in responses:
        docs[record_id].responses.append(
            ResponseDoc(
                user_id=str(user_id),
                status=str(status),
                values={q: (v or {}).get("value") for q, v in (values or {}).items()},
            )
        )

    suggestions = await db.execute(
        select(Suggestion.record_id, Suggestion.question_id, Suggestion.value, Suggestion.score,
               Suggestion.agent, Suggestion.type)
        .join(Record, Record.id == Suggestion.record_id)
        .where(in_dataset)
    )
    for record_id, question_id, value, score, agent, kind in suggestions:
        name = question_names.get(question_id, str(question_id))
        docs[record_id].suggestions[name] = {
            "value": value,
            "score": score,
            "agent": agent,
            "type": str(kind) if kind is not None else None,
        }
    return list(docs.values())


async def documents(dataset_id: UUID) -> list[RecordDoc]:
    """Every record of the dataset as a document, in insertion order (cached, see module doc)."""
    async with AsyncSessionLocal() as db:
        fingerprint = await _fingerprint(db, dataset_id)
        cached = _CACHE.get(dataset_id)
        if cached is not None and cached[0] == fingerprint:
            _CACHE.move_to_end(dataset_id)
            return cached[1]
        docs = await _load(db, dataset_id)
    _CACHE[dataset_id] = (fingerprint, docs)
    _CACHE.move_to_end(dataset_id)
    while len(_CACHE) > MAX_CACHED_DATASETS:
        _CACHE.popitem(last=False)
    return docs


async def vectors(dataset_id: UUID, vector_settings_id: UUID) -> dict[str, list[float]]:
    """record id -> vector value for one vector setting (read fresh: similarity search is rare)."""
    async with AsyncSessionLocal() as db:
        rows = await db.execute(
            select(Vector.record_id, Vector.value)
            .join(Record, Record.id == Vector.record_id)
            .where(Record.dataset_id == dataset_id, Vector.vector_settings_id == vector_settings_id)
        )
        return {str(record_id): value for record_id, value in rows}
