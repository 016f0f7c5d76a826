"""Notebook views (``_repr_html_``): a cluster status with its topology as inline SVG, a plan,
a plan report and a check report. Pure.

Everything that comes from users or servers (node names, commands, SQL, messages) goes
through ``html.escape``. Styles are inline, so a view looks the same wherever a notebook puts
it and changes nothing else on the page.
"""

from __future__ import annotations

import hashlib
import html
import textwrap
from collections.abc import Iterable, Sequence

from pgstream.render.shapes import (
    Finding,
    FindingLike,
    PlanLike,
    PlanReportLike,
    StandbyLike,
    StatusLike,
    finding_triples,
    upstream_or_primary,
)
from pgstream.render.units import human_bytes, human_seconds

FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px"
# (stroke, fill) by health
GREEN, AMBER, RED, GREY, BLUE = (("#2e7d32", "#e8f5e9"), ("#b26a00", "#fff4e0"),
                                 ("#c62828", "#fdecea"), ("#757575", "#eeeeee"),
                                 ("#1565c0", "#e3f2fd"))
SEVERITY_COLOURS = {"error": RED, "warning": AMBER, "info": BLUE}
BOX_W, BOX_H, COL_W, ROW_H = 200, 58, 330, 76  # ROW_H - BOX_H: the gap between rows
BOX_CHARS = 27  # what fits on a line of a box
BOX_LINES = 5  # lines of text a box shows at most under its title (taller boxes for more)
_WRAP = "white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def standby_problems(s: StandbyLike) -> list[str]:
    """What is wrong with a standby, in a few words each (empty: nothing)."""
    problems = []
    if not s.reachable:
        problems.append("unreachable")
    if s.state != "streaming":
        problems.append(s.state)
    if s.in_recovery is False:
        problems.append("accepts writes (not in recovery)")
    if s.slot_wal_status in ("unreserved", "lost"):
        problems.append(f"slot wal_status {s.slot_wal_status}")
    return problems


def _health(s: StandbyLike) -> tuple[str, str]:
    if not s.reachable or s.in_recovery is False or s.state == "disconnected" \
            or s.slot_wal_status == "lost":
        return RED
    if s.state != "streaming" or s.slot_wal_status == "unreserved":
        return AMBER
    return GREEN


def _lag_label(s: StandbyLike) -> str:
    parts = []
    if s.replay_lag_bytes is not None:
        parts.append(human_bytes(s.replay_lag_bytes))
    if s.replay_lag is not None:
        parts.append(human_seconds(s.replay_lag.total_seconds()))
    return " · ".join(parts) if parts else "lag unknown"


def _layout(status: StatusLike) -> dict[str, tuple[int, int]]:
    """(column, row) per node: the primary at the left, each standby one column right of its
    upstream, rows in depth-first order; failed nodes in a last row of their own."""
    names = {s.name for s in status.standbys}
    children: dict[str, list[str]] = {}
    for s in status.standbys:
        up = upstream_or_primary(s, status.primary.name, known=names)
        children.setdefault(up, []).append(s.name)
    where: dict[str, tuple[int, int]] = {}
    row = 0

    def place(name: str, depth: int) -> None:
        nonlocal row
        if name in where:
            return
        where[name] = (depth, row)
        kids = children.get(name, [])
        if not kids:
            row += 1
        for kid in kids:
            place(kid, depth + 1)

    place(status.primary.name, 0)
    for s in status.standbys:  # a cycle of upstreams: still drawn
        if s.name not in where:
            place(s.name, 1)
    for index, name in enumerate(status.failed):
        where.setdefault(name, (index, row))
    return where


def _box_lines(lines: Sequence[str]) -> list[str]:
    """A box's lines wrapped at :data:`BOX_CHARS` (at commas and spaces where possible), at
    most :data:`BOX_LINES` of them, the last one cut with ``…`` when more would follow."""
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, BOX_CHARS, break_on_hyphens=False) or [""]
    if len(out) > BOX_LINES:
        out = [*out[:BOX_LINES - 1], out[BOX_LINES - 1][:BOX_CHARS - 1] + "…"]
    return out


