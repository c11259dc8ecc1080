"""The local chat simulator at /sim: a browser page plus a JSON adapter in front of the runtime.

Like a real platform it only translates HTTP/JSON into `Inbound` and `Reply` into JSON; every message is
recorded through the runtime and handled by the engine's pipeline. Modules: guard (who may use /sim),
views (JSON shapes), routes (the page and API), outbound (push rendering, delivery), platform
(`ConsolePlatform`).
"""

from bot.platforms.console.guard import SimulatorGuard, simulator_token
from bot.platforms.console.outbound import ConsoleDelivery, console_push_renderer
from bot.platforms.console.platform import ConsolePlatform
from bot.platforms.console.views import console_groups, console_people, directory_json, push_to_json, reply_to_json

__all__ = [
    "ConsoleDelivery", "ConsolePlatform", "SimulatorGuard", "console_groups", "console_people", "console_push_renderer",
    "directory_json", "push_to_json", "reply_to_json", "simulator_token",
]
