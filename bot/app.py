"""The web application: health check, the local chat simulator, and (later) platform callbacks."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bot.config import Config
from bot.engine import Engine
from models.db import make_engine


def build_engine(config: Config) -> Engine:
    """Create the message engine for a config (database, data dir, clock)."""
    return Engine(config=config, db=make_engine(config.database.url), data_dir=Path(config.server.data_dir))


def create_app(config: Config, engine: Engine | None = None) -> FastAPI:
    """Build the ASGI app; the schema is migrated and the config synced before serving."""
    engine = engine or build_engine(config)
    engine.start()
    app = FastAPI(title="safetybot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from bot.platforms.console import console_router

    app.include_router(console_router(engine))
    return app
