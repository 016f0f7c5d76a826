"""Reading ``global/pg_control`` of a stopped server: its state and last checkpoint.

Needed where no SQL can be asked (the server is down) and ``pg_controldata`` of the right
major may not be installed (server-only builds ship without it). Only the leading fields are
read, whose layout has been the same from 9.6 to 18:

    uint64 system_identifier; uint32 pg_control_version; uint32 catalog_version_no;
    DBState state (int32); [4 bytes padding]; pg_time_t time (int64);
    XLogRecPtr checkPoint (uint64)            -- offset 32: the latest checkpoint record
    [XLogRecPtr prevCheckPoint]               -- before 11 only
    CheckPoint checkPointCopy: XLogRecPtr redo; TimeLineID ThisTimeLineID (uint32) -- 48 or 56
"""

from __future__ import annotations

import enum
import struct
from pathlib import Path

import attrs

from pgstream.errors import OperationFailed, PgStreamError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, LocalHost

_HEAD = struct.Struct("<QIIi4xqQ")


class DbState(enum.IntEnum):
    """The cluster state ``pg_controldata`` reports ("shut down", "in production", ...)."""
    STARTUP = 0
    SHUTDOWNED = 1
    SHUTDOWNED_IN_RECOVERY = 2
    SHUTDOWNING = 3
    IN_CRASH_RECOVERY = 4
    IN_ARCHIVE_RECOVERY = 5
    IN_PRODUCTION = 6


@attrs.frozen
class ControlData:
    """What pgstream reads from ``pg_control`` of a stopped server: state, checkpoints, timeline,
    system identifier.
    """
    system_identifier: str
    pg_control_version: int
    state: DbState
    checkpoint: Lsn
    timeline: int | None = None  # of the latest checkpoint; read when the version is given

    @property
    def clean_shutdown(self) -> bool:
        """Stopped cleanly, as a primary (SHUTDOWNED) or as a standby (…_IN_RECOVERY)."""
        return self.state in (DbState.SHUTDOWNED, DbState.SHUTDOWNED_IN_RECOVERY)


def read(data_dir: Path, version: ServerVersion | None = None,
         host: Host | None = None) -> ControlData:
    """The leading fields of ``data_dir``'s pg_control; its timeline too if ``version`` is
    given (the offset depends on it, see the module docstring)."""
    path = Path(data_dir) / "global" / "pg_control"
    try:
        whole = (host or LocalHost()).read_bytes(path)
        raw = whole[:_HEAD.size]
    except (OSError, PgStreamError) as exc:
        raise OperationFailed(f"cannot read {path}: {exc}") from None
    if len(raw) < _HEAD.size:
        raise OperationFailed(f"{path} is too short to be a pg_control file")
    sysid, control_version, _catalog, state, _time, checkpoint = _HEAD.unpack(raw)
    if not 900 <= control_version < 10000:
        raise OperationFailed(f"{path} does not look like a pg_control file "
                            f"(pg_control_version {control_version})")
    try:
        db_state = DbState(state)
    except ValueError:
        raise OperationFailed(f"{path}: unknown database state {state}") from None
    timeline = None
    if version is not None:
        offset = 56 if version.adapter.supports("pg_control_prev_checkpoint") else 48
        (timeline,) = struct.unpack_from("<I", whole, offset)
    return ControlData(str(sysid), control_version, db_state, Lsn(checkpoint), timeline)
