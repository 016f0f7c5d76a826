"""Is a value valid for a server setting? Checked the way PostgreSQL parses it, from the
setting's ``pg_settings`` row (``vartype``, ``unit``, ``min_val``/``max_val``, ``enumvals``),
so that a plan refuses a bad value before ``ALTER SYSTEM`` writes anything.

Pure. :func:`check_value` returns the value in the setting's own terms (an integer in its
base unit, ``on``/``off``, the enum label) so that "already set?" compares like with like:
``work_mem = '4MB'`` is the ``4096`` (kB) that ``pg_settings.setting`` shows.

What is checked, as ``guc.c`` does: ``bool`` takes ``on``/``off``, ``true``/``false``,
``yes``/``no``, ``1``/``0`` and unambiguous prefixes, in any case; ``integer`` a decimal,
octal (``0``-prefixed) or hexadecimal (``0x``) number, a fraction rounded (12+), then
optionally a unit (``B kB MB GB TB`` for memory, ``us ms s min h d`` for time) converted to
the setting's base unit; ``real`` a number with the same units; both within ``min_val`` to
``max_val``; ``enum`` one of ``enumvals`` in any case (and, for the on/off-like enums, a
boolean spelling, which PostgreSQL accepts as a hidden alias); ``string`` anything without a
NUL. A string setting's own checks (a list syntax, a library that must exist) are the
server's: a value it still refuses is undone by the step that tried it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import attrs

from pgstream.errors import InvalidInput

_MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0,
         "d": 86_400_000.0}
_NUMBER = re.compile(
    r"^\s*(?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))"
    r"\s*(?P<unit>[A-Za-z]*)\s*$")
_BASE_UNIT = re.compile(r"^(?P<mult>\d*)\s*(?P<unit>[A-Za-z]+)$")
_BOOL_WORDS = (("true", True, 1), ("false", False, 1), ("yes", True, 1), ("no", False, 1),
               ("on", True, 2), ("off", False, 2))
# Settings ALTER SYSTEM refuses whatever their value (GUC_DISALLOW_IN_AUTO_FILE and friends).
_NOT_IN_AUTO_CONF = frozenset({"data_directory", "config_file"})


@attrs.frozen
class SettingDefinition:
    """One ``pg_settings`` row: what a value of that setting must look like."""

    name: str
    setting: str | None
    context: str
    vartype: str
    unit: str | None = None
    min_val: str | None = None
    max_val: str | None = None
    enumvals: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Sequence[object]) -> SettingDefinition:
        """From ``name, setting, context, vartype, unit, min_val, max_val, enumvals``."""
        name, setting, context, vartype, unit, low, high, enums = row[:8]
        return cls(str(name), None if setting is None else str(setting), str(context),
                   str(vartype), _opt(unit), _opt(low), _opt(high),
                   tuple(str(e) for e in enums) if isinstance(enums, list | tuple) else ())


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def parse_bool(text: str) -> bool | None:
    """PostgreSQL's ``parse_bool``: True, False, or None when ``text`` is no boolean."""
    lowered = text.lower()
    if lowered in ("1", "0"):
        return lowered == "1"
    for word, value, shortest in _BOOL_WORDS:
        if len(lowered) >= shortest and word.startswith(lowered):
            return value
    return None


def _number(text: str) -> tuple[float, str] | None:
    match = _NUMBER.match(text)
    if match is None:
        return None
    raw = match["num"]
    body = raw.lstrip("+-")
    sign = -1 if raw.startswith("-") else 1
    if body[:2].lower() == "0x":
        value = float(int(body, 16))
    elif re.fullmatch(r"0[0-7]+", body):
        value = float(int(body, 8))  # strtol with base 0, as guc.c's parse_int
    elif re.fullmatch(r"0\d+", body):
        return None
    else:
        value = float(body)
    return sign * value, match["unit"]


