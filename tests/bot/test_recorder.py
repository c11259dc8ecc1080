"""The batch recorder's view of a burst: whether callbacks are being acknowledged (the sender then sends fewer at once)."""

from __future__ import annotations

import anyio

from bot.engine import Engine
from bot.recorder import BURST_QUIET_SECONDS, BatchRecorder
from handlers.messages import Inbound
from tests.school import REPORT, Chat, chat, engine  # noqa: F401  (fixtures)


def test_a_burst_lasts_while_callbacks_are_recorded_and_a_moment_after(engine: Engine, chat: Chat) -> None:
    recorder = BatchRecorder(engine)

    async def main() -> list[bool]:
        seen = [recorder.acknowledging()]
        msg = Inbound(platform="console", msg_id="m1", chat_id="staff", sender_id="zhang_wei", text=REPORT,
                      received_at=chat.now)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(recorder.record, msg, {})
            await anyio.sleep(0)
            seen.append(recorder.acknowledging())  # being recorded
        seen.append(recorder.acknowledging())  # recorded just now
        await anyio.sleep(BURST_QUIET_SECONDS * 1.5)
        seen.append(recorder.acknowledging())
        return seen

    assert anyio.run(main) == [False, True, True, False]
