"""The read-only phone pages behind signed links (issue 15): one hazard, and a leaders' group's outstanding items.

Small, mobile-first HTML with inline CSS and no external assets; every user-written text is escaped. The chart
is inlined as a data: URI, photos are served by the signed photo links of the same server. With `[login]` on, a
hazard's page offers the platform's in-app sign-in and then the viewer's buttons (bot/pageactions.py).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from datetime import datetime
from html import escape
from urllib.parse import urlencode

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from bot.engine import Engine
from bot.pagelinks import HAZARD, LEADER, PageLinks, Verdict
from handlers.format import days_left_text, fmt_date
from handlers.views import ACTION_LABELS
from models.ledger import descendants, hazard_events
from models.pages import group_by_id, hazard_page_photos
from models.queries_directory import campaign_for, unit_names
from models.queries_ledger import open_hazards, person_names
from models.tables import Hazard
from scheduler.messages import chart_scope_name, group_roots

log = logging.getLogger(__name__)

LIST_LIMIT = 100  # rows on the leaders' page; the rest are counted
FILTERS = {"overdue": "逾期", "major": "重大"}

CSS = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif;
color:#1d1d1f;background:#f2f3f5}main{max-width:640px;margin:0 auto;padding:12px}
header{background:#fff;border-radius:12px;padding:12px 14px;margin-bottom:10px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 8px;color:#444}
section{background:#fff;border-radius:12px;padding:12px 14px;margin-bottom:10px}
dl{display:grid;grid-template-columns:4.5em 1fr;gap:4px 8px;margin:0}dt{color:#777}dd{margin:0;word-break:break-all}
.tag{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;background:#e8f0fe;color:#0b57d0;margin-right:4px}
.tag.bad{background:#fde7e0;color:#b3261e}.tag.ok{background:#e6f4ea;color:#137333}
.photos{display:grid;grid-template-columns:1fr 1fr;gap:8px}figure{margin:0}figcaption{font-size:13px;color:#777}
figure img{width:100%;border-radius:8px;background:#ddd;aspect-ratio:4/3;object-fit:cover}
ol,ul{margin:0;padding-left:1.2em}li{margin:2px 0}.muted{color:#777;font-size:13px}
nav{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:10px}nav a{padding:4px 12px;border-radius:16px;background:#fff;
color:#0b57d0;text-decoration:none;font-size:14px}nav a.on{background:#0b57d0;color:#fff}
.chart img{width:100%}.items li a{color:inherit;text-decoration:none}.items li{padding:6px 0;border-bottom:1px solid #eee;
list-style:none}.items{padding:0}.err{text-align:center;padding:48px 16px}
.acts form{margin:0 0 10px}.acts label{display:block;font-size:14px;color:#444;margin-bottom:4px}
.acts input[type=text]{width:100%;font:inherit;padding:8px;border:1px solid #ccc;border-radius:8px;margin-bottom:6px}
.btn,.acts button{display:inline-block;width:100%;font:inherit;padding:10px;border:0;border-radius:10px;
background:#0b57d0;color:#fff;text-align:center;text-decoration:none}.acts button.alt{background:#e8f0fe;color:#0b57d0}
.result{border-left:4px solid #0b57d0}.result p{white-space:pre-wrap;margin:0}
"""


CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'"


def _page(title: str, body: str, *, status: int = 200, script: str = "") -> HTMLResponse:
    """A page; `script` is the extra CSP script-src (the DingTalk sign-in page's JSAPI), else no script runs."""
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": CSP + (f"; script-src {script}" if script else ""),
        "X-Content-Type-Options": "nosniff",
    })


def page(title: str, body: str, *, status: int = 200, script: str = "") -> HTMLResponse:
    """A page in the pages' frame (headers, CSS), for bot/pageactions.py."""
    return _page(title, body, status=status, script=script)


def error_page(status: int, message: str) -> HTMLResponse:
    """A short Chinese page that says why the link does not open (never a trace)."""
    return _page("无法打开", f'<section class="err"><h1>无法打开此页面</h1><p>{escape(message)}</p></section>',
                 status=status)


