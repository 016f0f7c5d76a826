"""``cluster.check()``: why a standby does not stream, and what else will break replication.

Each node is read at the same time (a thread each, ``timeout`` seconds at most): its
recovery state, settings, walsenders (``pg_stat_replication``), slots, walreceiver
(``pg_stat_wal_receiver``) and, for a standby that does not stream, its own server log since
its last start, read through its host. The rules turn those facts into :class:`Finding`
values, each with a stable code (``docs/check.md`` lists them all), a severity, the evidence
and the fix, in words and, where pgstream can repair it, as a :class:`~pgstream.ops.plan.Plan`.

Modules: :mod:`~pgstream.ops.check.report` (the values), :mod:`~pgstream.ops.check.probe`
(reading), :mod:`~pgstream.ops.check.rules` (judging), :mod:`~pgstream.ops.check.fixes`
(fix plans), :mod:`~pgstream.ops.check.run` (putting them together).
"""

from pgstream.ops.check.report import CheckReport, Finding, Thresholds
from pgstream.ops.check.run import DEFAULT_TIMEOUT, annotate_status, check
from pgstream.render.findings import CODES, Severity

__all__ = ["CODES", "DEFAULT_TIMEOUT", "CheckReport", "Finding", "Severity", "Thresholds",
           "annotate_status", "check"]
