"""A platform's way out: its outbox channels, with a handled message's `replies` row rendered first.

The handling transaction stores platform-neutral replies (bot/engine.py); the sender hands the row to the
channel's delivery, which is this: the platform renders the replies by the route their message came
(`render_capped`, reading mention targets from the process's directory cache, at least as new as the
directory version the row was handled at), and the first message is
sent in place through the channel, the others handed back with its result for the sender to queue as the
row's children. Rows that are
already platform messages (pushes, those children, rows queued before replies were rendered late) go
straight to the channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import anyio
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session

from bot.outbox import REPLIES_KIND, Delivery, DeliveryResult, Draft, read_replies_row, rendered_row
from handlers.format import fit_replies, merge_replies
from handlers.messages import Reply
from models.directory_cache import DirectoryCache, attach, read_version
from models.ids import storable_id
from models.tables import OutboxMessage


class Renderer(Protocol):
    """Turns replies into platform messages for one inbound message's route."""

    def __call__(self, session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]: ...


# One inbound message may become at most this many text messages (its images and files come on top):
# a reply hundreds of messages long once held a robot's queue for ten minutes.
MAX_REPLY_MESSAGES = 3
REPLY_TEXT_BUDGET = 9000  # bytes of reply text tried first when the replies would need more messages
MEDIA_KINDS = ("image", "file")


def _text_messages(drafts: Sequence[Draft]) -> int:
    return sum(1 for draft in drafts if draft.kind not in MEDIA_KINDS)


def render_capped(renderer: Renderer, session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
    """Render replies into at most MAX_REPLY_MESSAGES text messages: when they need more, their texts
    become one reply, shortened (it then says what was left out) until it fits. Platforms differ in
    message size, so the renderer is the judge."""
    drafts = renderer(session, replies, route)
    if _text_messages(drafts) <= MAX_REPLY_MESSAGES:
        return drafts
    merged = merge_replies(replies)
    budget = REPLY_TEXT_BUDGET
    while _text_messages(drafts) > MAX_REPLY_MESSAGES and budget >= 500:
        drafts = renderer(session, fit_replies(merged, budget), route)
        budget //= 2
    return drafts


def _reads_directory(replies: Sequence[Reply], route: Mapping[str, Any]) -> bool:
    """Whether rendering looks anyone up: a reply names people, or a card tap names who tapped."""
    return any(reply.mentions for reply in replies) or bool(route.get("card_event"))


class RenderingDelivery:
    """Every outbox channel of one platform, `replies` rows rendered by the platform's renderer first."""

    def __init__(
        self, render: Renderer, db: DbEngine, channels: Mapping[str, Delivery], directory: DirectoryCache | None = None
    ) -> None:
        self.render = render
        self.db = db  # mention targets and names are read at delivery, in the sender's process
        self.directory = directory  # the process's directory cache (shared with its engine), if any
        self.channels: Mapping[str, Delivery] = MappingProxyType(dict(channels))

    def by_channel(self) -> Mapping[str, Delivery]:
        """This delivery under each of the platform's channel names (what the sender is given)."""
        return MappingProxyType({channel: self for channel in self.channels})

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        channel = self.channels.get(message.channel)
        if channel is None:
            return DeliveryResult.fail(f"no delivery configured for channel {message.channel}")
        if message.kind != REPLIES_KIND:
            return await channel.deliver(message)
        try:
            held = read_replies_row(message.payload)
        except ValueError as exc:
            return DeliveryResult.fail(f"unreadable replies row: {exc}")
        drafts = await anyio.to_thread.run_sync(self._render, held.replies, held.route, held.directory_version)
        if drafts and self._fits(message, drafts[0]):
            # The first message goes in place; the rest wait for its outcome and are then queued as `#2` ….
            result = await channel.deliver(rendered_row(message, drafts[0]))
            if not result.waiting:
                # A retryable failure queues nothing: the row is rendered again when retried, so the rest
                # never overtakes the first message.
                return result.then(drafts[1:]) if drafts[1:] and not result.retryable else result
            # Held for a callback to give (a WeCom stream refresh, a card tap's answer): the callback takes a
            # rendered row, so the rendered message is queued in this row's place.
        # A first message for another channel or rate bucket (or none): the sender queues them all, in order.
        return DeliveryResult.expand(drafts)

    def _render(self, replies: list[Reply], route: dict[str, Any], handled_at: int | None = None) -> list[Draft]:
        with Session(self.db) as session:
            if self.directory is not None and _reads_directory(replies, route):
                # Mention targets and names from the process's directory cache: as it is when it is at least as
                # new as the directory the replies were handled with (no query), else at the database's version.
                fresh = self.directory.at_least(handled_at) if handled_at is not None else None
                attach(session, fresh or self.directory.at(session, read_version(session)))
            return render_capped(self.render, session, replies, route)

    @staticmethod
    def _fits(message: OutboxMessage, draft: Draft) -> bool:
        """Whether the draft goes by the row's own channel and rate bucket, so the row can carry it."""
        robot = storable_id(draft.robot) if draft.robot else message.robot
        return (draft.channel or message.channel) == message.channel and robot == message.robot
