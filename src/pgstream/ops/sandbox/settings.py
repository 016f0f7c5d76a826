"""A sandbox's settings checked before its primary first starts, so that a bad one is an
:class:`~pgstream.errors.InvalidInput` naming the setting and the value, not a server that
does not start.

Two checks, both with the sandbox's own server programs:

- :func:`check_settings`, before anything is created: each setting ``postgres
  --describe-config`` lists (run once per ``postgres`` binary, the result cached) is checked
  for its type and range (:func:`pgstream.facts.settings.check_value`): a boolean, a number
  within ``min``..``max`` (a value with a unit is only checked for a valid memory or time
  unit: the listing gives no base unit). The listing names no enum labels and leaves out the
  developer options, so those (and names it does not list) are left to the second check.
- :func:`check_config_files`, once the primary's data directory holds its configuration and
  before its first start: ``postgres -D DATA -C data_directory`` reads the configuration files
  as the server's start would and refuses exactly what the start would (unknown names, enum
  labels, units, ranges); its messages become the error. The caller then removes the sandbox.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from pgstream.errors import InvalidInput
from pgstream.facts.settings import SettingDefinition, check_value
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import LocalHost, OsUser

_TYPES = {"BOOLEAN": "bool", "INTEGER": "integer", "REAL": "real", "STRING": "string",
          "ENUM": "enum"}
_MEMORY_UNITS = ("B", "kB", "MB", "GB", "TB")
_TIME_UNITS = ("us", "ms", "s", "min", "h", "d")
_WITH_UNIT = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*([A-Za-z]+)\s*$")
_SERVER_LINE = re.compile(r"\b(LOG|FATAL|ERROR|HINT|DETAIL):\s+(.*)$")
_IN_FILE = re.compile(r' in file ".*" line \d+$')


def described(server: Installation) -> Mapping[str, SettingDefinition]:
    """The settings ``postgres --describe-config`` of ``server`` lists, by lower-case name
    (run once per binary: cached by its path, size and modification time)."""
    postgres = Path(server.bindir) / "postgres"
    try:
        info = postgres.stat()
    except OSError:
        return {}  # no server program: refused where the programs are chosen
    return _describe(str(postgres), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _describe(postgres: str, _size: int, _mtime: int) -> Mapping[str, SettingDefinition]:
    # postgres skips its "not as root" check for --describe-config only.
    done = LocalHost().run((postgres, "--describe-config"), timeout=30, check=False,
                           what="postgres --describe-config")
    found: dict[str, SettingDefinition] = {}
    if done.returncode != 0:
        return found  # an old or odd binary: the start-time check still applies
    for line in done.output.splitlines():
        fields = line.split("\t")
        if len(fields) < 7 or fields[3] not in _TYPES:
            continue
        name, context, _group, kind, _reset, low, high = fields[:7]
        numeric = kind in ("INTEGER", "REAL")
        found[name.lower()] = SettingDefinition(
            name, None, context, _TYPES[kind], None, low if numeric and low else None,
            high if numeric and high else None)
    return found


def check_settings(server: Installation, settings: Mapping[str, object]) -> None:
    """Raise :class:`InvalidInput` (nothing created yet) for the first of ``settings`` that
    ``server``'s ``postgres --describe-config`` shows to be invalid: a name that is no
    string, a value that is no string, a boolean or number that does not parse, a number out
    of the setting's range. See the module doc for what is left to
    :func:`check_config_files`."""
    known = described(server)
    for name, value in settings.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a setting's name must be a non-empty string, not {name!r}")
        if not isinstance(value, str):
            raise InvalidInput(f"the value for {name} must be a string, not {value!r}")
        definition = known.get(name.lower())
        if definition is None or definition.vartype in ("enum", "string"):
            continue
        if definition.vartype in ("integer", "real") and (
                unit := _WITH_UNIT.match(value)) is not None:
            suffix = unit.group(1)
            if suffix not in (*_MEMORY_UNITS, *_TIME_UNITS):
                raise InvalidInput(
                    f"sandbox setting {name} = {value!r} refused: {suffix!r} is no unit "
                    f"(memory: {', '.join(_MEMORY_UNITS)}; time: {', '.join(_TIME_UNITS)})")
            # the base unit is unknown here: the number only, without its range
            definition = attrs.evolve(definition, unit="kB" if suffix in _MEMORY_UNITS
                                      else "ms", min_val=None, max_val=None)
        try:
            check_value(definition, value)
        except InvalidInput as exc:
            raise InvalidInput(f"sandbox setting {name} = {value!r} refused: {exc}") from None


def check_config_files(host: LocalHost, server: Installation, user: OsUser | None,
                       data_dir: Path) -> None:
    """Raise :class:`InvalidInput` when ``server``'s ``postgres`` (run as ``user``) refuses
    the configuration files of ``data_dir`` as its start would, with the server's own
    messages (each names the setting and the value)."""
    argv = (str(Path(server.bindir) / "postgres"), "-D", str(data_dir), "-C",
            "data_directory")
    done = host.run(argv, user=user, timeout=30, check=False,
                    what="postgres -C (the configuration files checked)")
    if done.returncode == 0:
        return
    said: list[str] = []
    for line in done.output.splitlines():
        if (found := _SERVER_LINE.search(line)) is None:
            continue
        level, text = found.group(1), _IN_FILE.sub("", found.group(2).strip())
        if level == "HINT" and said:
            said[-1] += f" ({text.rstrip('.')})"
        elif "parameter" in text:
            said.append(text)
    if not said:
        return  # not the settings: what the start says about it is the error
    raise InvalidInput(f"sandbox settings refused by postgres {server.version.major} before "
                       "its first start: " + "; ".join(said))
