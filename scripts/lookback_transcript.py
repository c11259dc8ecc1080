"""Run a 回头看 through the real engine on the example config and print the transcript as Markdown.

    PYTHONPATH=. MPLBACKEND=Agg .venv/bin/python scripts/lookback_transcript.py > docs/lookback-transcript.md

The example config's look-back groups (commented out in config.example.toml) are switched on, the database is a
fresh SQLite file in a temporary directory, and the clock is fixed: December 2026 in winter-2026 (hazards found,
fixed and closed), then March 2027 in lookback-2027 (earlier findings imported, 复查, a rebound, coverage, a
supervisor's finding, 清零, the archive check and the leaders' digest).
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.config import parse_config
from bot.engine import Engine
from handlers.findings import import_findings, read_sheet
from handlers.messages import Attachment, Inbound
from models.clock import FixedClock
from models.db import make_engine
from models.tables import CampaignRow, DuePush, GroupRow, PersonRow
from scheduler.messages import ComposeSettings, leader_digest

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")
PHOTO = Attachment("photo.jpg", "image/jpeg", b"\xff\xd8 a photo")
FINDINGS_CSV = (
    "来源,单位,部位,问题,发现日期,期限\n"
    "县普查,总务基建处,学生宿舍1号楼,楼道堆放杂物,2026-11-25,\n"
    "市抽查,城南小学,教学楼,疏散指示灯不亮,2026-12-15,2027-03-20\n"
    "省督查,城关二中,教学楼,应急灯不亮,2026-12-20,\n"
)


def example_with_lookback_groups(tmp: Path) -> dict[str, object]:
    """The example config as parsed TOML, with the look-back groups switched on and storage under `tmp`."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    start = text.index("# --- The look-back (回头看) groups")
    end = text.index("# --- WeCom (企业微信) group")
    block = "\n".join(line[2:] if line.startswith("# ") else "" for line in text[start:end].splitlines()[1:])
    data = tomllib.loads(text[:start] + block + "\n" + text[end:])
    data["database"] = {"url": f"sqlite:///{tmp / 'lookback.db'}"}
    data["server"] = {**data["server"], "data_dir": str(tmp / "data"), "handler_processes": 0}  # type: ignore[dict-item]
    data["scheduler"] = {**data["scheduler"], "enabled": False}  # type: ignore[dict-item]
    return data


class Transcript:
    def __init__(self, engine: Engine, clock: FixedClock) -> None:
        self.engine, self.clock = engine, clock
        self.ids = itertools.count(1)
        self.out: list[str] = []
        with Session(engine.db) as session:
            self.names = {p.id: p.name for p in session.exec(select(PersonRow))}

    def heading(self, text: str) -> None:
        self.out += ["", f"## {text}", ""]

    def note(self, text: str) -> None:
        self.out += [text, ""]

    def say(self, person: str, text: str, *, group: str, photo: bool = False) -> str:
        msg = Inbound(platform="console", msg_id=f"t{next(self.ids)}", chat_id=group, sender_id=person, text=text,
                      received_at=self.clock.now(), attachments=(PHOTO,) if photo else ())
        replies = self.engine.handle_sync(msg)
        reply = "\n".join(f"［图片：{r.text}，{len(r.image_png):,} 字节 PNG］" if r.image_png else r.text for r in replies)
        shown = text.replace("\n", " ⏎ ") + ("  📷" if photo else "")
        self.out += [f"**{self.names[person]}**（{group}，{self.clock.now():%m-%d %H:%M}）：`{shown}`", "",
                     "```", reply, "```", ""]
        return reply

    def block(self, title: str, lines: list[str]) -> None:
        self.out += [f"{title}", "", "```", *lines, "```", ""]


def number_of(reply: str) -> int:
    return int(reply.split("#")[1].split("（")[0])


