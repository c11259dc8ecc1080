"""`ConsolePlatform`: the simulator as a `Platform` (routes only when enabled and guarded; replies inline)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from bot.config import Config
from bot.outbox import Delivery
from bot.platforms.base import MediaFetcher, PlatformDeps, Receiving, Runtime
from bot.platforms.console.guard import SimulatorGuard, simulator_token
from bot.platforms.console.outbound import CHANNEL, ConsoleDelivery, console_push_renderer
from bot.platforms.console.routes import console_router
from bot.pushes import PushRenderer
from bot.secrets import Secrets

log = logging.getLogger(__name__)


class ConsolePlatform:
    """The local chat simulator at /sim: replies go back in the HTTP answer, pushes wait in the outbox."""

    name = "console"
    fetcher: MediaFetcher | None = None  # photos arrive inline, with the message

    def __init__(self, deps: PlatformDeps) -> None:
        self.config: Config = deps.config
        self.secrets: Secrets = deps.secrets
        self.push_renderer: PushRenderer = console_push_renderer
        self.deliveries: Mapping[str, Delivery] = MappingProxyType({CHANNEL: ConsoleDelivery()})

    def use_config(self, config: Config) -> None:
        self.config = config

    def receive(self, runtime: Runtime) -> Receiving:
        """The /sim routes, when the config enables the simulator and it can be guarded (else none, logged)."""
        config = self.config
        if not config.simulator.enabled:
            return Receiving()
        token, refusal = simulator_token(config, self.secrets)
        if refusal is not None:
            log.error(refusal)
            return Receiving()
        return Receiving(routes=console_router(runtime, SimulatorGuard.from_config(config, token)).routes)