REFUSED = {
    Verdict.TAMPERED: (403, "链接无效：它可能被改动过或复制不完整。请在群里重新发「查看 #编号」获取新链接。"),
    Verdict.EXPIRED: (410, "链接已过期。请在群里重新发「查看 #编号」（领导页面请看最新的领导日报）获取新链接。"),
}


def _status_tag(hazard: Hazard, today: datetime) -> str:
    overdue = hazard.is_overdue(today.date())
    kind = "bad" if overdue else ("ok" if hazard.status == "closed" else "")
    text = hazard.status_label + (f"（{days_left_text(hazard.deadline, today.date())}）" if overdue else "")
    level = '<span class="tag bad">重大</span>' if hazard.level == "重大" else ""
    return f'<span class="tag {kind}">{escape(text)}</span>{level}'


def hazard_ref(session: Session, hazard: Hazard) -> str:
    """The hazard as a command names it in any group: 城关一中#12 (#12 for rows without a school)."""
    return _label(session, hazard)


def _label(session: Session, hazard: Hazard) -> str:
    school = unit_names(session, [hazard.school_id]).get(hazard.school_id, "") if hazard.school_id else ""
    return f"{school}#{hazard.number}"


def hazard_page(engine: Engine, session: Session, hazard: Hazard, *, panel: str = "", notice: str = "") -> HTMLResponse:
    """One hazard: details, before/after photos, history; `panel` (signing in, the viewer's buttons) replaces the
    read-only note, `notice` (the answer to a button) comes first."""
    now = engine.now()
    unit = unit_names(session, [hazard.unit_id]).get(hazard.unit_id, hazard.unit_id)
    rows = [
        ("部位", hazard.location), ("问题", hazard.problem), ("类别", hazard.category), ("等级", hazard.level),
        ("单位", unit), ("责任人", hazard.responsible_name or "未指定"), ("期限", fmt_date(hazard.deadline)),
    ]
    if hazard.measure:
        rows.append(("措施", hazard.measure))
    if hazard.completion:
        rows.append(("整改情况", hazard.completion))
    fields = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    links = engine.photo_links
    photos = [p for p in hazard_page_photos(session, hazard.id or 0) if not p.missing]
    figures = []
    for stage, caption in (("before", "整改前"), ("after", "整改后"), ("other", "进展")):
        for photo in (p for p in photos if p.stage == stage):
            src = escape(links.path(photo.id)) if links is not None else ""
            when = photo.at.astimezone(now.tzinfo)
            figures.append(
                f'<figure class="{stage}"><img src="{src}" alt="{caption}照片">'
                f"<figcaption>{caption} · {when:%m-%d %H:%M}</figcaption></figure>"
            )
    photo_html = f'<div class="photos">{"".join(figures)}</div>' if figures else '<p class="muted">暂无照片</p>'
    events = hazard_events(session, hazard.id or 0)
    names = person_names(session, {e.actor_id for e in events})
    history = "".join(
        f"<li>{e.at.astimezone(now.tzinfo):%m-%d %H:%M} {escape(names.get(e.actor_id, e.actor_id))} "
        f"{escape(ACTION_LABELS.get(e.action, e.action))}"
        f"{(' ' + escape(e.detail)) if e.detail and e.action != 'report' else ''}</li>"
        for e in events
    )
    label = _label(session, hazard)
    footer = panel or f'<p class="muted">只读页面，更新于 {now:%Y-%m-%d %H:%M}。整改、销号请在群里发消息。</p>'
    body = (
        f'<header><h1>隐患 {escape(label)}</h1>{_status_tag(hazard, now)}</header>{notice}'
        f"<section><dl>{fields}</dl></section>"
        f'<section><h2>照片</h2>{photo_html}</section>'
        f'<section><h2>处理记录</h2><ol class="history">{history}</ol></section>'
        f"{footer}"
    )
    return _page(f"隐患 {label}", body)


_CHARTS: OrderedDict[tuple[object, ...], str] = OrderedDict()  # the last few charts drawn (~1.2 s each)
_CHARTS_LOCK = threading.Lock()
CHART_CACHE = 32


