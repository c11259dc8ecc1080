"""Hazard categories (类别): the default list for Chinese schools, name normalisation and keyword inference."""

from __future__ import annotations

from collections.abc import Sequence

CategoryTable = Sequence[tuple[str, Sequence[str]]]

# (name, keywords). Keywords are matched as substrings of 问题 first, then of 部位. The longest hit wins
# (灭火器过期 is 消防, not 食品), then the one written first (试剂过期 is 实验室), then the earlier category.
DEFAULT_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("消防", (
        "灭火器", "消防通道", "消防车道", "应急灯", "应急照明", "疏散指示", "疏散通道", "疏散标志", "安全出口",
        "消火栓", "消防栓", "消防水带", "消防器材", "消防设施", "喷淋", "烟感", "火灾报警", "防火门", "防火卷帘",
        "堆放杂物", "杂物堵塞", "楼道堵塞", "锁闭", "易燃", "可燃物", "明火", "吸烟", "烟头", "消防",
    )),
    ("用电", (
        "电线", "插座", "插排", "接线板", "私拉乱接", "乱拉电线", "配电箱", "配电柜", "配电房", "漏电", "电闸",
        "开关", "线路老化", "电线老化", "电器", "取暖器", "电暖器", "电热毯", "大功率", "充电", "电瓶车", "电动车", "电源", "触电", "空开",
    )),
    ("建筑", (
        "墙体", "墙面", "外墙", "裂缝", "开裂", "渗水", "漏水", "渗漏", "栏杆", "护栏", "扶手", "吊顶", "天花板",
        "门窗", "窗户", "玻璃", "瓷砖", "脱落", "楼梯", "台阶", "屋顶", "屋面", "地面", "墙皮", "危房", "校舍", "围挡",
    )),
    ("食品", (
        "食堂", "过期", "留样", "食材", "食品", "餐具", "消毒柜", "操作间", "后厨", "健康证", "保质期", "变质",
        "生熟", "老鼠", "鼠患", "苍蝇", "蚊蝇", "小卖部", "饮用水", "直饮水", "配餐",
    )),
    ("交通", (
        "校车", "车辆", "停车", "交通", "斑马线", "减速带", "红绿灯", "接送", "道路", "限速", "校门口拥堵", "护学岗",
    )),
    ("实验室", (
        "危化品", "危险化学品", "化学品", "试剂", "实验室", "实验", "通风橱", "洗眼器", "酒精灯", "易制毒", "易制爆",
        "废液", "药品柜", "气瓶",
    )),
    ("设施设备", (
        "体育器材", "单杠", "双杠", "篮球架", "足球门", "运动器材", "操场", "跑道", "课桌", "黑板", "多媒体", "空调",
        "风扇", "吊扇", "热水器", "饮水机", "器材", "设备", "设施", "井盖", "水管", "下水道",
    )),
    ("校园安防", (
        "监控", "摄像头", "围墙", "保安", "门卫", "门禁", "一键报警", "报警", "防冲撞", "防爆", "钢叉", "盾牌",
        "安防", "外来人员", "登记", "值班", "巡逻", "校门",
    )),
    ("燃气", ("燃气", "天然气", "液化气", "煤气", "气罐", "燃气管道", "燃气灶", "燃气泄漏", "燃气报警器")),
    ("特种设备", ("电梯", "锅炉", "压力容器", "压力管道", "起重", "特种设备")),
    ("其他", ()),
)

# Other ways teachers name the default categories in 类别: …; used only when that category is configured.
CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "消防": ("防火", "火灾"),
    "用电": ("电气", "电器", "电路", "供电"),
    "建筑": ("房屋", "校舍", "建筑物", "土建"),
    "食品": ("食堂", "饮食", "餐饮", "卫生"),
    "交通": ("道路", "车辆", "校车"),
    "实验室": ("实验", "危化品", "化学品"),
    "设施设备": ("设施", "设备", "器材", "体育器材"),
    "校园安防": ("安防", "治安", "安保", "保卫", "人防", "技防", "物防"),
    "燃气": ("天然气", "煤气", "液化气"),
    "特种设备": ("电梯", "锅炉", "特种"),
    "其他": ("其它", "别的"),
}

_NAME_SUFFIXES = ("安全隐患", "隐患", "安全", "方面", "问题", "类")


def normalize_category(value: str, categories: CategoryTable = DEFAULT_CATEGORIES) -> str:
    """Map a typed 类别 to a configured name when it is that name or a synonym (消防安全 → 消防), else keep it."""
    names = [name for name, _ in categories]
    candidates = [value]
    for suffix in _NAME_SUFFIXES:
        if value.endswith(suffix) and len(value) > len(suffix):
            candidates.append(value[: -len(suffix)])
    for candidate in candidates:
        if candidate in names:
            return candidate
    for candidate in candidates:
        for name in names:
            if candidate in CATEGORY_SYNONYMS.get(name, ()):
                return name
    for candidate in candidates:
        for name, keywords in categories:
            if candidate in keywords:
                return name
    return value


def infer_category(
    problem: str | None, location: str | None, categories: CategoryTable = DEFAULT_CATEGORIES
) -> str | None:
    """Guess the category from keywords in 问题, then in 部位; None when no keyword matches."""
    for text in (problem, location):
        if not text:
            continue
        hits = [
            (-len(keyword), text.find(keyword), order, name)
            for order, (name, keywords) in enumerate(categories)
            for keyword in keywords
            if keyword and keyword in text
        ]
        if hits:
            return min(hits)[3]
    return None