def _unit_scale(definition: SettingDefinition) -> tuple[dict[str, float], float] | None:
    """The unit table of the setting's kind, and its base unit's size in that table's terms."""
    if not definition.unit:
        return None
    match = _BASE_UNIT.match(definition.unit)
    if match is None:
        return None
    mult = int(match["mult"] or 1)
    unit = match["unit"]
    if unit in _MEMORY:
        return {k: float(v) for k, v in _MEMORY.items()}, mult * float(_MEMORY[unit])
    if unit in _TIME:
        return _TIME, mult * _TIME[unit]
    return None


def _range_text(definition: SettingDefinition) -> str:
    unit = f" (in {definition.unit})" if definition.unit else ""
    return f"from {definition.min_val} to {definition.max_val}{unit}"


def check_value(definition: SettingDefinition, value: str) -> str:
    """``value`` checked for ``definition``'s setting; returns it as ``pg_settings.setting``
    would show it. Raises ``InvalidInput`` naming the setting and what it takes."""
    name = definition.name
    if not isinstance(value, str):
        raise InvalidInput(f"the value for {name} must be a string, not {value!r}")
    if "\0" in value:
        raise InvalidInput(f"the value for {name} cannot contain a NUL character")
    if definition.context == "internal" or name in _NOT_IN_AUTO_CONF:
        raise InvalidInput(f"{name} cannot be set with ALTER SYSTEM (it is fixed when the "
                           "server is built or initialized, or set on its command line)")
    kind = definition.vartype
    if kind == "bool":
        parsed = parse_bool(value.strip())
        if parsed is None:
            raise InvalidInput(f"invalid value {value!r} for {name}: a boolean is expected "
                               "(on, off, true, false, yes, no, 1, 0)")
        return "on" if parsed else "off"
    if kind == "enum":
        for label in definition.enumvals:
            if label.lower() == value.strip().lower():
                return label
        as_bool = parse_bool(value.strip())
        if as_bool is not None and {"on", "off"} <= {e.lower() for e in definition.enumvals}:
            return "on" if as_bool else "off"
        raise InvalidInput(f"invalid value {value!r} for {name}: use one of "
                           + ", ".join(definition.enumvals))
    if kind in ("integer", "real"):
        return _check_number(definition, value)
    return value  # string: the server's own checks apply


def _check_number(definition: SettingDefinition, value: str) -> str:
    name, kind = definition.name, definition.vartype
    what = "an integer" if kind == "integer" else "a number"
    expected = f"{what} {_range_text(definition)}"
    parsed = _number(value)
    if parsed is None or not math.isfinite(parsed[0]):
        raise InvalidInput(f"invalid value {value!r} for {name}: {expected} is expected")
    number, unit = parsed
    scale = _unit_scale(definition)
    if unit:
        if scale is None or unit not in scale[0]:
            units = ", ".join(scale[0]) if scale is not None else "none"
            raise InvalidInput(f"invalid unit {unit!r} in {value!r} for {name}: valid units "
                               f"are {units}")
        number = number * scale[0][unit] / scale[1]
    if kind == "integer":
        number = float(round(number))
    low = float(definition.min_val) if definition.min_val is not None else -math.inf
    high = float(definition.max_val) if definition.max_val is not None else math.inf
    if not low <= number <= high:
        raise InvalidInput(f"{value!r} is outside the range of {name}: {expected}")
    if kind == "integer":
        return str(int(number))
    return repr(number) if number != int(number) else str(int(number))


def same_value(definition: SettingDefinition, normalized: str) -> bool:
    """Does the server's current ``setting`` already equal the normalized value?"""
    current = definition.setting
    if current is None:
        return False
    if definition.vartype == "real":
        try:
            return math.isclose(float(current), float(normalized), rel_tol=1e-9)
        except ValueError:
            return False
    if definition.vartype == "enum":
        return current.lower() == normalized.lower()
    return current == normalized
