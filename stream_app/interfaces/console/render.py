"""The console's pages, rendered on the server.

Every value that comes from an event (customer ids, complaint and contact
texts, notes, summaries) passes through :func:`e`, which escapes it for HTML
text and attribute values alike: a ``<script>`` in a complaint is shown as
the characters it is.  Nothing here builds HTML from data any other way, and
the pages load no script but the console's own file.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from ...core.decoding import parse_ts
from ...core.records import ROUTES, SEVERITIES, SIGNAL_CODES
from .index import OUTCOME_LABELS, SORTS, STATUSES, Row


def e(value: Any) -> str:
    """``value`` as HTML text or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def customer_href(customer_id: str) -> str:
    return "/customers/" + quote(customer_id, safe="")


def when(ts: Any, with_time: bool = True) -> str:
    t = parse_ts(str(ts or ""))
    if isinstance(t, str):
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def money(v: Any) -> str:
    try:
        return f"{float(v):,.0f}"
    except (TypeError, ValueError):
        return "-"


def page(title: str, body: str, *, search: str = "", status_line: str = "",
         signed_in: bool = True, page_id: str = "") -> str:
    nav = ""
    if signed_in:
        nav = f"""
  <form class="search" role="search" action="/search" method="get">
    <label for="search" class="visually-hidden">Customer id</label>
    <input id="search" name="q" type="search" value="{e(search)}"
           placeholder="Customer id  ( / )" autocomplete="off" spellcheck="false">
    <button type="submit">Find</button>
  </form>
  <span class="feed" id="feed" aria-live="polite">{status_line}</span>
  <form action="/logout" method="post" class="logout">
    <button type="submit">Sign out</button></form>"""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · Churnwatch</title>
<link rel="stylesheet" href="/static/console.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body data-page="{e(page_id)}">
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">Churnwatch <span>console</span></a>{nav}
</header>
<main id="main" tabindex="-1">
{body}
</main>
<script src="/static/console.js"></script>
</body>
</html>
"""


def login_page(message: str = "", status: str = "") -> str:
    note = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return page("Sign in", f"""