def _chart_img(
    session: Session, engine: Engine, campaign_id: str, scope: set[str] | None, group_id: str, every: list[Hazard]
) -> str:
    """The outstanding-items chart inline (data: URI), drawn again when the outstanding items change or ten
    minutes pass (so switching filters does not redraw it); a chart failure leaves it out."""
    now = engine.now()
    key = (id(engine), group_id, campaign_id, now.date(), now.hour, now.minute // 10,
           hash(tuple(sorted((h.id, h.status, h.level, h.deadline, h.unit_id, h.category) for h in every))))
    with _CHARTS_LOCK:
        cached = _CHARTS.get(key)
    if cached is not None:
        return cached
    html = _draw_chart(session, engine, campaign_id, scope, group_id)
    with _CHARTS_LOCK:
        _CHARTS[key] = html
        while len(_CHARTS) > CHART_CACHE:
            _CHARTS.popitem(last=False)
    return html


def _draw_chart(session: Session, engine: Engine, campaign_id: str, scope: set[str] | None, group_id: str) -> str:
    try:
        from handlers.charts import render_outstanding_chart
        from models.reports import chart_data
        from models.tables import CampaignRow

        campaign = session.get(CampaignRow, campaign_id)
        if campaign is None:
            return ""
        data = chart_data(session, campaign=campaign, unit_ids=scope, now=engine.now(),
                          scope_name=chart_scope_name(session, group_id))
        png = base64.b64encode(render_outstanding_chart(data)).decode("ascii")
        return f'<section class="chart"><img alt="隐患统计图" src="data:image/png;base64,{png}"></section>'
    except Exception:
        log.exception("chart for the leaders' page of %s failed", group_id)
        return ""


def leader_page(engine: Engine, links: PageLinks, session: Session, group_id: str, request: Request) -> HTMLResponse:
    """A leaders' group's outstanding items: totals, the chart, filters (逾期, 重大, unit), the list."""
    group = group_by_id(session, group_id)
    now = engine.now()
    today = now.date()
    campaign = campaign_for(session, group, today) if group is not None else None
    if group is None or campaign is None:
        return error_page(404, "没有找到这个群或它的排查活动。")
    roots = group_roots(session, group.id)
    scope = descendants(session, roots) if roots else None
    every = open_hazards(session, campaign.id, units=scope)
    chosen = request.query_params.get("f", "")
    unit_filter = request.query_params.get("unit", "")
    shown = every
    if chosen == "overdue":
        shown = [h for h in shown if h.is_overdue(today)]
    elif chosen == "major":
        shown = [h for h in shown if h.level == "重大"]
    # A county's page filters by school (a county has hundreds of departments named alike), a school's by unit.
    schools = len({h.school_id for h in every})
    by_school = schools > 1

    def unit_of(hazard: Hazard) -> str:
        return (hazard.school_id or hazard.unit_id) if by_school else hazard.unit_id

    unit_ids = sorted({unit_of(h) for h in every})
    names = unit_names(session, [h.unit_id for h in every] + [h.school_id for h in every if h.school_id])
    if unit_filter in unit_ids:
        shown = [h for h in shown if unit_of(h) == unit_filter]
    else:
        unit_filter = ""
    shown.sort(key=lambda h: (not h.is_overdue(today), h.level != "重大", h.deadline, h.number))

    def href(**params: str) -> str:
        query = {k: v for k, v in {"f": chosen, "unit": unit_filter, **params}.items() if v}
        return escape("?" + urlencode(query)) if query else "?"

    nav = [f'<a class="{"on" if not chosen else ""}" href="{href(f="")}">全部</a>']
    nav += [f'<a class="{"on" if chosen == key else ""}" href="{href(f=key)}">{label}</a>' for key, label in FILTERS.items()]
    every_unit = "全部学校" if by_school else "全部单位"
    units_nav = [f'<a class="{"on" if not unit_filter else ""}" href="{href(unit="")}">{every_unit}</a>']
    units_nav += [
        f'<a class="{"on" if unit_filter == u else ""}" href="{href(unit=u)}">{escape(names.get(u, u))}</a>'
        for u in unit_ids
    ]
    overdue = sum(1 for h in every if h.is_overdue(today))
    major = sum(1 for h in every if h.level == "重大")
    items = []
    for hazard in shown[:LIST_LIMIT]:
        label = f"{names.get(hazard.school_id, '')}#{hazard.number}" if by_school and hazard.school_id else f"#{hazard.number}"
        tail = (f"{hazard.deadline:%m-%d} {days_left_text(hazard.deadline, today)}" if hazard.status == "rectifying"
                else hazard.status_label)
        flag = '<span class="tag bad">重大</span>' if hazard.level == "重大" else ""
        late = ' class="tag bad"' if hazard.is_overdue(today) else ' class="tag"'
        items.append(
            f'<li><a href="{escape(links.path(HAZARD, str(hazard.id)))}">{escape(label)} {flag}'
            f"{escape(hazard.location)} {escape(hazard.problem)}<br>"
            f'<span class="muted">{escape(names.get(hazard.unit_id, hazard.unit_id))}｜'
            f"{escape(hazard.responsible_name or '未指定')}</span> <span{late}>{escape(tail)}</span></a></li>"
        )
    more = f'<p class="muted">……还有{len(shown) - LIST_LIMIT}条，请在群里发「台账」导出全部。</p>' if len(shown) > LIST_LIMIT else ""
    listing = f'<ul class="items">{"".join(items)}</ul>{more}' if items else '<p class="muted">没有符合条件的未销号隐患。</p>'
    scope_name = chart_scope_name(session, group.id)
    body = (
        f"<header><h1>{escape(scope_name)} 未销号隐患</h1>"
        f'<div class="muted">{escape(campaign.name)} · {now:%Y-%m-%d %H:%M}</div>'
        f'<div>未销号 {len(every)} 条 · <span class="tag bad">逾期 {overdue}</span>'
        f'<span class="tag bad">重大 {major}</span></div></header>'
        f'<nav class="filters">{"".join(nav)}</nav>'
        f"{_chart_img(session, engine, campaign.id, scope, group.id, every)}"
        f'<nav class="units">{"".join(units_nav)}</nav>'
        f'<section><h2>清单（{len(shown)}条）</h2>{listing}</section>'
        '<p class="muted">只读页面。点一条看详情和照片。</p>'
    )
    return _page(f"{scope_name} 未销号隐患", body)


