"""The duplicate check among a school's many open hazards: it compares only the candidates its place keys find
(models.drafts.duplicate_candidates), and still finds the repeated report."""

from __future__ import annotations

from datetime import date

from models.drafts import duplicate_candidates
from models.ledger import next_hazard_number
from models.tables import Hazard
from tests.school import Chat

SCHOOL_UNITS = {"school", "security", "logistics", "teaching"}


def file_open(chat: Chat, places: list[str], problem: str = "墙皮脱落", building_id: str | None = None) -> None:
    """Open hazards of 城关一中 written as imports and rebounds write them (ORM rows: their keys come from 部位)."""
    with chat.session() as session:
        for place in places:
            session.add(Hazard(
                campaign_id="c1", number=next_hazard_number(session, "c1", "school"), school_id="school",
                unit_id="logistics", location=place, problem=problem, reporter_id="zhang_wei",
                deadline=date(2023, 12, 20), found_at=chat.now, building_id=building_id,
            ))
        session.commit()


def many(chat: Chat) -> None:
    """600 open hazards: rooms of 3号教学楼, windows of 食堂, and places naming no number."""
    file_open(chat, [f"3号教学楼{k}室" for k in range(200, 500)], building_id="b1")
    file_open(chat, [f"食堂{k}号窗口" for k in range(1, 201)], problem="地面湿滑", building_id="b2")
    file_open(chat, [f"围墙{name}段" for name in "甲乙丙丁戊己庚辛壬癸" * 10], problem="围栏松动")


def test_a_repeated_report_is_found_among_hundreds_of_open_hazards(chat: Chat) -> None:
    assert chat.say("zhang_wei", "隐患\n部位：一楼男厕所\n问题：水龙头漏水\n责任人：王建国").startswith("已登记隐患 #1")
    many(chat)
    # the same numbers (一楼 is 1楼), though the place is not written the same way
    assert "可能与 #1 重复（一楼男厕所 水龙头漏水）" in chat.say("chen_jing", "隐患\n部位：1楼男厕所\n问题：水龙头漏水了")
    assert chat.say("chen_jing", "取消").startswith("好的，已取消")
    # one room among three hundred of the same building: #2 is 3号教学楼200室, so 450室 is #252
    assert "可能与 #252 重复（3号教学楼450室 墙皮脱落）" in chat.say("chen_jing", "隐患\n部位：3号教学楼450室\n问题：墙皮脱落")
    assert chat.say("chen_jing", "取消").startswith("好的，已取消")
    # another room of the same building is no duplicate
    assert chat.say("chen_jing", "隐患\n部位：3号教学楼888室\n问题：墙皮脱落\n责任人：王建国").startswith("已登记隐患 #602")


def test_the_same_building_or_the_same_first_words_are_still_compared(chat: Chat) -> None:
    many(chat)
    assert chat.say("zhang_wei", "隐患\n部位：食堂后门\n问题：燃气软管老化\n责任人：王建国").startswith("已登记隐患 #601")
    assert chat.say("zhang_wei", "隐患\n部位：操场东侧围墙\n问题：墙体开裂\n责任人：王建国").startswith("已登记隐患 #602")
    # 食堂操作间 reads nothing like 食堂后门, but it is the same building
    assert "可能与 #601 重复" in chat.say("chen_jing", "隐患\n部位：食堂操作间\n问题：燃气软管老化了")
    chat.say("chen_jing", "取消")
    # no building, no number: a place worded nearly the same
    assert "可能与 #602 重复" in chat.say("chen_jing", "隐患\n部位：操场东侧围墙边\n问题：墙体开裂了")


def test_the_candidates_are_the_few_at_that_place_not_every_open_hazard(chat: Chat) -> None:
    many(chat)

    def candidates(location: str, building_id: str | None = None) -> list[str]:
        with chat.session() as session:
            found = duplicate_candidates(
                session, campaign_id="c1", unit_ids=SCHOOL_UNITS, location=location, building_id=building_id,
            )
        return [hazard.location for hazard in found]

    assert candidates("3号教学楼450室", "b1") == ["3号教学楼450室"]  # not the building's other 299 rooms
    assert candidates("三号教学楼四五零室", "b1") == ["3号教学楼450室"]  # the same numbers, written in words
    assert candidates("3号教学楼888室", "b1") == []
    assert candidates("食堂后门", "b2") == [f"食堂{k}号窗口" for k in range(1, 201)]  # naming no number: the building's
    assert candidates("围墙乙段") == [f"围墙{name}段" for name in "甲乙丙丁戊己庚辛壬癸" * 10]  # the same first words
    assert candidates("操场") == []
    with chat.session() as session:  # another school's units see none of them
        assert duplicate_candidates(
            session, campaign_id="c1", unit_ids={"school2"}, location="3号教学楼450室", building_id="b1",
        ) == []


def test_a_place_written_anew_through_the_orm_gets_its_keys_again(chat: Chat) -> None:
    file_open(chat, ["食堂后门"])
    with chat.session() as session:
        hazard = session.get(Hazard, 1)
        assert hazard is not None and (hazard.place_numbers, hazard.place_head) == ("", "食堂")
        hazard.location = "3号教学楼二楼"
        session.add(hazard)
        session.commit()
        session.refresh(hazard)
        assert (hazard.place_numbers, hazard.place_head) == ("3,2", "号教")
        hazard.status = "closed"  # another column: the keys stay as they are
        session.add(hazard)
        session.commit()
        session.refresh(hazard)
        assert (hazard.place_numbers, hazard.place_head) == ("3,2", "号教")