<section class="login">
  <h1>Sign in</h1>
  <p>The console shows customer data only with the API token
     (<code>CHURNWATCH_API_TOKEN</code>, the same token as the workers' look-up API).</p>
  {note}
  <form method="post" action="/login">
    <label for="token">API token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" autofocus
           required>
    <button type="submit">Sign in</button>
  </form>
</section>""", signed_in=False, page_id="login")


def error_page(status: int, message: str, signed_in: bool = True) -> str:
    return page(f"Error {status}", f"""
<section class="panel">
  <h1>{status}</h1>
  <p class="error" role="alert">{e(message)}</p>
  <p><a href="/">Back to the queue</a></p>
</section>""", signed_in=signed_in, page_id="error")


def feed_status(caught_up: bool, problem: str | None, counts: Mapping[str, int]) -> str:
    if problem:
        return f'<span class="warn">{e(problem)}</span>'
    if not caught_up:
        return f"reading the topics… {counts.get('alerts', 0):,} alerts so far"
    return (f"live · {counts.get('new', 0):,} new, {counts.get('contacted', 0):,} contacted, "
            f"{counts.get('closed', 0):,} closed")


def _select(name: str, label: str, options: Iterable[tuple[str, str]], chosen: str) -> str:
    opts = "".join(f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>'
                   for v, t in options)
    return (f'<label>{e(label)}<select name="{e(name)}">{opts}</select></label>')


def _label(code: str) -> str:
    return code.replace("_", " ").lower()


def queue_rows(rows: list[Row], start: int) -> str:
    if not rows:
        return ('<tr class="empty"><td colspan="8">No alerts match. Change the filters, or '
                'choose status "all".</td></tr>')
    out = []
    for i, r in enumerate(rows, start=start):
        a = r.alert
        cid = str(a.get("customer_id", ""))
        risk = float(a.get("risk_score", 0))
        codes = " ".join(f'<span class="chip">{e(_label(s.get("code", "")))}</span>'
                         for s in a.get("signals", ()))
        href = e(customer_href(cid))
        out.append(f"""<tr data-href="{href}" tabindex="0" class="row-{e(r.status)}">
  <td class="num">{i}</td>
  <td><a href="{e(customer_href(cid))}" tabindex="-1">{e(cid)}</a></td>
  <td><span class="risk"><span class="bar" style="width:{risk:.0f}%"></span></span>
      <span class="pct">{risk:.0f}%</span></td>
  <td class="num">{money(a.get("value_at_risk"))}</td>
  <td><span class="sev sev-{e(a.get("severity"))}">{e(a.get("severity"))}</span></td>
  <td>{e(_label(str(a.get("route", ""))))}</td>
  <td class="signals">{codes}</td>
  <td class="when">{when(a.get("ts"), with_time=False)}
      <span class="status st-{e(r.status)}">{e(r.status)}</span></td>
</tr>""")
    return "\n".join(out)


def queue_page(rows: list[Row], total: int, page_no: int, per_page: int,
               query: Mapping[str, str], status_line: str) -> str:
    q = dict(query)
    filters = f"""
<form class="filters" method="get" action="/" id="filters">
  {_select("status", "Status", [(s, s) for s in STATUSES], q.get("status") or "open")}
  {_select("route", "Route", [("", "any"), *((r, _label(r)) for r in ROUTES)], q.get("route", ""))}
  {_select("severity", "Severity", [("", "any"), *((s, s) for s in reversed(SEVERITIES))],
           q.get("severity", ""))}
  {_select("signal", "Signal", [("", "any"), *((c, _label(c)) for c in SIGNAL_CODES)],
           q.get("signal", ""))}
  <label>From<input type="date" name="since" value="{e(q.get("since", ""))}"></label>
  <label>To<input type="date" name="until" value="{e(q.get("until", ""))}"></label>
  {_select("sort", "Order", [(s, {"value": "value at risk", "risk": "risk",
                                   "newest": "newest"}[s]) for s in SORTS],
           q.get("sort") or "value")}
  <button type="submit">Apply</button>
  <a href="/" class="reset">Reset</a>
</form>"""
    pages = max(1, (total + per_page - 1) // per_page)

    def link(n: int, text: str) -> str:
        return f'<a href="/?{e(urlencode({**q, "page": n}))}">{e(text)}</a>'

    pager = (f'<nav class="pager" aria-label="Pages">'
             f'{link(page_no - 1, "previous") if page_no > 1 else ""}'
             f'<span>page {page_no} of {pages} · {total:,} episodes</span>'
             f'{link(page_no + 1, "next") if page_no < pages else ""}</nav>')
    kept = {k: v for k, v in q.items() if k != "page"}
    export = "/alerts?" + urlencode({**kept, "format": "csv"})
    body = f"""
<div class="queue-head">
  <h1>Queue <small>riskiest money first</small></h1>
  <a class="export" href="{e(export)}">Download CSV</a>
</div>
{filters}
<p class="keys">Keys: <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>Enter</kbd> opens,
  <kbd>/</kbd> search.</p>
<table class="queue" aria-label="Alerts">
<thead><tr><th class="num">#</th><th>Customer</th><th>Risk</th><th class="num">Value at risk</th>
<th>Severity</th><th>Route</th><th>Signals</th><th>Alerted</th></tr></thead>
<tbody id="rows">
{queue_rows(rows, (page_no - 1) * per_page + 1)}
</tbody>
</table>
{pager}"""
    return page("Queue", body, status_line=status_line, page_id="queue")


def trend_svg(points: list[tuple[float, float, str]], width: int = 360, height: int = 110) -> str:
    """Risk over time: ``(epoch seconds, risk percent, label)``, oldest first."""
    if not points:
        return '<p class="muted">No risk history yet.</p>'
    left, right, top, bottom = 30, 8, 8, 20
    w, h = width - left - right, height - top - bottom
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return left + (w / 2 if t1 == t0 else (t - t0) / span * w)

    def y(r: float) -> float:
        return top + (1 - max(0.0, min(100.0, r)) / 100) * h

    grid = "".join(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'class="grid"/><text x="{left - 4}" y="{y(v) + 3:.1f}" '
                   f'text-anchor="end">{v}</text>' for v in (0, 50, 100))
    line = " ".join(f"{x(t):.1f},{y(r):.1f}" for t, r, _ in points)
    dots = "".join(f'<circle cx="{x(t):.1f}" cy="{y(r):.1f}" r="3.5"><title>{e(label)}: '
                   f'{r:.0f}%</title></circle>' for t, r, label in points)
    day0 = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d")
    day1 = datetime.fromtimestamp(t1, UTC).strftime("%Y-%m-%d")
    return (f'<svg class="trend" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="Risk over time, {len(points)} points, '
            f'latest {points[-1][1]:.0f}%">{grid}'
            f'<polyline points="{line}" class="line"/>{dots}'
            f'<text x="{left}" y="{height - 4}">{day0}</text>'
            f'<text x="{left + w}" y="{height - 4}" text-anchor="end">{day1}</text></svg>')


EFFECTS = {
    "contacted": "The episode stays open, marked contacted; the worker holds further alerts "
                 "for {contacted:g} days.",
    "retained": "The episode is closed and leaves the queue; the worker stays quiet for "
                "{resolved:g} days.",
    "false_alarm": "The episode is closed and leaves the queue; the worker stays quiet for "
                   "{resolved:g} days.",
    "churned": "The episode is closed; no alerts for this customer until they buy again.",
    "do_not_contact": "The episode is closed; this customer gets no more alerts.",
}


def _timeline(items: list[tuple[float, str, str]]) -> str:
    if not items:
        return '<p class="muted">Nothing on record.</p>'
    items.sort(key=lambda i: -i[0])
    return "<ol class=\"timeline\">" + "".join(
        f'<li class="tl-{kind}"><time>{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M}</time>'
        f'<span class="tl-kind">{kind}</span><span class="tl-what">{what}</span></li>'
        for t, kind, what in items) + "</ol>"


def _about(w: dict[str, Any]) -> str:
    what = w.get("category") or w.get("channel")
    return " · " + e(what) if what else ""


def _epoch(ts: Any) -> float | None:
    t = parse_ts(str(ts or ""))
    return t if isinstance(t, float) else None


def card_page(customer_id: str, alerts: list[dict[str, Any]], feedback: list[dict[str, Any]],
              words: list[dict[str, Any]], report: dict[str, Any] | None,
              report_problem: str | None, status: str, done: str | None,
              quiet_days: Mapping[str, float], status_line: str, error: str = "") -> str:
    latest = alerts[-1] if alerts else None
    source = latest or report or {}
    risk_now = float(report["risk_score"]) if report else (
        float(latest["risk_score"]) if latest else None)
    horizon = float(latest.get("horizon_days", 90)) if latest else 90.0
    texts = {w["event_id"]: w for w in words}

    # -- risk and its trend
    points = [(t, float(a["risk_score"]), f"alert {when(a['ts'])}")
              for a in alerts if (t := _epoch(a.get("ts"))) is not None]
    if report and (t := _epoch(report.get("at"))) is not None and (
            not points or t > points[-1][0]):
        points.append((t, float(report["risk_score"]), f"now {when(report['at'])}"))
    value = (report or {}).get("risk", {}).get("value_at_risk", (latest or {}).get(
        "value_at_risk"))
    risk_html = (f'<p class="big">{risk_now:.0f}<span>%</span></p><p class="muted">chance of '
                 f'no purchase in the next {horizon:g} days</p>' if risk_now is not None
                 else '<p class="muted">No risk on record.</p>')
    sev = (report or latest or {}).get("severity", "")
    route = (report or latest or {}).get("route", "")

    # -- signals with evidence and the customer's own words
    signals = source.get("signals", [])
    sig_html = []
    for s in signals:
        ev_items = []
        for eid in s.get("evidence", ()):
            w = texts.get(eid)
            quote_html = (f'<blockquote dir="auto">{e(w["text"])}</blockquote>' if w else "")
            ev_items.append(f'<li><code>{e(eid)}</code>{quote_html}</li>')
        base = s.get("baseline")
        nums = (f'value {e(s.get("value"))}'
                + (f', usual {e(base)}' if base is not None else "")
                + f', threshold {e(s.get("threshold"))}, {e(s.get("window"))}')
        sig_html.append(f"""<li class="signal"><h3>{e(_label(str(s.get("code", ""))))}</h3>
  <p>{e(s.get("detail"))}</p><p class="muted small">{nums}</p>
  {('<ul class="evidence">' + "".join(ev_items) + "</ul>") if ev_items else ""}</li>""")
    signals_html = ("<ul class=\"signals\">" + "".join(sig_html) + "</ul>" if sig_html
                    else '<p class="muted">No signal is active.</p>')
    actions = source.get("actions", [])
    actions_html = ("<ol class=\"actions\">" + "".join(
        f'<li><strong>{e(_label(str(x.get("code", ""))))}</strong>'
        f'{" · " + e(x.get("channel")) if x.get("channel") else ""}'
        f'<br><span class="muted">{e(x.get("reason"))}</span></li>' for x in actions)
        + "</ol>") if actions else '<p class="muted">No action recommended.</p>'

    # -- the words that no signal cites
    cited = {eid for s in signals for eid in s.get("evidence", ())}
    other_words = [w for w in reversed(words) if w["event_id"] not in cited][:6]
    words_html = "".join(
        f'<li><time>{when(w.get("ts"))}</time> <span class="muted">{e(w["kind"][:-1])}'
        f'{_about(w)}</span><blockquote dir="auto">{e(w["text"])}</blockquote></li>'
        for w in other_words)
    words_block = ('<h2>The customer&rsquo;s words</h2><ul class="words">' + words_html
                   + "</ul>") if words_html else ""

    # -- timeline: the worker's report, the topics' texts, alerts and outcomes
    items: list[tuple[float, str, str]] = []
    hist = (report or {}).get("history", {})
    for p in hist.get("purchases", ()):
        if (t := _epoch(p.get("ts"))) is not None:
            items.append((t, "purchase", f'<code>{e(p.get("event_id"))}</code>'))
    complaint_ids = set()
    for c in hist.get("complaints", ()):
        if (t := _epoch(c.get("ts"))) is not None:
            complaint_ids.add(c.get("event_id"))
            w = texts.get(c.get("event_id"))
            items.append((t, "complaint", f'{e(_label(str(c.get("category", ""))))}, severity '
                          f'{e(c.get("severity"))}/5'
                          + (f' · <q dir="auto">{e(w["text"])}</q>' if w else "")))
    for w in words:
        if (t := _epoch(w.get("ts"))) is None:
            continue
        if w["kind"] == "complaints" and w["event_id"] not in complaint_ids:
            items.append((t, "complaint", f'{e(_label(str(w.get("category", ""))))} · '
                          f'<q dir="auto">{e(w["text"])}</q>'))
        elif w["kind"] == "contacts":
            items.append((t, "contact", f'{e(w.get("direction"))} {e(w.get("channel"))} · '
                          f'<q dir="auto">{e(w["text"])}</q>'))
    for o in hist.get("outreach", ()):
        if (t := _epoch(o.get("ts"))) is not None:
            items.append((t, "contact", f'we reached out by {e(o.get("channel"))}: '
                          + ("answered" if o.get("responded") else "no response")))
    for a in alerts:
        if (t := _epoch(a.get("ts"))) is not None:
            items.append((t, "alert", f'{e(a.get("severity"))}, risk '
                          f'{float(a.get("risk_score", 0)):.0f}%: '
                          + e(", ".join(_label(s.get("code", "")) for s in a.get("signals", ())))))
    for f in feedback:
        if (t := _epoch(f.get("ts"))) is not None:
            label = OUTCOME_LABELS.get(str(f.get("outcome")), f.get("outcome"))
            items.append((t, "outcome", f"<strong>{e(label)}</strong>"
                          + (f' · {e(f.get("note"))}' if f.get("note") else "")))

    # -- outcome buttons and their effect
    flash = ""
    if done in EFFECTS:
        effect = EFFECTS[done].format(contacted=quiet_days.get("contacted", 0),
                                      resolved=quiet_days.get("resolved", 0))
        flash = (f'<p class="flash" role="status">Recorded <strong>{e(OUTCOME_LABELS[done])}'
                 f'</strong> on the feedback topic. {e(effect)}</p>')
    if error:
        flash += f'<p class="error" role="alert">{e(error)}</p>'
    buttons = "".join(
        f'<button type="submit" name="outcome" value="{e(code)}" class="out out-{e(code)}" '
        f'data-key="{n}"><kbd>{n}</kbd> {e(label)}</button>'
        for n, (code, label) in enumerate(OUTCOME_LABELS.items(), start=1))
    alert_field = (f'<input type="hidden" name="alert_id" value="{e(latest["alert_id"])}">'
                   if latest else "")
    outcome_form = f"""<form method="post" action="{e(customer_href(customer_id))}/outcome"
      class="outcomes" id="outcomes">
  {alert_field}
  <div class="buttons">{buttons}</div>
  <label for="note">Note (optional)</label>
  <input id="note" name="note" maxlength="2000" autocomplete="off">
</form>"""

    ep = (report or {}).get("episode") or {}
    worker = (f'<p class="warn small">{e(report_problem)}</p>' if report_problem else
              f'<p class="muted small">Worker\'s view as of {when(report.get("at"))}: episode '
              f'{e(ep.get("number"))} {"open" if ep.get("open") else "closed"}'
              + (f', alerts held ({e(ep.get("suppressed"))})' if ep.get("suppressed") else "")
              + "</p>" if report else "")
    summary = source.get("summary")
    summary_he = source.get("summary_he")
    summaries = ""
    if summary or summary_he:
        summaries = (f'<section class="panel summary"><h2>Summary</h2>'
                     f'<p lang="en">{e(summary)}</p>'
                     f'<p dir="rtl" lang="he" class="he">{e(summary_he)}</p></section>')
    body = f"""
<div class="card-head">
  <a href="/" class="back">&lsaquo; Queue <kbd>u</kbd></a>
  <h1>Customer <span class="cid">{e(customer_id)}</span></h1>
  <span class="status st-{e(status)}">{e(status)}</span>
  {f'<span class="sev sev-{e(sev)}">{e(sev)}</span>' if sev else ""}
  {f'<span class="chip">{e(_label(str(route)))}</span>' if route else ""}
</div>
{flash}
<div class="card-grid" id="card">
<section class="panel risk-panel">
  <h2>Risk</h2>
  {risk_html}
  {trend_svg(points)}
  <p class="small">Value at risk <strong>{money(value)}</strong>
     (risk &times; last year&rsquo;s spend)</p>
  {worker}
</section>
<section class="panel outcome-panel">
  <h2>Outcome <small>keys 1&ndash;5</small></h2>
  {outcome_form}
</section>
{summaries}
<section class="panel signals-panel">
  <h2>Signals and evidence</h2>
  {signals_html}
</section>
<section class="panel">
  <h2>Playbook</h2>
  {actions_html}
  {words_block}
</section>
<section class="panel wide">
  <h2>Timeline</h2>
  {_timeline(items)}
</section>
</div>"""
    return page(f"Customer {customer_id}", body, search=customer_id, status_line=status_line,
                page_id="card")


def search_page(text: str, hits: list[str], status_line: str) -> str:
    items = "".join(f'<li><a href="{e(customer_href(c))}">{e(c)}</a></li>' for c in hits)
    body = f"""<section class="panel"><h1>Customers matching “{e(text)}”</h1>
{('<ul class="hits">' + items + '</ul>') if items else
 '<p>No customer with alerts or outcomes matches. Open the card of an exact id to ask the worker: '
 + f'<a href="{e(customer_href(text))}">{e(text)}</a>.</p>' if text else ''}
</section>"""
    return page("Search", body, search=text, status_line=status_line, page_id="search")
