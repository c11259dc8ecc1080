"""Export time for a large ledger: 100,000 hazards over 330 units in a temporary SQLite database.

Times the three XLSX forms (ledger, buildings, statistics) and the 统计 chart's SQL, and prints file sizes.
Run: python bench/export_ledger.py [--hazards 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from handlers.exports import export_workbook  # noqa: E402
from models.db import make_engine, upgrade  # noqa: E402
from models.reports import BuildingInfo, chart_data  # noqa: E402
from models.tables import CampaignRow, Hazard, PersonRow, UnitRow  # noqa: E402

SCHOOLS = 30
DEPARTMENTS = (
    "安全保卫处", "总务基建处", "教务处", "学生工作处", "食堂",
    "图书馆", "信息中心", "体育部", "实验中心", "宿舍管理科",
)
CATEGORIES = ("消防", "用电", "建筑", "食品", "交通", "设施设备", "危化品", "燃气", "其他")
STATUSES = ("rectifying", "rectified", "closed", "closed", "closed")
START = date(2023, 11, 21)
TODAY = date(2024, 3, 1)


def populate(session: Session, hazards: int) -> tuple[list[str], list[BuildingInfo]]:
    """One county, 30 schools with 10 departments each, 10 buildings per school, and `hazards` reports."""
    session.add(
        CampaignRow(id="bench", name="冬春安全整治大会战", start=START, end=date(2024, 5, 10), next_number=hazards + 1)
    )
    session.add(UnitRow(id="county", name="县教育局"))
    units: list[str] = []
    buildings: list[BuildingInfo] = []
    for s in range(SCHOOLS):
        school = f"s{s}"
        session.add(UnitRow(id=school, name=f"第{s + 1}中学", parent_id="county"))
        units.append(school)
        for d, name in enumerate(DEPARTMENTS):
            session.add(UnitRow(id=f"{school}d{d}", name=name, parent_id=school))
            units.append(f"{school}d{d}")
        buildings += [BuildingInfo(f"{school}b{b}", f"{b + 1}号楼", school, 1990 + b * 3) for b in range(10)]
    session.flush()
    session.add(PersonRow(id="p", name="张伟", unit_id="county"))
    session.commit()
    found0 = datetime(2023, 11, 21, 1, 0, tzinfo=timezone.utc)
    batch: list[dict[str, object]] = []
    for n in range(1, hazards + 1):
        status = "withdrawn" if n % 100 == 0 else STATUSES[n % len(STATUSES)]
        found = found0 + timedelta(minutes=(n * 97) % (100 * 24 * 60))
        unit = units[n % len(units)]
        school = unit.split("d")[0]
        batch.append({
            "campaign_id": "bench", "number": n, "unit_id": unit,
            "location": f"{(n % 10) + 1}号楼{(n % 6) + 1}层东侧走廊", "check_item": "消防设施设备",
            "problem": "消防通道堆放杂物，应急照明灯损坏，疏散指示标志不亮" if n % 2 else "配电箱未上锁，线路老化",
            "measure": "立即清理通道，更换应急灯" if n % 3 else "", "completion": "",
            "responsible_name": ("王建国", "李娜", "赵敏", "陈静")[n % 4], "reporter_id": "p",
            "category": CATEGORIES[n % len(CATEGORIES)], "level": "重大" if n % 97 == 0 else "一般",
            "building_id": f"{school}b{n % 10}" if n % 5 else None, "immediate": n % 3 != 0,
            "closed_building": n % 1009 == 0, "deadline": (found + timedelta(days=7)).date(), "status": status,
            "found_at": found, "rectified_at": found + timedelta(days=2) if status in ("rectified", "closed") else None,
            "closed_at": found + timedelta(days=3) if status == "closed" else None, "remark": "",
        })
        if len(batch) == 10_000:
            session.execute(insert(Hazard), batch)
            batch = []
    if batch:
        session.execute(insert(Hazard), batch)
    session.commit()
    return units, buildings


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="directory to keep the XLSX files in")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        with Session(engine) as session:
            t0 = time.perf_counter()
            units, buildings = populate(session, args.hazards)
            print(f"populated {args.hazards:,} hazards over {len(units) + 1} units in {time.perf_counter() - t0:.1f} s "
                  f"(database {os.path.getsize(Path(tmp) / 'bench.db') / 2**20:.0f} MB)")
            campaign = session.get(CampaignRow, "bench")
            assert campaign is not None
            print(f"{'form':<12}{'time':>10}{'size':>12}{'peak RSS':>12}")
            for form in ("ledger", "buildings", "statistics"):
                t0 = time.perf_counter()
                result = export_workbook(
                    session, campaign=campaign, forms=[form], unit_ids=None, unit_name="县教育局", on=TODAY,
                    buildings=buildings,
                )
                elapsed = time.perf_counter() - t0
                rows = f" ({result.ledger_rows:,} rows)" if form == "ledger" else ""
                print(f"{form:<12}{elapsed:>9.2f}s{len(result.data) / 2**20:>10.1f}MB{peak_rss_mb():>10.0f}MB{rows}")
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / f"{form}.xlsx").write_bytes(result.data)
            now = datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
            t0 = time.perf_counter()
            data = chart_data(session, campaign=campaign, unit_ids=None, now=now)
            print(f"chart data (SQL) over all units: {(time.perf_counter() - t0) * 1000:.0f} ms "
                  f"({data.totals.total:,} outstanding, {len(data.days)} days)")
            t0 = time.perf_counter()
            chart_data(session, campaign=campaign, unit_ids=set(units[:11]), now=now)
            print(f"chart data (SQL) for one school: {(time.perf_counter() - t0) * 1000:.0f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
