"""OpenAI-compatible `POST /v1/chat/completions`: point the official `openai` SDK's base_url at Arbiter."""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.api.deps import EngineDep, ServingDep, require_roles
from app.models import ApiKey
from app.services.chat import chat_completion

router = APIRouter(prefix="/v1", tags=["chat"])


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=32_000)


class ChatRequest(BaseModel):
    model: str = Field("arbiter", description="Ignored: the serving content policy answers; its name comes back in `model`.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    max_tokens: Optional[int] = Field(None, ge=1, le=4096)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=4096)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    seed: Optional[int] = None
    stream: bool = False
    user: Optional[str] = Field(None, max_length=200)


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, engine: EngineDep, serving: ServingDep,
                           _: Annotated[ApiKey, Depends(require_roles("admin", "app"))]):
    result = await chat_completion(engine, serving, [m.model_dump() for m in body.messages],
                                   max_tokens=body.max_completion_tokens or body.max_tokens, temperature=body.temperature,
                                   user=body.user, seed=body.seed)
    if not body.stream:
        return result

    def events():
        choice = result["choices"][0]
        base = {k: result[k] for k in ("id", "created", "model", "system_fingerprint")} | {"object": "chat.completion.chunk"}
        yield f"data: {json.dumps(base | {'choices': [{'index': 0, 'delta': {'role': 'assistant', 'content': choice['message']['content']}, 'finish_reason': None}]})}\n\n"
        yield f"data: {json.dumps(base | {'choices': [{'index': 0, 'delta': {}, 'finish_reason': choice['finish_reason']}]})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
