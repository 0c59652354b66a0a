"""OpenAI-compatible `POST /v1/moderations`: point the official `openai` SDK's base_url at Arbiter
and `client.moderations.create(input=[...])` answers with the decision path's own moderation chain."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServingDep, require_roles
from app.errors import InvalidInput, error_responses
from app.models import ApiKey
from app.services.serving.moderations import moderation_response

router = APIRouter(prefix="/v1", tags=["moderation"])

MAX_INPUTS = 64  # texts per request: one provider call moderates them all, so the wait grows with it
MAX_CHARS = 32_000  # per text, as a chat message

Text = Annotated[str, StringConstraints(max_length=MAX_CHARS)]


class TextInput(BaseModel):
    type: Literal["text"]
    text: Text


class ImageInput(BaseModel):
    type: Literal["image_url"]
    image_url: dict


class ModerationRequest(BaseModel):
    input: Union[Text, list[Text], list[Union[TextInput, ImageInput]]] = Field(
        description=f"A text, or a list of 1-{MAX_INPUTS} texts (or text input objects) of at most {MAX_CHARS} characters."
    )
    model: str = Field("arbiter-moderation", max_length=200,
                       description="Ignored: the server's moderation chain answers; `arbiter-moderation` comes back.")
    stage: Literal["input", "output"] = Field(
        "input", description="Arbiter extension: read the texts as user input (the default) or as generated output; "
                             "the moderation policy may treat a category differently (profanity counts on output only).")


class ModerationResultOut(BaseModel):
    flagged: bool = Field(description="Whether the moderation policy would act on this text at the stage.")
    categories: dict[str, bool] = Field(description="Every OpenAI moderation category: flagged by a provider.")
    category_scores: dict[str, float] = Field(description="Every OpenAI moderation category: the highest score any provider gave it.")
    category_applied_input_types: dict[str, list[str]]
    arbiter: dict = Field(description="Arbiter's extras: outcome, decided_by, fallback, errors, other_categories, other_scores, "
                                      "providers, coverage, pii (kinds only), stage.")


class ModerationOut(BaseModel):
    id: str
    model: str
    results: list[ModerationResultOut]


def _texts(value: Union[str, list]) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not items or len(items) > MAX_INPUTS:
        raise InvalidInput(f"input: give 1 to {MAX_INPUTS} texts, got {len(items)}")
    if any(isinstance(item, ImageInput) for item in items):
        raise InvalidInput("input: Arbiter moderates text only; image_url inputs are not supported")
    return [item.text if isinstance(item, TextInput) else item for item in items]


@router.post("/moderations", response_model=ModerationOut, responses=error_responses(503))
async def create_moderation(body: ModerationRequest, serving: ServingDep,
                            _: Annotated[ApiKey, Depends(require_roles("admin", "app", "reviewer"))]) -> dict:
    texts = _texts(body.input)
    # Remote providers may take seconds: keep the event loop free for other requests meanwhile.
    return await run_in_threadpool(moderation_response, serving.safety, texts, body.stage)