def main() -> int:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = parse_config(example_with_lookback_groups(tmp))
        clock = FixedClock(datetime(2026, 12, 8, 9, 0, tzinfo=TZ), TZ)
        db = make_engine(config.database.url)
        engine = Engine(config=config, db=db, data_dir=tmp / "data", clock=clock)
        engine.start()
        t = Transcript(engine, clock)
        t.out += ["# A 回头看 through the real engine", "",
                  "Produced by `scripts/lookback_transcript.py` on `config.example.toml` with its look-back groups "
                  "switched on, a fresh database and a fixed clock. Every reply below is the bot's own."]

        t.heading("December 2026, winter-2026: hazards found, fixed and closed")
        for place, problem, photos in (("1号教学楼三楼", "灭火器过期", True), ("实验楼二楼", "应急灯不亮", True),
                                       ("图书馆", "插座松动", True), ("学生宿舍2号楼", "楼道堆放杂物", False)):
            n = number_of(t.say("zhang_wei", f"隐患 部位：{place} 问题：{problem} 责任人：王建国 期限：12月15日",
                                group="staff", photo=photos))
            clock.advance(hours=1)
            t.say("wang_jianguo", f"整改 #{n} 已处理", group="staff", photo=photos)
            t.say("li_na", f"销号 #{n}", group="staff")
        n = number_of(t.say("zhang_wei", "隐患 部位：食堂后厨 问题：燃气软管老化 等级：重大 责任人：王建国 期限：12月20日",
                            group="staff", photo=True))
        t.say("wang_jianguo", f"整改 #{n} 已更换软管", group="staff", photo=True)
        t.say("wang_jianguo", f"销号 #{n}", group="staff")
        t.say("zhao_min", f"销号 #{n}", group="staff")
        n = number_of(t.say("zhou_tao", "隐患 部位：食堂 问题：灭火器压力不足 期限：12月15日", group="school2-staff"))
        t.say("zhou_tao", f"整改 #{n} 已更换", group="school2-staff")
        t.say("sun_li", f"销号 #{n}", group="school2-staff")

        clock.set(datetime(2027, 3, 2, 9, 0, tzinfo=TZ))
        t.heading("2027-03-02, lookback-2027 starts: earlier findings in")
        sheet_path = tmp / "findings.csv"
        sheet_path.write_text(FINDINGS_CSV, encoding="utf-8")
        t.note("`safetybot findings import --campaign lookback-2027 findings.csv` with this file:")
        t.block("findings.csv", FINDINGS_CSV.strip().splitlines())
        with Session(engine.db) as session:
            campaign = session.get(CampaignRow, "lookback-2027")
            admin = session.get(PersonRow, "liu_yang")
            assert campaign is not None and admin is not None
            report = import_findings(session, read_sheet(sheet_path), campaign=campaign, campaign_units=None,
                                     reporter=admin, policy=engine.policy, now=engine.now())
            session.commit()
        t.block("It prints:", report.lines())

        t.heading("复查: what winter-2026 closed, re-checked")
        listing = t.say("li_na", "复查", group="lookback-staff")
        numbers = [int(line.split("#")[1].split(" ")[0]) for line in listing.splitlines() if line.startswith("复查 #")]
        t.say("li_na", f"复查 #{numbers[0]} 合格", group="lookback-staff")
        t.say("li_na", f"复查 #{numbers[0]} 合格 灭火器在有效期内", group="lookback-staff", photo=True)
        rebound = t.say("li_na", f"复查 #{numbers[1]} 反弹 应急灯又不亮了", group="lookback-staff")
        t.say("li_na", f"#{number_of(rebound.split('新隐患')[1])}", group="lookback-staff")

        t.heading("覆盖: every school and every building")
        t.say("li_na", "检查 部位：1号教学楼 结果：无隐患 单位：安全保卫处", group="lookback-staff")
        t.say("li_na", "检查 部位：行政楼 结果：无隐患 单位：安全保卫处", group="lookback-staff")
        t.say("zhao_min", "覆盖", group="lookback-leaders")

        t.heading("A supervisor's finding (督导组)")
        t.say("zheng_gang", "隐患 部位：食堂 问题：消防通道上锁 单位：城南小学 期限：3月10日", group="lookback-staff")

        t.heading("清零 and 档案")
        t.say("zhao_min", "清零", group="lookback-leaders")
        t.say("zhao_min", "档案", group="lookback-leaders")

        t.heading("三看 (seed 000)")
        t.say("li_na", "三看 1 是 各部门安全责任书已签订", group="lookback-staff")
        t.say("zhao_min", "三看", group="lookback-staff")

        t.heading("The leaders' digest of 2027-03-03")
        clock.set(datetime(2027, 3, 3, 8, 0, tzinfo=TZ))
        with Session(engine.db) as session:
            campaign = session.get(CampaignRow, "lookback-2027")
            group = session.get(GroupRow, "lookback-leaders")
            assert campaign is not None and group is not None
            push = DuePush(key="demo", kind="leader_digest", campaign_id=campaign.id, group_id=group.id,
                           due_at=clock.now(), send_at=clock.now(), created_at=clock.now(),
                           payload=json.dumps({"cadence": "daily", "escalate_after_days": 3}))
            settings = ComposeSettings(charts_in_digests=True, buildings=tuple(engine.policy.buildings))
            composed = leader_digest(session, push, campaign, group, clock.now(), settings)
        t.block("leader_digest:", [f"［图片：{r.text}，PNG］" if r.image_png else r.text for r in composed.replies])
        engine.db.dispose()
    sys.stdout.write("\n".join(t.out).strip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
