"""Operations: liveness, readiness, Prometheus metrics, and what this runtime is (/v1/status)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runtime.engine.sampling import SAMPLER
from runtime.engine.slots import DECODING_PATH
from runtime.http.drain import shutting_down
from runtime.http.state import runtime_state

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request):
    state = runtime_state(request)
    if state.load_error is not None:
        # A model that cannot load will not recover by waiting: let the orchestrator restart us.
        return JSONResponse({"status": "failed", "error": state.load_error}, status_code=503)
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    state = runtime_state(request)
    if state.drain.requested:  # the load balancer / Worker should send new work elsewhere
        raise shutting_down()
    service = state.require_service()
    return {"status": "ready", "fingerprint": service.models.fingerprint.value}


@router.get("/metrics")
async def metrics(request: Request):
    registry = runtime_state(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/status")
async def status(request: Request):
    state = runtime_state(request)
    service = state.require_service()
    models, settings = service.models, state.settings
    return {
        "fingerprint": models.fingerprint.value,
        "model": {
            "name": models.model.name,
            "sha256": models.model.sha256,
            "n_ctx": models.generator.n_ctx,
            "embedding_dim": models.embedder.dim,
        },
        "backend": models.fingerprint.backend,
        "versions": models.fingerprint.versions,
        "defaults": {
            "seed": settings.default_seed,
            "max_tokens": settings.default_max_tokens,
            "max_tokens_cap": settings.max_tokens_cap,
            "max_choices": settings.max_choices,
        },
        "decoding": SAMPLER,
        "decoding_path": DECODING_PATH,
        "decode_slots": settings.decode_slots,
        "queue_size": settings.queue_size,
        "queue_size_per_tenant": settings.tenant_queue_size,
        # The start-up self-check; the Worker compares `digest` across origins of one fingerprint.
        "probes": state.probes.as_status() if state.probes is not None else None,
    }
