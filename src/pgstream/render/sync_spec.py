"""``SyncSpec``: which standbys a commit waits for, as a typed value; rendered per version.

Pure, no I/O. A spec renders to the exact ``synchronous_standby_names`` value for a server
version and parses the forms PostgreSQL accepts:

- ``SyncSpec.priority(["a", "b"])``: ``a, b``, the plain list (wait for the first connected).
- ``SyncSpec.first(2, ["a", "b", "c"])``: ``FIRST 2 (a, b, c)``, the two connected standbys
  listed earliest; 9.6 writes it ``2 (a, b, c)``, which means the same there.
- ``SyncSpec.any(2, ["a", "b", "c"])``: ``ANY 2 (a, b, c)``, any two (quorum commit, 10+).
- ``SyncSpec.off()``: the empty string, no synchronous standby.

Names are pgstream node names (a standby's ``application_name``) or ``*`` (every standby).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, NoReturn

import attrs

from pgstream.errors import InvalidInput, NotAvailable
from pgstream.facts import identifiers
from pgstream.facts.version import ServerVersion

Method = Literal["FIRST", "ANY", "LIST", "OFF"]
SyncState = Literal["sync", "potential", "quorum", "async"]

METHODS: tuple[Method, ...] = ("FIRST", "ANY", "LIST", "OFF")
SYNC_STATES: tuple[SyncState, ...] = ("sync", "potential", "quorum", "async")
ALL = "*"
# Keywords of synchronous_standby_names where FIRST/ANY exist: a standby of that name must be
# double-quoted there.
_KEYWORDS = frozenset({"first", "any"})


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInput(f"standby names must be a list of names, not {value!r}")
    return tuple(value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen
class SyncSpec:
    """A ``synchronous_standby_names`` setting: ``method``, ``num`` and standby ``names``.

    ``LIST`` is the plain list (``num`` is 1), ``OFF`` is the empty setting (``num`` 0, no
    names). Construction validates: ``1 <= num <= len(names)`` (any ``num`` with ``*``, which
    matches every standby), names are node names or ``*``, none twice.
    """

    method: Method
    num: int
    names: tuple[str, ...] = attrs.field(converter=_names)

    def __attrs_post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidInput(f"unknown synchronous replication method {self.method!r}: use "
                               "FIRST, ANY, LIST or OFF")
        if not _is_count(self.num):
            raise InvalidInput(f"the number of synchronous standbys must be an integer, "
                               f"not {self.num!r}")
        if self.method == "OFF":
            if self.num != 0 or self.names:
                raise InvalidInput("SyncSpec.off() has no names and num 0")
            return
        if not self.names:
            raise InvalidInput("synchronous replication needs at least one standby name "
                               "(or '*'); use SyncSpec.off() for none")
        for name in self.names:
            if name != ALL:
                identifiers.node_name(name)
        repeated = sorted({n for n in self.names if self.names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"standby name(s) listed twice: {', '.join(repeated)}")
        if self.method == "LIST":
            if self.num != 1:
                raise InvalidInput(f"a plain standby list waits for 1 standby, not {self.num}; "
                                   "use SyncSpec.first(n, names) for more")
            return
        if self.num < 1:
            raise InvalidInput(f"the number of synchronous standbys must be at least 1, "
                               f"not {self.num}")
        if ALL not in self.names and self.num > len(self.names):
            raise InvalidInput(
                f"{self.method} {self.num} (...) lists only {len(self.names)} standby(s): "
                f"commits would wait forever for {self.num} acknowledgements; list at least "
                f"{self.num} names, or '*'")

    # -- constructors
    @classmethod
    def first(cls, num: int, names: Iterable[str]) -> SyncSpec:
        """Wait for the ``num`` connected standbys listed earliest (priority order)."""
        return cls("FIRST", num, _names(names))

    @classmethod
    def any(cls, num: int, names: Iterable[str]) -> SyncSpec:
        """Wait for any ``num`` of the listed standbys (quorum commit, PostgreSQL 10+)."""
        return cls("ANY", num, _names(names))

    @classmethod
    def priority(cls, names: Iterable[str]) -> SyncSpec:
        """The plain list ``a, b``: wait for the first listed standby that is connected."""
        return cls("LIST", 1, _names(names))

    @classmethod
    def off(cls) -> SyncSpec:
        """No synchronous standby: commits wait for none (the empty setting)."""
        return cls("OFF", 0, ())

    @classmethod
    def parse(cls, text: str, version: ServerVersion | str | int | None = None) -> SyncSpec:
        """Read a ``synchronous_standby_names`` value, in any form PostgreSQL accepts.

        ``version`` picks the grammar: without ``FIRST``/``ANY`` keywords where they do not
        exist (9.6: ``first`` is a standby name there); default: 10 and later. Keywords and
        names are read case-insensitively, as PostgreSQL matches them; names come back in
        lower case and must be node names (or ``*``).
        """
        if not isinstance(text, str):
            raise InvalidInput(f"synchronous_standby_names must be a string, not {text!r}")
        if text == "":
            return cls.off()
        keywords = version is None or ServerVersion.parse(version).adapter.supports(
            "quorum_sync")
        return _Parser(text, keywords).spec()

    # -- facts
    @property
    def is_off(self) -> bool:
        """Is this the spec that turns synchronous replication off (an empty list)?"""
        return self.method == "OFF"

    @property
    def effective(self) -> tuple[str, int, tuple[str, ...]]:
        """What PostgreSQL does with it: a plain list is ``FIRST 1``; equal means same effect."""
        method = "FIRST" if self.method == "LIST" else self.method
        return method, self.num, self.names

    def priority_of(self, name: str) -> int:
        """The ``sync_priority`` PostgreSQL gives a standby of this name (0: not a candidate).

        Priority methods: the 1-based position of the first entry matching it (its name or
        ``*``); ``ANY``: 1 for every matching standby.
        """
        identifiers.node_name(name)
        for position, entry in enumerate(self.names, 1):
            if entry in (name, ALL):
                return 1 if self.method == "ANY" else position
        return 0

    def possible_states(self, name: str) -> frozenset[SyncState]:
        """The ``sync_state`` values a standby of this name can have under this spec."""
        if self.priority_of(name) == 0:
            return frozenset({"async"})
        if self.method == "ANY":
            return frozenset({"quorum", "potential"})
        return frozenset({"sync", "potential"})

    # -- rendering
    def render(self, version: ServerVersion | str | int) -> str:
        """The ``synchronous_standby_names`` value for ``version``.

        ``FIRST n`` is written ``n (...)`` where the keyword does not exist (9.6: same meaning);
        ``ANY`` there raises :class:`~pgstream.errors.NotAvailable`.
        """
        server = ServerVersion.parse(version)
        if self.method == "OFF":
            return ""
        keywords = server.adapter.supports("quorum_sync")
        names = ", ".join(_quote(name, keywords) for name in self.names)
        if self.method == "LIST":
            return names
        if not keywords:
            if self.method == "ANY":
                try:
                    server.adapter.require("quorum_sync")
                except NotAvailable as exc:
                    raise NotAvailable(
                        f"quorum commit (synchronous_standby_names 'ANY {self.num} (...)') "
                        f"does not exist on PostgreSQL {server.major}: it was introduced in "
                        f"PostgreSQL {exc.since}; use SyncSpec.first({self.num}, ...) for "
                        "priority-based synchronous replication",
                        name="ANY", since=exc.since) from None
            return f"{self.num} ({names})"
        return f"{self.method} {self.num} ({names})"


def _quote(name: str, keywords: bool) -> str:
    """A node name as written in synchronous_standby_names: quoted only if it is a keyword."""
    if keywords and name in _KEYWORDS:
        return f'"{name}"'
    return name


_TOKEN = re.compile(r"""
    (?P<space>[ \t\n\r\f\v]+)
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<num>[0-9]+)
  | (?P<word>[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9$]*)
  | (?P<punct>[(),*])
