"""OpenAI-compatible `POST /v1/chat/completions` and `GET /v1/models`: point the official `openai` SDK's base_url at Arbiter."""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.api.deps import EngineDep, ServingDep, require_roles
from app.errors import NotFound, error_responses
from app.models import ApiKey
from app.services.serving.chat import MODEL_ID, chat_completion, served_models

router = APIRouter(prefix="/v1", tags=["chat"])


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=32_000)


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="Send a last chunk with `usage` (and no choices) before [DONE].")


class ChatRequest(BaseModel):
    model: str = Field(MODEL_ID, max_length=200, description=f"`{MODEL_ID}` (see GET /v1/models): the content policy the rollout serves; "
                       "another id gets 404 `model_not_found`. The id comes back in `model`, the policy in `arbiter.policy`.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    max_tokens: Optional[int] = Field(None, ge=1, le=4096)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=4096)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    seed: Optional[int] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = Field(None, max_length=200)


@router.get("/models")
def list_models(_: Annotated[ApiKey, Depends(require_roles("admin", "app"))]) -> dict:
    """The model ids chat completions accept (what many clients ask first)."""
    return {"object": "list", "data": served_models()}


@router.get("/models/{model_id}")
def get_model(model_id: str, _: Annotated[ApiKey, Depends(require_roles("admin", "app"))]) -> dict:
    for model in served_models():
        if model["id"] == model_id:
            return model
    raise NotFound(f"the model {model_id!r} does not exist here; the served model is {MODEL_ID!r}", code="model_not_found")


@router.post("/chat/completions", responses=error_responses(404, 503))
async def chat_completions(body: ChatRequest, engine: EngineDep, serving: ServingDep,
                           _: Annotated[ApiKey, Depends(require_roles("admin", "app"))]):
    result = await chat_completion(engine, serving, [m.model_dump() for m in body.messages],
                                   max_tokens=body.max_completion_tokens or body.max_tokens, temperature=body.temperature,
                                   user=body.user, seed=body.seed, model=body.model)
    if not body.stream:
        return result.body
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def events():
        for chunk in result.chunks(include_usage):
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
