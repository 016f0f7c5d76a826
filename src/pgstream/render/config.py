"""``ConfigRenderer``: the text pgstream writes into PostgreSQL's configuration, per version.

Pure functions, no I/O: primary settings, ``pg_hba.conf`` lines, ``primary_conninfo`` and the
standby's recovery configuration (``recovery.conf`` before 12, ``standby.signal`` plus settings
from 12). Also the small parsers/mergers for ``postgresql.conf``-style text that the effect
layers use to write those files without piling up duplicate lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput, NotAvailable
from pgstream.facts import compat, identifiers
from pgstream.facts.capabilities import conninfo_options
from pgstream.facts.version import ServerVersion

HBA_METHODS = frozenset({"scram-sha-256", "md5", "password", "trust", "reject", "cert", "gss",
                         "sspi", "ldap", "radius", "pam"})

# libpq connection options -> first major whose libpq knows each (from the version table).
CONNINFO_OPTIONS_SINCE: dict[str, int] = conninfo_options()

_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*?)\s*$")


def quote_value(value: str) -> str:
    """Quote a string for postgresql.conf / recovery.conf: backslashes and quotes escaped.

    A line break cannot be written inside a value (it would end the line and let the rest be
    read as another setting): it raises :class:`InvalidInput`.
    """
    if any(c in value for c in "\n\r\0"):
        raise InvalidInput(f"a configuration value cannot contain a line break or NUL: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def render_settings(settings: Mapping[str, str]) -> str:
    """``name = 'value'`` lines, one per setting, in the given order."""
    return "".join(f"{name} = {quote_value(value)}\n" for name, value in settings.items())


def parse_settings(text: str) -> dict[str, str]:
    """Read ``name = value`` lines (the last one of a name wins), unquoting values."""
    result: dict[str, str] = {}
    for line in text.split("\n"):
        key, value = _split_line(line)
        if key is not None:
            result[key] = value
    return result


def _split_line(line: str) -> tuple[str | None, str]:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None, ""
    match = _KEY.match(stripped)
    if match is None:
        return None, ""
    return match[1].lower(), _unquote(match[2])


def _unquote(raw: str) -> str:
    if raw.startswith("'"):
        out: list[str] = []
        i = 1
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                out.append(raw[i + 1])
                i += 2
                continue
            if ch == "'":
                if raw[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(ch)
            i += 1
        return "".join(out)
    return raw.split("#", 1)[0].strip()


def merge_settings(existing: str, settings: Mapping[str, str | None]) -> str:
    """Rewrite config text so each named setting appears once, with its new value, at the end.

    Lines for other settings and comments are kept as they were; ``None`` removes a setting.
    Applying the same merge twice gives the same text (no duplicates pile up).
    """
    names = {name.lower() for name in settings}
    kept = [line for line in existing.split("\n") if _split_line(line)[0] not in names]
    while kept and not kept[-1]:
        kept.pop()
    text = "\n".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + render_settings({k: v for k, v in settings.items() if v is not None})


def _parse_version(value: str | int | ServerVersion) -> ServerVersion:
    return ServerVersion.parse(value)


@attrs.frozen
class ConfigRenderer:
    """Renders configuration for one server version. ``ConfigRenderer("15")`` works too."""

    version: ServerVersion = attrs.field(converter=_parse_version)

    def primary_settings(
        self,
        *,
        listen_addresses: str = "*",
        max_wal_senders: int = 10,
        max_replication_slots: int = 10,
        wal_keep_segments: int = 100,
        wal_segment_size_mb: int = 16,
        hot_standby: bool = True,
        wal_log_hints: bool = True,
    ) -> dict[str, str]:
        """The seed's step 1, for this version: what the primary needs to serve standbys.

        ``wal_keep_segments`` becomes ``wal_keep_size`` (segments x segment size, in MB) from
        13. ``wal_log_hints`` lets ``pg_rewind`` bring a diverged former primary back.
        Values are in the units ``pg_settings.setting`` reports, so they compare directly.
        """
        for label, number in (("max_wal_senders", max_wal_senders),
                              ("max_replication_slots", max_replication_slots),
                              ("wal_keep_segments", wal_keep_segments),
                              ("wal_segment_size_mb", wal_segment_size_mb)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise InvalidInput(f"{label} must be a non-negative integer, not {number!r}")
        if not listen_addresses or "'" in listen_addresses or "\n" in listen_addresses:
            raise InvalidInput(f"invalid listen_addresses {listen_addresses!r}")
        adapter = self.version.adapter
        settings = {
            "listen_addresses": listen_addresses,
            "wal_level": "replica",
            "max_wal_senders": str(max_wal_senders),
            "max_replication_slots": str(max_replication_slots),
        }
        if adapter.has("setting", "wal_keep_size"):
            settings["wal_keep_size"] = str(wal_keep_segments * wal_segment_size_mb)
        else:
            settings[adapter.setting("wal_keep_segments")] = str(wal_keep_segments)
        settings["hot_standby"] = "on" if hot_standby else "off"
        settings["wal_log_hints"] = "on" if wal_log_hints else "off"
        return settings

    def default_auth_method(self) -> str:
        """scram-sha-256 where the version has it (10+), md5 on 9.6
        (:func:`pgstream.facts.compat.default_auth_method`)."""
        return compat.default_auth_method(self.version)

    def password_encryption(self) -> str:
        """The ``password_encryption`` value matching :meth:`default_auth_method`."""
        return compat.password_encryption(self.version)

    def hba_line(self, user: str, address: str, method: str = "scram-sha-256") -> str:
        """The seed's step 2: ``host replication USER ADDRESS METHOD``.

        Physical replication connections match only the ``replication`` keyword, never ``all``.
        """
        identifiers.role_name(user)
        cidr = identifiers.hba_address(address)
        if method not in HBA_METHODS:
            raise InvalidInput(
                f"unknown pg_hba authentication method {method!r}: use one of "
                + ", ".join(sorted(HBA_METHODS))
            )
        if not compat.auth_method_exists(method, self.version):
            raise NotAvailable(
                f"scram-sha-256 does not exist on PostgreSQL {self.version.major}: it was "
                "introduced in PostgreSQL 10; use method='md5'",
                name="scram-sha-256", since="10",
            )
        return f"host    replication    {user}    {cidr}    {method}"

    def primary_conninfo(
        self,
        *,
        host: str,
        port: int,
        user: str,
        passfile: str | None = None,
        application_name: str | None = None,
        **options: str | int,
    ) -> str:
        """The standby's ``primary_conninfo``, holding only options its server's libpq knows.

        Passwords are never written inline: pass ``passfile`` (a file of mode 0600). Any other
        libpq option may be given as a keyword; one this standby's libpq would reject raises
        :class:`NotAvailable` instead of breaking the walreceiver later.
        """
        if "password" in options:
            raise InvalidInput(
                "primary_conninfo never holds a password: write it to a passfile (mode 0600) "
                "and pass passfile=..."
            )
        identifiers.role_name(user)
        identifiers.port(port)
        if not host or any(c.isspace() for c in host):
            raise InvalidInput(f"invalid host {host!r}")
        params: dict[str, str | int] = {"user": user, "host": host, "port": port}
        if passfile is not None:
            params["passfile"] = passfile
        if application_name is not None:
            params["application_name"] = identifiers.application_name(application_name)
        params.update(options)
        for key in params:
            since = CONNINFO_OPTIONS_SINCE.get(key)
            if since is None:
                raise InvalidInput(f"unknown libpq connection option {key!r}")
            if not self.version.adapter.has("conninfo", key):
                raise NotAvailable(
                    f"connection option {key!r} is unknown to PostgreSQL {self.version.major}'s "
                    f"libpq (introduced in {ServerVersion(since).major}); a standby of this "
                    "version would refuse it"
                    + ("; on 9.6 put the password in the server user's ~/.pgpass instead"
                       if key == "passfile" else ""),
                    name=key, since=ServerVersion(since).major,
                )
        return pg_conninfo.make_conninfo("", **params)

    def standby_settings(self, primary_conninfo: str,
                         slot_name: str | None = None) -> dict[str, str]:
        """The recovery settings a standby needs (in recovery.conf before 12, settings from 12)."""
        settings: dict[str, str] = {}
        if not self.version.adapter.supports("standby_signal"):
            settings["standby_mode"] = "on"
        settings["primary_conninfo"] = primary_conninfo
        if slot_name is not None:
            settings["primary_slot_name"] = identifiers.slot_name(slot_name)
        if not self.version.adapter.supports("standby_signal"):
            # 'current' was the default before 12; a standby must follow promotions.
            settings["recovery_target_timeline"] = "latest"
        return settings

    def standby_files(self, primary_conninfo: str, slot_name: str | None = None) -> dict[str, str]:
        """File name in the data directory -> content, for a streaming standby.

        Before 12: ``recovery.conf`` (written whole). From 12: an empty ``standby.signal`` and
        the settings for ``postgresql.auto.conf``, which are *merged* into that file (see
        :func:`merge_settings`) as ``pg_basebackup -R`` does, never replacing it.
        """
        settings = self.standby_settings(primary_conninfo, slot_name)
        if self.version.adapter.supports("standby_signal"):
            return {"standby.signal": "", "postgresql.auto.conf": render_settings(settings)}
        return {"recovery.conf": "# written by pgstream\n" + render_settings(settings)}

    def node_settings(self, *, port: int, socket_dir: str, cluster_name: str,
                      listen_addresses: str = "127.0.0.1") -> dict[str, str]:
        """Per-node settings of a local sandbox server (its own port, socket and name)."""
        identifiers.port(port)
        identifiers.node_name(cluster_name)
        settings = {
            "port": str(port),
            "listen_addresses": listen_addresses,
            "unix_socket_directories": socket_dir,
            "cluster_name": cluster_name,
        }
        return settings


def passfile_line(host: str, port: int | str, user: str, password: str,
                  database: str = "*") -> str:
    """One ``~/.pgpass``-format line; ``:`` and ``\\`` escaped as libpq expects."""

    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    if "\n" in password or "\r" in password:
        raise InvalidInput("a password for a passfile cannot contain a line break")
    return ":".join(esc(v) for v in (host, str(port), database, user, password)) + "\n"
