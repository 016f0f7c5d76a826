"""From facts to findings: the judgement of ``check()``, over :class:`NodeFacts` only.

No I/O: :func:`evaluate` takes the cluster's shape (:class:`Member`), the facts read from
each node and the :class:`Thresholds`, and returns the findings (without fix plans). A
standby that does not stream gets one cause: the newest line naming one in its log since
its last start, else what the views show (upstream down, role or slot missing, ...), else
``not_streaming``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from pgstream.errors import InvalidInput
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.check.probe import NodeFacts
from pgstream.ops.check.report import Finding, Thresholds
from pgstream.render import findings
from pgstream.render.findings import Severity
from pgstream.render.sync_spec import ALL, SyncSpec
from pgstream.render.units import human_bytes, human_seconds


@attrs.frozen
class Member:
    """A node of the cluster: ``upstream`` None for the primary; ``slot`` the slot a standby
    should stream through on its upstream."""

    name: str
    upstream: str | None = None
    slot: str | None = None


def _row(data: Mapping[str, Any], keys: Iterable[str]) -> str:
    return ", ".join(f"{k}={_shown(data.get(k))}" for k in keys if k in data)


def _shown(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.timedelta):
        return human_seconds(value.total_seconds())
    return str(value)


def slot_row(slot: SlotStatus) -> str:
    """A slot's ``pg_replication_slots`` row, as evidence."""
    return "pg_replication_slots: " + _row(slot.to_dict(), (
        "name", "active", "restart_lsn", "wal_status", "safe_wal_size", "invalidation_reason",
        "retained_bytes"))


def _streaming(facts: NodeFacts | None) -> bool:
    return bool(facts and facts.reachable and facts.receiver is not None
                and facts.receiver.streaming)


_CAUSE_SUMMARY = {
    "hba_missing": "{up} refuses {me}'s replication connection: no pg_hba.conf line allows it",
    "auth_failed": "{up} rejects the replication password {me} sends",
    "role_missing": "{me} cannot stream: the replication role on {up} is missing or lacks "
                    "LOGIN/REPLICATION",
    "slot_missing": "{me} streams through slot {slot}, which {up} does not have",
    "wal_removed": "{up} already removed WAL that {me} needs: {me} must be re-cloned",
    "max_wal_senders": "{me} cannot connect: every walsender of {up} is taken "
                       "(max_wal_senders)",
    "max_replication_slots": "{me} cannot stream: {up} has no free replication slot",
    "upstream_unreachable": "{me} cannot reach its upstream at {target}",
    "timeline_diverged": "{me}'s timeline diverged from {up}'s: it needs pg_rewind or a new "
                         "clone",
    "system_id_mismatch": "{me} is not a copy of {up} (another system identifier)",
    "wal_level_too_low": "{up} writes WAL with wal_level=minimal: {me} cannot replay it",
    "hot_standby_off": "{me} has hot_standby off: it accepts no connections",
    "slot_wal_lost": "{me}'s slot on {up} lost its WAL: {me} must be re-cloned",
    "not_streaming": "{me} does not stream from {up}, and neither its log nor the views say why",
}