def _box(x: int, y: int, height: int, colours: tuple[str, str], title: str,
         lines: Sequence[str], dashed: bool = False) -> str:
    stroke, fill = colours
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    whole = " · ".join([title, *lines])
    out = [f"<g><title>{_e(whole)}</title>"
           f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{height}" rx="8" fill="{fill}" '
           f'stroke="{stroke}" stroke-width="2"{dash}/>',
           f'<text x="{x + 10}" y="{y + 19}" font-weight="bold" fill="{stroke}">{_e(title)}'
           "</text>"]
    for n, line in enumerate(lines):
        out.append(f'<text x="{x + 10}" y="{y + 36 + 15 * n}" fill="#333">{_e(line)}</text>')
    out.append("</g>")
    return "".join(out)


def topology_svg(status: StatusLike, findings: Iterable[Finding] | None = None) -> str:
    """The cluster as a picture: a box per node coloured by health, an arrow from each
    upstream to its standby with the lag on it, failed nodes grey and dashed. Long lines in
    a box wrap (all boxes grow to the tallest); each box's full text is its tooltip."""
    where = _layout(status)
    codes: dict[str, list[str]] = {}
    for code, _severity, node in finding_triples(findings):
        codes.setdefault(node or "", []).append(code)
    primary = status.primary
    tl = f"timeline {primary.timeline}" if primary.timeline is not None else "timeline ?"
    head = [f"primary · {tl}", f"PostgreSQL {primary.version}"]
    if primary.in_recovery:
        head[1] = "in recovery: accepts no writes"
    boxes = [(primary.name, RED if primary.in_recovery else BLUE, _box_lines(head), False)]
    for s in status.standbys:
        notes = codes.get(s.name) or [p for p in standby_problems(s) if p != s.state]
        second = ", ".join(notes) if notes else f"replayed {s.replay_lsn or '-'}"
        first = f"{s.state} · {s.sync_state}" if s.sync_state else s.state
        boxes.append((s.name, _health(s), _box_lines([first, second]), False))
    boxes += [(name, GREY, ["failed", "awaiting rejoin"], True) for name in status.failed]
    box_h = max(BOX_H, *(28 + 15 * len(lines) for _, _, lines, _ in boxes))
    row_h = box_h + ROW_H - BOX_H
    marker = "a" + hashlib.sha256(repr(sorted(where.items())).encode()
                                  + str(status.taken_at).encode()).hexdigest()[:10]
    cols = max(c for c, _ in where.values()) + 1
    rows = max(r for _, r in where.values()) + 1
    width, height = 20 + cols * COL_W - (COL_W - BOX_W), 20 + rows * row_h

    def origin(name: str) -> tuple[int, int]:
        col, row = where[name]
        return 10 + col * COL_W, 10 + row * row_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" style="{FONT};max-width:100%;height:auto" '
             'role="img" aria-label="replication topology">',
             f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>']
    for s in status.standbys:
        up = upstream_or_primary(s, primary.name, known=where)
        (x1, y1), (x2, y2) = origin(up), origin(s.name)
        stroke = _health(s)[0]
        start, end = (x1 + BOX_W, y1 + box_h // 2), (x2 - 4, y2 + box_h // 2)
        dash = ' stroke-dasharray="5 5"' if s.state != "streaming" else ""
        parts.append(f'<path d="M{start[0]},{start[1]} C{start[0] + 40},{start[1]} '
                     f'{end[0] - 40},{end[1]} {end[0]},{end[1]}" fill="none" '
                     f'stroke="{stroke}" stroke-width="2"{dash} marker-end="url(#{marker})"/>')
        # The label sits over the arrow's last, level stretch: in its target's row, so the
        # labels of arrows fanning out from one upstream never overlap.
        label_x, label_y = end[0] - (COL_W - BOX_W) // 2, end[1] - 7
        parts.append(f'<text x="{label_x}" y="{label_y}" text-anchor="middle" font-size="11" '
                     f'fill="{stroke}" paint-order="stroke" stroke="#fff" stroke-width="3">'
                     f"{_e(_lag_label(s))}</text>")
    for name, colours, lines, dashed in boxes:
        parts.append(_box(*origin(name), box_h, colours, name, lines, dashed))
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Iterable[tuple[Sequence[str], str]],
           wrap: Sequence[int] = ()) -> str:
    """A table; each row comes with its background colour ('' for none); cells arrive escaped.
    Only the columns in ``wrap`` break lines."""
    cell = "border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top"
    styles = [cell + (f";min-width:8em;{_WRAP}" if n in wrap else ";white-space:nowrap")
              for n in range(len(headers))]
    head = "".join(f'<th style="{cell};background:#f5f5f5">{_e(h)}</th>' for h in headers)
    body = []
    for cells, background in rows:
        style = f' style="background:{background}"' if background else ""
        body.append(f"<tr{style}>" + "".join(f'<td style="{st}">{c}</td>'
                                             for st, c in zip(styles, cells, strict=True))
                    + "</tr>")
    return (f'<table style="border-collapse:collapse;{FONT}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def status_html(status: StatusLike, findings: Iterable[Finding] | None = None) -> str:
    """``ClusterStatus._repr_html_``: a heading, the topology, problems, a table of standbys
    (lag in human units), failed nodes and the history."""
    found = list(findings or ())
    primary = status.primary
    tl = f", timeline {primary.timeline}" if primary.timeline is not None else ""
    out = [f'<div style="{FONT}">',
           f'<p style="margin:4px 0">primary <b>{_e(primary.name)}</b> (PostgreSQL '
           f"{_e(primary.version)}) at <code>{_e(primary.lsn)}</code>{_e(tl)} · "
           f"{_e(f'{status.taken_at:%Y-%m-%d %H:%M:%S %Z}'.strip())}</p>",
           topology_svg(status, found)]
    problems = [(s.name, "; ".join(standby_problems(s))) for s in status.standbys
                if standby_problems(s)]
    problems += [(node or "cluster", f"{code} ({severity})")
                 for code, severity, node in finding_triples(found)]
    if primary.in_recovery:
        problems.insert(0, (primary.name, "the primary is in recovery"))
    if problems:
        items = "".join(f"<li><b>{_e(n)}</b>: {_e(p)}</li>" for n, p in problems)
        out.append(f'<div style="border-left:4px solid {RED[0]};background:{RED[1]};'
                   f'padding:4px 10px;margin:6px 0"><b>Problems</b><ul style="margin:2px 0">'
                   f"{items}</ul></div>")
    rows = []
    for s in status.standbys:
        colour = "" if _health(s) is GREEN else _health(s)[1]
        rows.append(([_e(s.name), _e(upstream_or_primary(s, primary.name)), _e(s.state),
                      _e(human_bytes(s.replay_lag_bytes)),
                      _e(human_seconds(s.replay_lag.total_seconds()) if s.replay_lag else "-"),
                      _e(s.sync_state or "-"), _e(s.slot_name or "-"),
                      _e(s.slot_wal_status or "-"), _e(human_bytes(s.slot_retained_bytes)),
                      _e("-" if s.in_recovery is None else ("yes" if s.in_recovery else "NO")),
                      _e(", ".join(standby_problems(s)) or "ok")], colour))
    if rows:
        out.append(_table(["standby", "upstream", "state", "lag", "lag time", "sync", "slot",
                           "slot wal", "slot holds", "recovery", "health"], rows, wrap=(10,)))
    else:
        out.append('<p style="font-style:italic">no standbys</p>')
    if status.failed:
        out.append(f'<p style="color:{GREY[0]}">failed, awaiting rejoin: '
                   f"{_e(', '.join(status.failed))}</p>")
    if status.history:
        out.append('<p style="margin:8px 0 2px"><b>History</b></p>')
        out.append(_table(["at", "operation", "detail", "timeline"], [
            ([_e(f"{h.at:%Y-%m-%d %H:%M:%S}"), _e(h.operation), _e(h.detail),
              _e("-" if h.timeline is None else h.timeline)], "")
            for h in status.history[-10:]], wrap=(2,)))
    out.append("</div>")
    return "".join(out)


def _pre(text: str) -> str:
    return (f'<pre style="margin:0;{_WRAP};font-size:12px">{_e(text)}</pre>'
            if text else "")


def plan_html(plan: PlanLike) -> str:
    """``Plan._repr_html_``: the dry run as a table (node, host, kind, title, the command)."""
    count = len(plan.steps)
    rows = [([_e(n), _e(step.node), _e(step.host), _e(step.kind.value),
              _e(step.title), _pre(step.detail)], "")
            for n, step in enumerate(plan.steps, 1)]
    return (f'<div style="{FONT}"><p style="margin:4px 0"><b>Plan:</b> {_e(plan.title)} '
            f"({count} step{'' if count == 1 else 's'})</p>"
            + _table(["#", "node", "host", "kind", "step", "command / SQL / content"], rows,
                     wrap=(4, 5))
            + "</div>")


def plan_report_html(report: PlanReportLike) -> str:
    """``PlanReport._repr_html_``: each applied step, changed or not, and its time."""
    rows = []
    for n, item in enumerate(report.applied, 1):
        changed = item.result.changed
        rows.append(([_e(n), _e(item.step.node), _e(item.step.kind.value), _e(item.step.title),
                      _e("changed" if changed else "unchanged"), _e(f"{item.seconds:.2f} s"),
                      _e(item.result.message)], GREEN[1] if changed else ""))
    return (f'<div style="{FONT}"><p style="margin:4px 0"><b>Applied:</b> '
            f"{_e(report.plan_title)} ({len(report.applied)} steps)</p>"
            + _table(["#", "node", "kind", "step", "result", "time", "message"], rows,
                     wrap=(3, 6))
            + "</div>")


def _plan_list(plan: PlanLike) -> str:
    """A plan inside a table cell: its steps as a numbered list, each command wrapped (a
    nested table of six columns would push the page wider than the window)."""
    items = "".join(
        f'<li style="margin:2px 0"><b>{_e(step.node)}</b>@{_e(step.host)} · '
        f"{_e(step.kind.value)} · {_e(step.title)}{_pre(step.detail)}</li>"
        for step in plan.steps)
    count = len(plan.steps)
    return (f'<div style="margin-top:4px"><b>Plan:</b> {_e(plan.title)} ({count} '
            f"step{'' if count == 1 else 's'})"
            f'<ol style="margin:2px 0;padding-left:1.6em">{items}</ol></div>')


def check_report_html(findings: Iterable[Finding], title: str = "Check") -> str:
    """A check report: one row per finding (severity, code, node, summary, evidence, fix),
    coloured by severity; a fix that is a plan is shown as one. Takes any findings: objects
    with ``code``, ``severity``, ``node`` (and optionally ``summary``, ``evidence``,
    ``fix``, ``plan``) or ``(code, severity, node)`` tuples."""
    items = list(findings)
    rows = []
    for item in items:
        code, severity, node = finding_triples([item])[0]
        extra = item if isinstance(item, FindingLike) else None
        fix = getattr(extra, "fix", None)
        fix_cells = _e(fix) if isinstance(fix, str) else ""
        plan = getattr(extra, "plan", None) or (fix if isinstance(fix, PlanLike) else None)
        if isinstance(plan, PlanLike):
            fix_cells += _plan_list(plan)
        colour = SEVERITY_COLOURS.get(severity, GREY)
        rows.append(([f'<b style="color:{colour[0]}">{_e(severity)}</b>', f"<code>{_e(code)}"
                      "</code>", _e(node or "-"), _e(getattr(extra, "summary", "") or ""),
                      _pre(str(getattr(extra, "evidence", "") or "")), fix_cells],
                     colour[1] if severity in ("error", "warning") else ""))
    counts = {s: sum(1 for _, sev, _ in finding_triples(items) if sev == s)
              for s in ("error", "warning", "info")}
    summary = ", ".join(f"{n} {s}{'' if n == 1 else 's'}" for s, n in counts.items())
    body = (_table(["severity", "code", "node", "summary", "evidence", "fix"], rows,
                   wrap=(3, 4, 5)) if rows
            else f'<p style="color:{GREEN[0]}">no findings: healthy</p>')
    return (f'<div style="{FONT}"><p style="margin:4px 0"><b>{_e(title)}:</b> {_e(summary)}'
            f"</p>{body}</div>")
