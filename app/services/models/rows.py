"""Reading the registries' rows (policies, reward models): one by id, or all of them newest first.

One place decides what a missing id answers (``NotFound`` with the caller's error code) and the
order listings come in. No writes here; state changes live with each registry.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import Session, col, select

from app.errors import NotFound

Row = TypeVar("Row")


def get_row(session: Session, model: type[Row], row_id: str, what: str, code: str) -> Row:
    """The ``model`` row ``row_id``, or ``NotFound(f"{what} {row_id} not found", code=code)``."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{what} {row_id} not found", code=code)
    return row


def newest_first(session: Session, model: type[Row], **equal: Any) -> list[Row]:
    """Every ``model`` row, newest first; ``equal`` keeps those whose column equals a value (a falsy value: no filter)."""
    query = select(model).order_by(col(model.created_at).desc())  # type: ignore[attr-defined]
    for column, value in equal.items():
        if value:
            query = query.where(getattr(model, column) == value)
    return list(session.exec(query).all())