def _cause(member: Member, me: NodeFacts, up: NodeFacts | None) -> list[Finding]:
    """Why a reachable standby in recovery does not stream."""
    upstream = member.upstream or "?"
    out: list[Finding] = []
    target = me.upstream_target
    shown_target = f"{target[0]}:{target[1]}" if target else f"{upstream} (address unknown)"
    slot = me.slot_name or member.slot
    words = {"me": member.name, "up": upstream, "slot": repr(slot), "target": shown_target}
    log = me.log
    if log is not None and log.text is None:
        out.append(Finding.of("log_unreadable", member.name,
                              f"cannot read {member.name}'s server log: {log.error}",
                              evidence=f"{log.path or '(no path)'}: {log.error}",
                              source=log.found_by or "log"))
    hit = findings.latest_cause(log.text) if log is not None and log.text else None
    if (hit is not None and hit.code == "auth_failed" and up is not None and up.reachable
            and up.role_asked and (up.role is None or not all(up.role))):
        # With SCRAM a dropped (or NOLOGIN) role reads as a failed password in the log;
        # pg_roles says what is really wrong.
        role_seen = ("pg_roles: no such role" if up.role is None else
                     f"pg_roles: rolreplication={_shown(up.role[0])}, "
                     f"rolcanlogin={_shown(up.role[1])}")
        out.append(Finding.of("role_missing", member.name,
                              _CAUSE_SUMMARY["role_missing"].format(**words),
                              evidence=f"{role_seen}; log: {hit.line}", source="pg_roles",
                              slot=slot, upstream=member.upstream))
        return out
    if hit is not None and hit.code in _CAUSE_SUMMARY:
        summary = _CAUSE_SUMMARY[hit.code].format(**words) if hit.code != "not_streaming" else (
            f"{member.name} does not stream from {upstream}: its log says why (in words "
            "pgstream does not classify)")
        out.append(Finding.of(hit.code, member.name, summary,
                              evidence=hit.line, source=f"log {log.path}" if log else "log",
                              slot=slot, upstream=member.upstream))
        return out
    receiver = me.receiver
    seen = ("pg_stat_wal_receiver: " + _row(attrs.asdict(receiver), (
        "status", "received_tli", "slot_name", "sender_host", "sender_port"))
            if receiver is not None else "pg_stat_wal_receiver: no row (no walreceiver runs)")
    code, evidence, source = "not_streaming", seen, "pg_stat_wal_receiver"
    if up is None or not up.reachable:
        code, evidence, source = "upstream_unreachable", (
            up.error if up is not None else f"{upstream} is not a node of the cluster"), \
            "connection"
    elif up.role_asked and (up.role is None or not all(up.role)):
        code, source = "role_missing", "pg_roles"
        evidence = ("pg_roles: no such role" if up.role is None else
                    f"pg_roles: rolreplication={_shown(up.role[0])}, "
                    f"rolcanlogin={_shown(up.role[1])}")
    elif slot is not None and up.slot(slot) is None:
        code, source = "slot_missing", f"pg_replication_slots on {upstream}"
        evidence = f"pg_replication_slots on {upstream}: no slot named {slot!r}"
    elif slot is not None and (state := up.slot(slot)) is not None and state.wal_status == "lost":
        code, evidence, source = "slot_wal_lost", slot_row(state), "pg_replication_slots"
    out.append(Finding.of(code, member.name, _CAUSE_SUMMARY[code].format(**words),
                          evidence=evidence, source=source, slot=slot,
                          upstream=member.upstream))
    return out


def _hot_standby_off(me: NodeFacts, up: NodeFacts | None, name: str) -> str | None:
    """The evidence that an unreachable standby is up with hot_standby off, or None."""
    if "Hot standby mode is disabled" in me.error:
        return me.error
    hits = findings.scan_log(me.log.text) if me.log and me.log.text else []
    if any(h.code == "hot_standby_off" for h in hits):
        return next(h.line for h in reversed(hits) if h.code == "hot_standby_off")
    row = up.walsender(name) if up is not None and up.reachable else None
    if "the database system is starting up" in me.error and row is not None:
        return f"{me.error}; yet its upstream streams to it ({_row(row, ('state',))})"
    return None


def _lag(member: Member, me: NodeFacts, up: NodeFacts | None,
         limits: Thresholds) -> Finding | None:
    row = up.walsender(member.name) if up is not None and up.reachable else None
    if row is None or row.get("state") != "streaming":
        return None
    behind = row.get("replay_lag_bytes")
    lag = row.get("replay_lag")
    seconds = lag.total_seconds() if isinstance(lag, dt.timedelta) else None
    if seconds is None and behind and me.replay_age is not None:
        seconds = me.replay_age  # 9.6: no lag columns; the last replayed commit's age
    over = []
    if limits.lag_bytes is not None and behind is not None and behind >= limits.lag_bytes:
        over.append(f"{human_bytes(behind)} behind (threshold {human_bytes(limits.lag_bytes)})")
    if limits.lag_seconds is not None and seconds is not None and seconds >= limits.lag_seconds:
        over.append(f"{human_seconds(seconds)} behind (threshold "
                    f"{human_seconds(limits.lag_seconds)})")
    if not over:
        return None
    return Finding.of("lag_high", member.name, f"{member.name} replays " + " and ".join(over),
                      evidence="pg_stat_replication: " + _row(row, (
                          "application_name", "state", "sent_lsn", "replay_lsn",
                          "replay_lag_bytes", "replay_lag")),
                      source=f"pg_stat_replication on {member.upstream}",
                      upstream=member.upstream)


