"""/v1/rerank: documents ordered by their relevance to a query (runtime/engine/relevance.py).

Beside the answer, the header `X-Steadytext-Document-Tokens` (contract/routes.json
`document_tokens_header`) holds each document's prompt tokens in request order, a JSON array: the Worker
caches each (query, document) pair's score on its own and adds these up into the usage of any list.
"""

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runtime.engine.fingerprint import HEADER
from runtime.http.disconnect import while_connected
from runtime.http.routes_openai import accept
from runtime.http.schemas import RerankRequest
from runtime.http.tenant import tenant_of

DOCUMENT_TOKENS_HEADER = "X-Steadytext-Document-Tokens"

router = APIRouter()


@router.post("/v1/rerank")
async def rerank(request: Request):
    body, service = await accept(request, RerankRequest)
    prompts = await service.relevance_prompts(body.query, body.documents)
    scores = await while_connected(request, service.rerank(prompts, tenant_of(request)))
    # Highest score first; equal scores in the order the documents were given.
    order = sorted(range(len(scores)), key=lambda index: (-scores[index], index))[: body.top_n]
    results = []
    for index in order:
        result: dict = {"index": index, "relevance_score": scores[index]}
        if body.return_documents:
            result["document"] = {"text": body.documents[index]}
        results.append(result)
    tokens = [len(prompt) for prompt in prompts]
    fingerprint = service.models.fingerprint.value
    answer = {
        "model": service.models.model.name,
        "fingerprint": fingerprint,
        "results": results,
        "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)},
    }
    headers = {HEADER: fingerprint, DOCUMENT_TOKENS_HEADER: json.dumps(tokens, separators=(",", ":"))}
    return JSONResponse(answer, headers=headers)
