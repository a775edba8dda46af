"""The app factory: one FastAPI app per (settings, model loader); models load in the background."""

import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from runtime import routes_native, routes_openai, routes_ops
from runtime.errors import install_error_handlers
from runtime.metrics import RuntimeMetrics
from runtime.middleware import BearerAuthMiddleware, MetricsMiddleware
from runtime.model_source import ModelFile
from runtime.models import LoadedModels, load_models
from runtime.settings import RuntimeSettings
from runtime.state import RuntimeState


def create_app(settings: RuntimeSettings, load: Callable[[], LoadedModels]) -> FastAPI:
    """`load` builds the engines on a thread started with the app, so /readyz is 503 until it ends."""
    state = RuntimeState(settings, RuntimeMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, args=(load,), name="model-loader", daemon=True).start()
        yield
        state.close()

    app = FastAPI(title="steadytext-edge runtime", lifespan=lifespan)
    app.state.runtime = state
    for module in (routes_ops, routes_native, routes_openai):
        app.include_router(module.router)
    install_error_handlers(app)
    if settings.auth_token is not None:
        app.add_middleware(BearerAuthMiddleware, token=settings.auth_token.get_secret_value())
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: 401s are counted too
    return app


def app_for_model(settings: RuntimeSettings, model: ModelFile) -> FastAPI:
    return create_app(settings, lambda: load_models(model, settings))