def _standby(member: Member, me: NodeFacts, up: NodeFacts | None, head: NodeFacts | None,
             limits: Thresholds) -> list[Finding]:
    name = member.name
    if not me.reachable:
        evidence = _hot_standby_off(me, up, name)
        if evidence is not None:
            off = Finding.of("hot_standby_off", name, _CAUSE_SUMMARY["hot_standby_off"].format(
                me=name, up=member.upstream), evidence=evidence, source="connection")
            lagging = _lag(member, me, up, limits)
            return [off, *([lagging] if lagging else [])]
        return [Finding.of("node_unreachable", name, f"cannot query {name}",
                           evidence=me.error, source="connection")]
    out: list[Finding] = []
    foreign = (head is not None and head.reachable and head.system_id is not None
               and me.system_id != head.system_id)
    if not me.in_recovery:
        out.append(Finding.of("standby_not_in_recovery", name, f"{name} is declared a standby "
                              "but is not in recovery: it accepts writes (a second primary)",
                              evidence="pg_is_in_recovery() = f", source="SQL"))
    if foreign and head is not None:
        out.append(Finding.of("system_id_mismatch", name, _CAUSE_SUMMARY[
            "system_id_mismatch"].format(me=name, up=head.name),
            evidence=f"pg_control_system(): {name} {me.system_id}, {head.name} "
                     f"{head.system_id}", source="pg_control_system()"))
    if out:
        return out
    if not _streaming(me):
        out += _cause(member, me, up)
    if me.replay_paused:
        out.append(Finding.of("replay_paused", name, f"WAL replay is paused on {name}",
                              evidence="pg_is_wal_replay_paused() = t", source="SQL"))
    lagging = _lag(member, me, up, limits)
    return out + ([lagging] if lagging else [])


