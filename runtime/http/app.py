"""The app factory: one FastAPI app per (settings, model loader); models load in the background."""

import asyncio
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from runtime.config.model_source import ModelFile
from runtime.config.settings import RuntimeSettings
from runtime.engine.metrics import RuntimeMetrics
from runtime.engine.models import LoadedModels, load_models
from runtime.errors import install_error_handlers
from runtime.http import routes_native, routes_openai, routes_ops, routes_rerank, routes_tokens
from runtime.http.drain import DrainMiddleware
from runtime.http.emf import LoadReporter
from runtime.http.middleware import BearerAuthMiddleware, MetricsMiddleware
from runtime.http.protection import TaskProtection, agent_uri_from_environment
from runtime.http.state import RuntimeState


def create_app(
    settings: RuntimeSettings, load: Callable[[], LoadedModels], ecs_agent_uri: str | None = None
) -> FastAPI:
    """`load` builds the engines on a thread started with the app, so /readyz is 503 until it ends.

    `ecs_agent_uri` (default: `ECS_AGENT_URI` from the environment) turns on task scale-in protection.
    """
    state = RuntimeState(settings, RuntimeMetrics())
    agent_uri = ecs_agent_uri or agent_uri_from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, args=(load,), name="model-loader", daemon=True).start()
        background = []
        if settings.emf_interval_seconds > 0:
            reporter = LoadReporter(
                state.load_tracker,
                state.metrics,
                settings.emf_namespace,
                settings.emf_service,
                settings.emf_interval_seconds,
            )
            background.append(asyncio.create_task(reporter.run(), name="load-reporter"))
        if agent_uri is not None:
            protection = TaskProtection(
                state.load_tracker, agent_uri, settings.protection_minutes, settings.protection_idle_seconds
            )
            background.append(asyncio.create_task(protection.run(), name="task-protection"))
        yield
        for task in background:
            task.cancel()
        state.close()

    app = FastAPI(title="steadytext-edge runtime", lifespan=lifespan)
    app.state.runtime = state
    for module in (routes_ops, routes_native, routes_openai, routes_tokens, routes_rerank):
        app.include_router(module.router)
    install_error_handlers(app)
    if settings.auth_token is not None:
        app.add_middleware(BearerAuthMiddleware, token=settings.auth_token.get_secret_value())
    app.add_middleware(DrainMiddleware, load=state.load_tracker, drain=state.drain)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: 401s and 503s are counted too
    return app


def app_for_model(settings: RuntimeSettings, model: ModelFile) -> FastAPI:
    return create_app(settings, lambda: load_models(model, settings))