""", re.VERBOSE)


_SHOWN = {"NUM": "a number", "(": "'('", ")": "')'"}


class _Parser:
    """synchronous_standby_names' grammar (syncrep_gram.y), 9.6 to 18:

    ``list | NUM '(' list ')' | FIRST NUM '(' list ')' | ANY NUM '(' list ')'``; a list is
    names (identifiers, numbers, ``"quoted"`` or ``*``) separated by commas.
    """

    def __init__(self, text: str, keywords: bool) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []  # (kind, value): kind is a keyword or NAME/NUM
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                self._fail(f"unexpected {text[pos]!r} at position {pos + 1}")
            pos = match.end()
            kind = match.lastgroup
            value = match.group()
            if kind == "space":
                continue
            if kind == "quoted":
                self.tokens.append(("NAME", value[1:-1].replace('""', '"')))
            elif kind == "num":
                self.tokens.append(("NUM", value))
            elif kind == "word" and keywords and value.lower() in _KEYWORDS:
                self.tokens.append((value.upper(), value))
            elif kind == "word" or value == ALL:
                self.tokens.append(("NAME", value))
            else:
                self.tokens.append((value, value))
        self.pos = 0

    def _fail(self, why: str) -> NoReturn:
        raise InvalidInput(f"invalid synchronous_standby_names {self.text!r}: {why}")

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.tokens[index][0] if index < len(self.tokens) else "end"

    def _found(self) -> str:
        return repr(self.tokens[self.pos][1]) if self.pos < len(self.tokens) else "the end"

    def _take(self, kind: str) -> str:
        if self._peek() != kind:
            self._fail(f"expected {_SHOWN.get(kind, kind)}, found {self._found()}")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value

    def spec(self) -> SyncSpec:
        method: Method = "LIST"
        num = 1
        if self._peek() in ("FIRST", "ANY"):
            method = "ANY" if self._peek() == "ANY" else "FIRST"
            self.pos += 1
            num = int(self._take("NUM"))
        elif self._peek() == "NUM" and self._peek(1) == "(":
            method = "FIRST"
            num = int(self._take("NUM"))
        if method != "LIST":
            self._take("(")
        names = self._list()
        if method != "LIST":
            self._take(")")
        if self._peek() != "end":
            self._fail(f"unexpected {self._found()} after the standby list")
        return SyncSpec(method, num, names)

    def _list(self) -> tuple[str, ...]:
        names = [self._name()]
        while self._peek() == ",":
            self._take(",")
            names.append(self._name())
        return tuple(names)

    def _name(self) -> str:
        if self._peek() not in ("NAME", "NUM"):
            self._fail(f"expected a standby name, found {self._found()}")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value.lower()
