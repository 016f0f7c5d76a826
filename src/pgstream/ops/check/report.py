"""The values ``check()`` returns: a :class:`Finding` per problem, in a :class:`CheckReport`.

Frozen: a report is what was seen at ``taken_at``. ``str(report)`` is a table followed by
each finding's evidence and fix; ``to_dict()`` is JSON-ready (a fix plan as its printed
steps). :class:`Thresholds` are the configurable limits (lag, WAL a slot may hold).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import attrs

from pgstream.errors import InvalidInput
from pgstream.ops.plan import Plan
from pgstream.render import findings
from pgstream.render import html as render_html
from pgstream.render.findings import Severity

MB = 1024 * 1024


def _non_negative(_inst: object, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidInput(f"{attr.name} must be a non-negative number or None, not {value!r}")


@attrs.frozen
class Thresholds:
    """When ``check()`` warns. ``lag_bytes`` / ``lag_seconds``: a standby further behind its
    upstream (replay) than either is ``lag_high`` (None: never). ``slot_retained_bytes``: an
    inactive slot of a cluster member holding this much WAL is ``slot_inactive_retaining``
    (a slot no member uses is reported whatever it holds)."""

    lag_bytes: int | None = attrs.field(default=16 * MB, validator=_non_negative)
    lag_seconds: float | None = attrs.field(default=30.0, validator=_non_negative)
    slot_retained_bytes: int | None = attrs.field(default=1024 * MB, validator=_non_negative)


def _known_code(_inst: object, _attr: object, value: str) -> None:
    if value not in findings.CODES:
        raise InvalidInput(f"unknown finding code {value!r} (see docs/check.md)")


def _severity(value: Severity | str) -> Severity:
    return value if isinstance(value, Severity) else Severity(value)


@attrs.frozen
class Finding:
    """One problem: a stable ``code`` (see ``docs/check.md``), its ``severity``, the ``node``
    it is about, a one-line ``summary``, the ``evidence`` it rests on (a log line or a view
    row, verbatim), where that came from (``source``), the ``fix`` in words, and ``plan``:
    the fix as a :class:`~pgstream.ops.plan.Plan` where pgstream can apply it (``print`` it
    first: it is the dry run). ``slot`` names the slot a finding is about, ``upstream`` the
    node a standby streams from."""

    code: str = attrs.field(validator=_known_code)
    severity: Severity = attrs.field(converter=_severity)
    node: str
    summary: str
    evidence: str = ""
    source: str = ""
    fix: str = ""
    plan: Plan | None = attrs.field(default=None, eq=False)
    slot: str | None = None
    upstream: str | None = None

    @classmethod
    def of(cls, code: str, node: str, summary: str, *, evidence: str = "", source: str = "",
           severity: Severity | str | None = None, fix: str | None = None,
           slot: str | None = None, upstream: str | None = None) -> Finding:
        """A finding with the code's default severity and fix (from the code table)."""
        row = findings.info(code)
        return cls(code, severity if severity is not None else row.severity, node, summary,
                   evidence, source, row.fix if fix is None else fix, slot=slot,
                   upstream=upstream)

    @property
    def is_error(self) -> bool:
        """Is its severity ``error``?"""
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        lines = [f"{self.severity.value} {self.code} on {self.node}: {self.summary}"]
        if self.evidence:
            lines.append(f"  evidence ({self.source or 'seen'}): {self.evidence}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.plan is not None:
            lines.append(f"  fix plan: {self.plan.title} ({len(self.plan)} step"
                         f"{'' if len(self.plan) == 1 else 's'}; print finding.plan)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field; a fix plan as its printed steps."""
        return {"code": self.code, "severity": self.severity.value, "node": self.node,
                "summary": self.summary, "evidence": self.evidence, "source": self.source,
                "fix": self.fix, "slot": self.slot, "upstream": self.upstream,
                "plan": None if self.plan is None else str(self.plan)}


def _findings(items: object) -> tuple[Finding, ...]:
    assert isinstance(items, (list, tuple))
    return tuple(sorted(items, key=lambda f: (f.severity.rank, f.node, f.code)))


@attrs.frozen
class CheckReport:
    """Every finding of one ``check()``, errors first; ``nodes`` are the nodes looked at,
    ``seconds`` how long it took."""

    findings: tuple[Finding, ...] = attrs.field(converter=_findings)
    nodes: tuple[str, ...] = ()
    taken_at: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.UTC))
    seconds: float = 0.0

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity ``error``, in report order."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of severity ``warning``, in report order."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """No error and no warning (infos allowed)."""
        return not self.errors and not self.warnings

    @property
    def codes(self) -> set[str]:
        """The codes found, each once."""
        return {f.code for f in self.findings}

    def for_node(self, name: str) -> tuple[Finding, ...]:
        """The findings about the node named ``name``, in report order."""
        return tuple(f for f in self.findings if f.node == name)

    def by_code(self, code: str) -> tuple[Finding, ...]:
        """The findings of ``code``, in report order; an unknown code raises
        :class:`~pgstream.errors.InvalidInput` (a typo never reads as "no finding").
        """
        findings.info(code)
        return tuple(f for f in self.findings if f.code == code)

    def first(self, code: str, node: str | None = None) -> Finding | None:
        """The first finding of ``code`` (on ``node``), or None."""
        return next((f for f in self.by_code(code) if node is None or f.node == node), None)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def _repr_html_(self) -> str:
        """The notebook view: the findings coloured by severity, each fix plan shown."""
        return render_html.check_report_html(self.findings)

    def __str__(self) -> str:
        counts = {s: sum(1 for f in self.findings if f.severity is s) for s in Severity}
        head = (f"check of {', '.join(self.nodes) or 'no nodes'} at "
                f"{self.taken_at.isoformat(timespec='seconds')} ({self.seconds:.2f} s): "
                + ", ".join(f"{n} {s.value}{'' if n == 1 else 's'}"
                            for s, n in counts.items()))
        if not self.findings:
            return head + "\nno findings: every standby streams"
        rows = [(f.severity.value, f.node, f.code, f.summary) for f in self.findings]
        out = [head, *findings.report_table(rows), ""]
        out += [str(f) for f in self.findings]
        return "\n".join(out)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: ``ok``, ``taken_at`` (ISO 8601), ``seconds``, ``nodes``,
        the ``errors`` and ``warnings`` counts and every finding (:meth:`Finding.to_dict`).
        """
        return {"ok": self.ok, "taken_at": self.taken_at.isoformat(), "seconds": self.seconds,
                "nodes": list(self.nodes), "errors": len(self.errors),
                "warnings": len(self.warnings),
                "findings": [f.to_dict() for f in self.findings]}