# (session, hazard, request, page path) -> the sign-in / buttons part of a hazard's page (bot/pageactions.py)
Panel = Callable[[Session, Hazard, Request, str], str]


def link_refusal(engine: Engine, kind: str, key: str, expires: str, signature: str) -> HTMLResponse | None:
    """The page to show instead when a signed link is not good (links off, tampered, expired); None when it is."""
    links = engine.page_links
    if links is None:
        return error_page(404, "本机器人没有开启网页链接。")
    verdict = links.verify(kind, key, expires, signature)
    if verdict is not Verdict.OK:
        status, message = REFUSED[verdict]
        return error_page(status, message)
    return None


def add_page_routes(app: FastAPI, engine: Engine, panel_of: Panel | None = None) -> None:
    """GET /p/h/… (a hazard) and /p/l/… (a leaders' group), behind signed, expiring links; with `panel_of`, the
    hazard page offers the platform's sign-in and then the viewer's buttons."""

    @app.get("/p/h/{hazard_id}/{expires}/{signature}", include_in_schema=False)
    def hazard(hazard_id: str, expires: str, signature: str, request: Request) -> HTMLResponse:
        refusal = link_refusal(engine, HAZARD, hazard_id, expires, signature)
        if refusal is not None:
            return refusal
        with Session(engine.db) as session:
            row = session.get(Hazard, int(hazard_id)) if hazard_id.isascii() and hazard_id.isdigit() else None
            if row is None:
                return error_page(404, "没有找到这条隐患，它可能已被删除。")
            path = f"/p/h/{hazard_id}/{expires}/{signature}"
            panel = panel_of(session, row, request, path) if panel_of is not None else ""
            return hazard_page(engine, session, row, panel=panel)

    @app.get("/p/l/{group_id}/{expires}/{signature}", include_in_schema=False)
    def leader(group_id: str, expires: str, signature: str, request: Request) -> HTMLResponse:
        refusal = link_refusal(engine, LEADER, group_id, expires, signature)
        if refusal is not None:
            return refusal
        links = engine.page_links
        assert links is not None  # link_refusal refuses every link while links are off
        with Session(engine.db) as session:
            return leader_page(engine, links, session, group_id, request)
