"""The receive pipeline every platform adapter feeds: record, dedupe, identify, parse, route.

Adapters call `record()` in the callback (fast, unique per platform message id), acknowledge,
store the photos they then download (`keep_attachments`), and hand the message over to `process()`.
When the message's route names an outbox channel, its replies become one platform-neutral `replies` outbox row in the same transaction as the handler's changes, so a crash loses
neither or both (the platform renders them when the row is delivered: bot/platforms/replies.py);
`recover()` finishes messages that were recorded but never processed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Engine as DbEngine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from bot.config import Config
from bot.directory.lookup import LookupResult, SenderLookup
from bot.outbox import REPLIES_KIND, replies_payload
from bot.pagelinks import PageLinks
from bot.photolinks import PhotoLinks
from bot.secrets import Secrets
from bot.sync import sync_config
from handlers.context import BuildingRef, ChecklistRef, Context, Policy
from handlers.drafts import follow_up
from handlers.messages import AlertLeaders, Attachment, Effect, Inbound, Outcome, Reply, as_platform
from handlers.parser import parse_message
from handlers.photos import keep_lone_photos
from handlers.understand import Vocabulary
from handlers.router import dispatch
from models import outbox as outbox_store
from models.clock import Clock, SystemClock
from models.db import BUSY_TIMEOUT_SECONDS, journal_engine_for, upgrade, write_gate_for
from models.directory_cache import DirectoryCache, attach, cached, read_version
from models.inbound import (
    Claimed,
    claim_inbound,
    drop_inbound_attachments,
    drop_stale_inbound_attachments,
    finish_inbound,
    InboundRow,
    inbound_attachments,
    load_inbound,
    record_inbound,
    store_inbound_attachments,
    take_inbound_attachments,
    unhandled_inbound,
)
from models.ids import storable_id, storable_text
from models.ledger import descendants
from models.directory import Member
from models.joining import bind_person, decide, needs_lookup, note_chat, note_lookup, note_request, unit_of_department
from models.queries_directory import campaign_for, group_for_chat, group_unit_ids, person_for_sender
from models.tables import CampaignRow, GroupRow, Hazard, InboundMessage, PersonRow
from scheduler.alerts import queue_major_alert

log = logging.getLogger(__name__)

INTERNAL_ERROR_TEXT = "抱歉，处理这条消息时出了问题，已记录下来。已保存的数据不受影响，请稍后再试或联系管理员。"


# What a route kept only to fetch the message's photos (URLs, decryption keys, download codes): fetched by
# the time its replies are queued, so left out of the `replies` row.
FETCH_ONLY_ROUTE_KEYS = frozenset({"media", "credential", "download_codes"})


def storable(msg: Inbound) -> Inbound:
    """The message with whatever the database would refuse made safe (platform payloads are arbitrary JSON)."""
    return replace(
        msg, msg_id=storable_id(msg.msg_id), chat_id=storable_id(msg.chat_id), sender_id=storable_id(msg.sender_id),
        text=storable_text(msg.text), sender_name=storable_text(msg.sender_name),
    )


def _message(row: InboundRow, route: dict[str, Any], attachments: tuple[Attachment, ...]) -> Inbound:
    """A recorded message as handling sees it (its row's values were made storable when it was recorded)."""
    return Inbound(
        platform=as_platform(row.platform), msg_id=row.platform_msg_id, chat_id=row.chat_id, sender_id=row.sender_id,
        text=row.text, received_at=row.received_at, sender_name=str(route.get("sender_name") or ""),
        attachments=attachments,
    )


@dataclass(frozen=True, slots=True)
class Recorded:
    """The result of recording an inbound message: its row id, or None for a platform retry."""

    inbound_id: int | None

    @property
    def duplicate(self) -> bool:
        return self.inbound_id is None


def checklist_of(config: Config) -> tuple[ChecklistRef, ...]:
    """The config's 项目清单 (seed 003 附件1) as the forms need it."""
    return tuple(
        ChecklistRef(item.project, item.seq, item.content, item.method, tuple(item.departments))
        for item in config.checklist
    )


def vocabulary_of(config: Config) -> Vocabulary:
    """The names of the configured people, units and buildings, for reading reports written without keys."""
    return Vocabulary(
        people=tuple(dict.fromkeys(person.name for person in config.people)),
        units=tuple(dict.fromkeys(name for unit in config.units for name in (unit.name, *unit.aliases))),
        buildings=tuple(dict.fromkeys(name for b in config.buildings for name in (b.name, *b.aliases))),
    )


class Engine:
    """Owns the database engine and turns inbound messages into replies."""

    def __init__(
        self,
        *,
        config: Config,
        db: DbEngine,
        data_dir: Path,
        clock: Clock | None = None,
        secrets: Secrets | None = None,
        notify: Callable[[Effect], None] | None = None,
        directory: DirectoryCache | None = None,
    ) -> None:
        self.config = config
        # Told of each effect after its transaction committed (e.g. wakes the scheduler for a 重大 alert),
        # from whichever thread handled the message.
        self.notify = notify
        self.secrets = secrets if secrets is not None else Secrets()
        self.db = db
        self.data_dir = data_dir
        self.tz = config.tz
        self.clock: Clock = clock or SystemClock(self.tz)
        self.policy = Policy(
            general_deadline_days=config.deadlines.general_days,
            major_deadline_days=config.deadlines.major_days,
            withdraw_minutes=config.policy.withdraw_minutes,
            verify_by_other=config.policy.verify_by_other,
            photo_required=frozenset(config.policy.photo_required),
            pending_photo_minutes=config.policy.pending_photo_minutes,
            draft_minutes=config.intake.draft_minutes,
            categories=[(c.name, tuple(c.keywords)) for c in config.categories] or None,
            buildings=tuple(BuildingRef(b.id, b.unit, (b.name, *b.aliases), b.built_year) for b in config.buildings),
            checklist=checklist_of(config),
        )
        self.vocabulary = vocabulary_of(config)
        self.photo_links: PhotoLinks | None = None
        if config.server.public_url:
            self.photo_links = PhotoLinks.from_secret(
                base_url=config.server.public_url,
                secret=self.secrets.get(config.server.link_secret_env),
                ttl=timedelta(hours=config.server.photo_link_hours),
                clock=self.now,
            )
        # Issue 15: signed links to the read-only hazard and leaders' pages, under the photo links' key.
        self.page_links: PageLinks | None = None
        if self.photo_links is not None:
            self.page_links = PageLinks(
                base_url=self.photo_links.base_url, key=self.photo_links.key,
                ttl=timedelta(hours=config.server.page_link_hours), clock=self.now,
            )
        self.give_up_after = timedelta(minutes=config.outbox.give_up_after_minutes)
        self.write_gate = write_gate_for(db)
        # Records callbacks before they are acknowledged: synced to disk, and quick to give up when locked.
        self.journal = journal_engine_for(db)
        # The directory, read once per process and again only after it changed (any process's change).
        self.directory = directory if directory is not None else DirectoryCache(db)
        # Unknown senders are looked up once by id through the directory API when the config names credentials.
        self.lookup: Callable[[str], LookupResult] | None = None
        if config.directory is not None and config.directory.has_api:
            self.lookup = SenderLookup(config, self.secrets)

    def start(self) -> None:
        """Migrate the schema and load the config's directory into the database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(self.db)
        with Session(self.db) as session:
            sync_config(session, self.config)
        self.directory.invalidate()

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.tz)

    # -- pipeline -------------------------------------------------------------------------

    def record(self, msg: Inbound, *, route: dict[str, Any] | None = None) -> Recorded:
        """Store the message under its platform id; a repeated id is a platform retry."""
        return self.record_many([(msg, route)])[0]

    def record_many(self, items: Sequence[tuple[Inbound, dict[str, Any] | None]]) -> list[Recorded]:
        """Store several messages in one statement and one commit (group commit of concurrent callbacks).

        Each gets its row id, or None when its platform id is already stored (or repeated earlier in
        `items`). The route keeps what handling needs later, in any process: the sender's name and
        whatever the platform needs to fetch the message's photos.
        """
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        keys: list[tuple[str, str]] = []
        for msg, route in items:
            msg = storable(msg)
            key: tuple[str, str] = (msg.platform, msg.msg_id)
            keys.append(key)
            rows.setdefault(key, dict(
                platform=msg.platform,
                platform_msg_id=msg.msg_id,
                chat_id=msg.chat_id,
                sender_id=msg.sender_id,
                text=msg.text,
                received_at=msg.received_at,
                state="received",
                photos=0,  # the receiving side stores them after the ack (keep_attachments)
                route=json.dumps({**(route or {}), "sender_name": msg.sender_name}, ensure_ascii=False),
            ))
        # One Core executemany (a single multi-row INSERT), not an ORM unit of work: this runs before acks.
        with self.write_gate(timeout=BUSY_TIMEOUT_SECONDS), self.journal.begin() as connection:
            ids = record_inbound(connection, list(rows.values()))
        recorded: list[Recorded] = []
        for key in keys:
            recorded.append(Recorded(ids.pop(key, None)))  # pop: a repeat within the batch is a retry too
        return recorded

    def keep_attachments(self, inbound_id: int, attachments: Sequence[Attachment]) -> None:
        """Store the photos the receiving side downloaded for a recorded message, before handing it over."""
        files = [(a.filename, a.content_type, a.data) for a in attachments]
        with self.write_gate(), Session(self.db) as session:
            store_inbound_attachments(session, inbound_id, files)
            session.commit()

    def drop_stale_attachments(self, *, older_than: timedelta) -> int:
        """Delete stored photos of messages handled without taking them, or recorded `older_than` ago."""
        with self.write_gate(), Session(self.db) as session:
            dropped = drop_stale_inbound_attachments(session, received_before=self.now() - older_than)
            session.commit()
        return dropped

    def load(self, inbound_id: int) -> tuple[Inbound, dict[str, Any]] | None:
        """A recorded message (with its stored photos) and its route, while it still awaits handling (else None)."""
        with Session(self.db) as session:
            row = load_inbound(session, inbound_id)
            if row is None:
                return None
            stored = inbound_attachments(session, inbound_id) if row.photos else []  # a text message: no query
            attachments = tuple(Attachment(filename=a.filename, content_type=a.content_type, data=a.data) for a in stored)
        route = json.loads(row.route)
        return _message(row, route, attachments), route

    def work(self, inbound_id: int) -> list[Reply]:
        """Handle a recorded message by its id, with the photos stored for it (a handler process's path): the
        claim reads the message and its photos go with it, so nothing is read before. [] when it no longer
        awaits handling (handled meanwhile) or got no reply."""
        if self.lookup is not None:  # the sender may be looked up over the network first, outside the transaction
            loaded = self.load(inbound_id)
            return self.process(loaded[0], inbound_id) if loaded is not None else []
        return self._process(None, inbound_id, None)

    def unhandled(self, *, older_than: timedelta) -> list[int]:
        """Ids of messages recorded at least `older_than` ago and never handled (their process died)."""
        cutoff = self.now() - older_than
        with Session(self.db) as session:
            return unhandled_inbound(session, received_before=cutoff)

    def process(self, msg: Inbound, inbound_id: int | None = None) -> list[Reply]:
        """Handle a recorded message once; never raises, never leaks a stack trace into the chat.

        Returns [] when another worker (recovery, another process) already handled the message.
        """
        msg = storable(msg)
        looked_up = self._look_up_sender(msg)  # a network call, before any lock or transaction
        return self._process(msg, inbound_id, looked_up)

    def _process(self, given: Inbound | None, inbound_id: int | None, looked_up: LookupResult | None) -> list[Reply]:
        """`process`, of the message `given` or (None) of the one the claim reads, with its stored photos."""
        msg = given
        with self.write_gate():
            for attempt in (1, 2):
                with Session(self.db) as session:
                    try:
                        taken = self._claim_message(session, inbound_id, given)
                        if taken is None:
                            return []
                        claimed, msg = taken
                        outcome = self._handle(session, msg, inbound_id, claimed, looked_up)
                        effects = self._record_effects(session, outcome.effects, now=msg.received_at.astimezone(self.tz))
                        self._finish(session, msg, inbound_id, outcome.replies, "handled", claimed.route)
                        session.commit()
                        self._notify(effects)
                        return outcome.replies
                    except Exception as exc:
                        session.rollback()
                        what = f"{msg.platform}/{msg.msg_id}" if msg is not None else f"inbound message {inbound_id}"
                        # A connection the database closed (a restart within the pool's idle ping time): nothing
                        # was kept, so the message is handled again on a fresh connection.
                        if attempt == 1 and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                            log.warning("handling message %s: the database connection was lost, trying again", what)
                            continue
                        log.exception("handling message %s failed", what)
                        break
            replies = [Reply(INTERNAL_ERROR_TEXT)]
            with Session(self.db) as session:
                taken = self._claim_message(session, inbound_id, given, photos=False)
                if taken is None:
                    return []
                claimed, msg = taken
                self._finish(session, msg, inbound_id, replies, "failed", claimed.route)
                session.commit()
            return replies

    @staticmethod
    def _record_effects(session: Session, effects: Sequence[Effect], *, now: datetime) -> list[Effect]:
        """Write what the effects need in the database (the caller's transaction); returns those to announce."""
        announce: list[Effect] = []
        for effect in effects:
            if isinstance(effect, AlertLeaders):
                hazard = session.get(Hazard, effect.hazard_id)
                if hazard is not None and queue_major_alert(session, hazard=hazard, now=now):
                    announce.append(effect)
        return announce

    def _notify(self, effects: Sequence[Effect]) -> None:
        """After the commit: tell the notifier; a failure there must not undo a handled message."""
        if self.notify is None:
            return
        for effect in effects:
            try:
                self.notify(effect)
            except Exception:
                log.exception("notifying %s failed (the scheduler's next tick still sends it)", effect)

    @staticmethod
    def _claim(session: Session, inbound_id: int | None, *, stored_photos: bool = False) -> Claimed | None:
        """Take the row for this transaction: its route (JSON), the directory version and whether photos or
        drafts wait; None when it was handled meanwhile (a message that was never recorded has no route, and
        the version is read later).

        The first statement of the transaction, so it waits for a concurrent handler's commit (row lock on
        PostgreSQL, the write lock on SQLite) and then sees its result; a rollback or a crash undoes the claim.
        The message's stored photos (`stored_photos`: `load` found some) go with the claim: the handlers keep
        those they use in the same transaction, and a rollback keeps them for the next attempt.
        """
        if inbound_id is None:
            return Claimed("{}", None)
        claimed = claim_inbound(session, inbound_id)
        if claimed is not None and stored_photos:
            drop_inbound_attachments(session, inbound_id)
        return claimed

    @classmethod
    def _claim_message(
        cls, session: Session, inbound_id: int | None, given: Inbound | None, *, photos: bool = True
    ) -> tuple[Claimed, Inbound] | None:
        """`_claim`, and the message: `given`, else the claimed row with its stored photos, taken (deleted) in the
        same transaction (`photos=False`: dropped unread, for a message that failed)."""
        if given is not None:
            claimed = cls._claim(session, inbound_id, stored_photos=bool(given.attachments))
            return None if claimed is None else (claimed, given)
        assert inbound_id is not None, "a message that was never recorded is given"
        claimed = claim_inbound(session, inbound_id, message=True)
        if claimed is None or claimed.row is None:
            return None
        row = claimed.row
        attachments: tuple[Attachment, ...] = ()
        if row.photos and photos:
            attachments = tuple(Attachment(name, kind, data) for name, kind, data in take_inbound_attachments(session, inbound_id))
        elif row.photos:
            drop_inbound_attachments(session, inbound_id)
        return claimed, _message(row, json.loads(row.route), attachments)

    def _finish(
        self, session: Session, msg: Inbound, inbound_id: int | None, replies: list[Reply], state: str, route_json: str
    ) -> None:
        """Mark the inbound row and queue its replies as one `replies` outbox row, inside the caller's transaction.

        The row goes by the route's channel and robot bucket; its platform renders it when it is delivered
        (a route without a channel, the simulator's, gets its replies in the HTTP answer instead)."""
        if inbound_id is None:
            return
        route = json.loads(route_json)
        channel = str(route.get("channel") or "")
        reply = None
        if channel and replies:
            reply = outbox_store.new_row(
                dedupe_key=f"reply:{msg.platform}:{msg.msg_id}",
                platform=msg.platform,
                channel=channel,
                robot=storable_id(str(route.get("robot", ""))),  # may embed a chat id
                group_id=route.get("group_id"),
                kind=REPLIES_KIND,
                payload=replies_payload(replies, {k: v for k, v in route.items() if k not in FETCH_ONLY_ROUTE_KEYS},
                                        directory_version=snapshot.version if (snapshot := cached(session)) else None),
                now=self.now(),
                give_up_after=self.give_up_after,
            )
        finish_inbound(session, inbound_id, state=state, reply_text="\n\n".join(r.text for r in replies)[:4000],
                       reply=reply)

    def handle_sync(self, msg: Inbound) -> list[Reply]:
        recorded = self.record(msg)
        if recorded.duplicate:
            return []
        return self.process(msg, recorded.inbound_id)

    async def handle(self, msg: Inbound) -> list[Reply]:
        """Record and process off the event loop (database work is synchronous)."""
        return await anyio.to_thread.run_sync(self.handle_sync, msg)

    def recover(self, *, older_than: timedelta = timedelta(seconds=30)) -> int:
        """Process messages recorded but never handled, with the photos stored for them (downloading the
        photos of those whose download never happened is `Runtime.recover`'s)."""
        ids = self.unhandled(older_than=older_than)
        for inbound_id in ids:
            self.work(inbound_id)
        return len(ids)

    # -- internals ------------------------------------------------------------------------

    def _binds_in_chat(self, msg: Inbound) -> bool:
        """Unknown senders and chats are bound in chat on the directory's platform (`[directory]` configured)."""
        return self.config.directory is not None and msg.platform == self.config.directory.platform

    def _look_up_sender(self, msg: Inbound) -> LookupResult | None:
        """An unknown sender in a known group, looked up through the API once (None: no lookup wanted)."""
        if self.lookup is None or not self._binds_in_chat(msg):
            return None
        with Session(self.db) as session:
            if self.find_person(session, msg.platform, msg.sender_id) is not None:
                return None
            if self.find_group(session, msg.platform, msg.chat_id) is None:
                return None
            if not needs_lookup(session, msg.platform, msg.sender_id, self.now()):
                return None
        try:
            return self.lookup(msg.sender_id)
        except Exception:
            log.exception("directory: looking up a sender failed")
            return LookupResult("failed")

    def _stranger(self, session: Session, msg: Inbound, group: GroupRow | None, looked_up: LookupResult | None,
                  now: datetime) -> PersonRow | Outcome:
        """The person an unknown sender turns out to be (looked up), else what to answer them."""
        from handlers.help import unknown_person_reply
        from handlers.join import Stranger, unknown_sender

        if not self._binds_in_chat(msg):
            return Outcome([unknown_person_reply(session, sender_name=msg.sender_name or msg.sender_id)])
        directory = self.config.directory
        assert directory is not None
        if looked_up is not None:
            request = note_request(session, platform=msg.platform, user_id=msg.sender_id, chat_id=msg.chat_id,
                                   name="", now=now)
            note_lookup(session, request, looked_up.outcome, now)
            person = self._bind_member(session, msg.platform, looked_up.member, directory.schools)
            if person is not None:
                decide(session, request, "bound", by=None, now=now)
                return person
        group_units = set(group_unit_ids(session, group.id)) if group else set()
        command = parse_message(msg.text, today=now.date(), categories=self.policy.categories)
        return Outcome(unknown_sender(
            session, stranger=Stranger(msg.platform, msg.sender_id, msg.chat_id, msg.sender_name), command=command,
            group=group, roots=group_units,
            approve=directory.approve, now=now,
        ))

    @staticmethod
    def _route_robot(route_json: str) -> str | None:
        """The robot that received the message (its route's robot_id, set by the DingTalk adapter), if any."""
        robot = json.loads(route_json or "{}").get("robot_id")
        return str(robot)[:64] if robot else None

    @staticmethod
    def _private(session: Session, msg: Inbound, inbound_id: int | None) -> bool:
        """A one-to-one chat with the bot: the route's chat_type (set by the adapters), else the chat id's shape."""
        row = session.get(InboundMessage, inbound_id) if inbound_id is not None else None
        chat_type = json.loads(row.route or "{}").get("chat_type") if row is not None else None
        if chat_type:
            return str(chat_type) == "single"
        return not msg.chat_id or msg.chat_id.startswith("single:") or msg.chat_id == msg.sender_id

    @staticmethod
    def _bind_member(session: Session, platform: str, member: Member | None, schools: dict[str, str]) -> PersonRow | None:
        """A looked-up member as a person of the unit of their first known department (None: no such unit)."""
        if member is None or not member.active:
            return None
        for dept_id in member.department_ids:
            unit_id = unit_of_department(session, dept_id, schools)
            if unit_id is not None:
                roles = ("unit_head",) if dept_id in member.leader_of else ("teacher",)
                return bind_person(session, platform=platform, user_id=member.user_id, name=member.name,
                                   unit_id=unit_id, roles=roles)
        return None

    def _handle(
        self, session: Session, msg: Inbound, inbound_id: int | None, claimed: Claimed,
        looked_up: LookupResult | None = None,
    ) -> Outcome:
        from handlers.help import no_campaign_reply
        from handlers.join import bind_here, unknown_chat

        directory_version, route_json = claimed.version, claimed.route
        if directory_version is None:
            directory_version = read_version(session)
        attach(session, self.directory.at(session, directory_version))
        person = self.find_person(session, msg.platform, msg.sender_id)
        group = self.find_group(session, msg.platform, msg.chat_id)
        now = msg.received_at.astimezone(self.tz)
        if group is None and self._binds_in_chat(msg) and not self._private(session, msg, inbound_id):
            chat = note_chat(session, msg.platform, msg.chat_id, now)
            admin = person is not None and "admin" in person.role_set
            command = parse_message(msg.text, today=now.date())
            if person is None or not admin or command.command != "register_group":
                return Outcome(unknown_chat(session, person=person, chat=chat))
            return Outcome(bind_here(session, person=person, platform=msg.platform, chat_id=msg.chat_id, group=None,
                                     command=command, robot=self._route_robot(route_json)))
        if person is None:
            found = self._stranger(session, msg, group, looked_up, now)
            if isinstance(found, Outcome):
                return found
            person = found
        campaign = self.find_campaign(session, group, now)
        if campaign is None:
            return Outcome([no_campaign_reply()])
        group_units = group_unit_ids(session, group.id) if group else frozenset()
        context = Context(
            session=session,
            person=person,
            campaign=campaign,
            now=now,
            policy=self.policy,
            data_dir=self.data_dir,
            group=group,
            group_unit_ids=group_units,
            group_scope=frozenset(descendants(session, group_units)) if group_units else frozenset(),
            attachments=msg.attachments,
            inbound_id=inbound_id,
            photo_link=self.photo_links.link if self.photo_links else None,
            page_link=self.page_links.hazard_link if self.page_links else None,
            platform=msg.platform,
            chat_id=msg.chat_id,
            robot=self._route_robot(route_json),
            pending_photos=claimed.pending_photos,
            drafts_in_chat=claimed.drafts_in_chat,
        )
        if not msg.text.strip() and msg.attachments:  # a photo first, the words in the next message
            return Outcome(keep_lone_photos(context))
        command = parse_message(
            msg.text, today=now.date(), categories=self.policy.categories, vocabulary=self.vocabulary
        )
        # An answer to the sender's draft report (王建国, 12月20日 …) settles it; anything else is routed.
        answer = follow_up(msg.text, command, context)
        outcome = answer or dispatch(command, context)
        if msg.attachments and not command.ok and answer is None:  # words we could not use: keep the photos for the next message
            outcome = Outcome([*outcome.replies, *keep_lone_photos(context)], outcome.effects)
        return outcome

    @staticmethod
    def find_person(session: Session, platform: str, sender_id: str) -> PersonRow | None:
        return person_for_sender(session, platform, sender_id)

    @staticmethod
    def find_group(session: Session, platform: str, chat_id: str) -> GroupRow | None:
        return group_for_chat(session, platform, chat_id)

    @staticmethod
    def find_campaign(session: Session, group: GroupRow | None, now: datetime) -> CampaignRow | None:
        """The group's campaign, else the one running today, else the latest started."""
        return campaign_for(session, group, now.date())
