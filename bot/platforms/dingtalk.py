"""DingTalk (钉钉) adapter — being written."""

from __future__ import annotations

from fastapi import FastAPI

from bot.platforms.base import Runtime


def install(app: FastAPI, runtime: Runtime) -> None:
    """Register DingTalk's callback routes, deliveries, renderer and long connections."""