def _count(settings: Mapping[str, str], name: str) -> int | None:
    value = settings.get(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _sync(head: NodeFacts) -> list[Finding]:
    text = head.settings.get("synchronous_standby_names", "")
    if not text.strip():
        return []
    try:
        spec = SyncSpec.parse(text, head.version)
    except InvalidInput:
        return []
    connected = {w.get("application_name") for w in head.walsenders
                 if w.get("state") == "streaming"}
    method, num, names = spec.effective
    have = len(connected) if ALL in names else len(connected & set(names))
    missing = [n for n in names if n != ALL and n not in connected]
    evidence = (f"synchronous_standby_names = {text!r}; streaming walsenders: "
                f"{', '.join(sorted(str(c) for c in connected)) or 'none'}")
    if have < num:
        return [Finding.of("sync_standby_missing", head.name,
                           f"commits on {head.name} wait: {method} {num} synchronous standby(s) "
                           f"wanted, {have} connected (missing: {', '.join(missing) or '*'})",
                           evidence=evidence, source="settings, pg_stat_replication")]
    if missing:
        return [Finding.of("sync_standby_missing", head.name,
                           f"synchronous standby(s) {', '.join(missing)} named on {head.name} "
                           "are not connected (enough others are: commits do not wait)",
                           severity=Severity.WARNING, evidence=evidence,
                           source="settings, pg_stat_replication")]
    return []


def _upstream(node: NodeFacts, below: Sequence[Member], facts: Mapping[str, NodeFacts],
              limits: Thresholds) -> list[Finding]:
    name = node.name
    out: list[Finding] = []
    broken = [m for m in below if not _streaming(facts.get(m.name))
              and not (facts.get(m.name) and node.walsender(m.name))]
    if node.settings.get("wal_level") == "minimal":
        out.append(Finding.of("wal_level_too_low", name, f"{name} has wal_level = minimal: no "
                              "standby can stream from it", evidence="pg_settings: "
                              "wal_level = minimal", source="settings"))
    senders = _count(node.settings, "max_wal_senders")
    if senders is not None and len(node.walsenders) >= senders:
        severity = Severity.ERROR if broken else (
            Severity.WARNING if senders == 0 else Severity.INFO)
        out.append(Finding.of("max_wal_senders", name, f"all {senders} walsenders of {name} "
                              "are taken: no other standby can connect", severity=severity,
                              evidence=f"pg_settings: max_wal_senders = {senders}; "
                                       f"pg_stat_replication: {len(node.walsenders)} rows",
                              source="settings, pg_stat_replication"))
    slots = _count(node.settings, "max_replication_slots")
    if slots is not None and len(node.slots) >= slots:
        lacking = [m for m in below if m.slot is not None and node.slot(m.slot) is None]
        out.append(Finding.of("max_replication_slots", name, f"all {slots} replication slots "
                              f"of {name} are in use" + (
                                  f": no room for {', '.join(m.slot or '' for m in lacking)}"
                                  if lacking else ""),
                              severity=Severity.ERROR if lacking else Severity.INFO,
                              evidence=f"pg_settings: max_replication_slots = {slots}; "
                                       f"pg_replication_slots: {len(node.slots)} physical slots",
                              source="settings, pg_replication_slots"))
    users = {m.slot: m for m in below if m.slot is not None}
    for slot in node.slots:
        evidence = slot_row(slot)
        if slot.wal_status == "lost" or slot.invalidation_reason:
            out.append(Finding.of("slot_wal_lost", name, f"slot {slot.name} on {name} lost its "
                                  "WAL" + (f" ({slot.invalidation_reason})"
                                           if slot.invalidation_reason else ""),
                                  evidence=evidence, source="pg_replication_slots",
                                  slot=slot.name))
        elif slot.wal_status == "unreserved":
            out.append(Finding.of("slot_wal_unreserved", name, f"slot {slot.name} on {name} "
                                  "holds more WAL than max_slot_wal_keep_size allows",
                                  evidence=evidence, source="pg_replication_slots",
                                  slot=slot.name))
        elif not slot.active and slot.restart_lsn is not None and not slot.temporary:
            user = users.get(slot.name)
            held = slot.retained_bytes or 0
            if user is None:
                why = "no standby of the cluster uses it"
            elif limits.slot_retained_bytes is not None and held >= limits.slot_retained_bytes:
                why = (f"{user.name} is not connected (threshold "
                       f"{human_bytes(limits.slot_retained_bytes)})")
            else:
                continue
            out.append(Finding.of("slot_inactive_retaining", name, f"inactive slot {slot.name} "
                                  f"on {name} holds {human_bytes(held)} of WAL: {why}",
                                  evidence=evidence, source="pg_replication_slots",
                                  slot=slot.name))
    return out


def evaluate(members: Sequence[Member], facts: Mapping[str, NodeFacts],
             limits: Thresholds) -> list[Finding]:
    """Every finding for the cluster ``members`` (the primary first) given their facts."""
    head_member = members[0]
    head = facts.get(head_member.name)
    out: list[Finding] = []
    if head is None or not head.reachable:
        out.append(Finding.of("node_unreachable", head_member.name,
                              f"cannot query the primary {head_member.name}",
                              evidence=head.error if head else "not probed",
                              source="connection"))
    elif head.in_recovery:
        out.append(Finding.of("not_streaming", head_member.name, f"the primary "
                              f"{head_member.name} is in recovery (a standby): writes fail",
                              severity=Severity.ERROR, evidence="pg_is_in_recovery() = t",
                              source="SQL", fix="promote it, or point the cluster at the "
                                                "node that is the primary"))
    standbys = [m for m in members if m.upstream is not None]
    if not standbys:
        out.append(Finding.of("no_standbys", head_member.name, "the cluster has no standbys",
                              evidence=f"{head_member.name} is the only node", source="cluster"))
    for member in standbys:
        me = facts.get(member.name)
        if me is None:
            continue
        up = facts.get(member.upstream or "")
        out += _standby(member, me, up, head, limits)
    for member in members:
        node = facts.get(member.name)
        if node is None or not node.reachable:
            continue
        below = [m for m in standbys if m.upstream == member.name]
        if member is head_member or below:
            out += _upstream(node, below, facts, limits)
        if member is head_member:
            out += _sync(node)
    return out
