"""Cross-version rules: which program or server of one major works with a server of another.

The version table (:mod:`pgstream.facts.capabilities`) says what *one* major calls a thing;
these rules relate *two* versions (a client tool and a server, a standby and its primary, an
old and a new installation) or pick the authentication a major supports. Each is stated once
here, with the reason from PostgreSQL's documentation, and every module that needs it calls
it (the error messages stay with the callers, which know what was being attempted).

Pure: versions in, answers out.
"""

from __future__ import annotations

from pgstream.facts.version import ServerVersion

SCRAM = "scram-sha-256"
MD5 = "md5"


def client_fits(client: ServerVersion, server: ServerVersion) -> bool:
    """Can a client tool (``pg_basebackup``, ``pg_receivewal``) of ``client`` work with a
    server of ``server``? Only when it is of the server's major or newer.

    PostgreSQL's ``pg_basebackup`` page: "pg_basebackup works with servers of the same or an
    older major version, down to 9.1" — the base-backup replication protocol gains commands
    and WAL formats with each major, which an older client does not know.
    """
    return client.major_num >= server.major_num


def same_major(one: ServerVersion, other: ServerVersion) -> bool:
    """Are both versions of one major (``15.2`` and ``15.8``: yes; ``15`` and ``16``: no)?"""
    return one.major_num == other.major_num


def rewind_fits(tool: ServerVersion, data_dir: ServerVersion) -> bool:
    """Can a ``pg_rewind`` of ``tool`` rewind a data directory of ``data_dir``? Only one of
    the data directory's own major.

    ``pg_rewind`` reads and writes the target's ``pg_control``, WAL and relation files
    directly, whose formats change between majors; its sanity checks (``pg_rewind.c``) stop
    with "clusters are not compatible with this version of pg_rewind" when the control-file
    or catalog version is not its own build's. (It is a server application shipped with each
    major, not a client tool that is backward compatible like ``pg_basebackup``.)
    """
    return same_major(tool, data_dir)


def replica_fits(standby: ServerVersion, primary: ServerVersion) -> bool:
    """Can a server of ``standby`` replay physical WAL streamed from ``primary``? Only of the
    same major.

    PostgreSQL's "Log-Shipping Standby Servers" (Planning): "log shipping between servers
    running different major PostgreSQL release levels is not possible"; WAL and on-disk
    formats change between majors. Minor releases may differ (update the standbys first).
    """
    return same_major(standby, primary)


def upgrade_fits(new: ServerVersion, old: ServerVersion) -> bool:
    """Can ``pg_upgrade`` of ``new`` move a cluster of ``old`` to it? Only to a newer major.

    PostgreSQL's ``pg_upgrade`` page: it upgrades data files "to a later PostgreSQL major
    version"; within one major a minor update needs no pg_upgrade (the data format is the
    same), and it never downgrades.
    """
    return new.major_num > old.major_num


def auth_method_exists(method: str, version: ServerVersion) -> bool:
    """Does a server of ``version`` know the ``pg_hba.conf`` method ``method``?
    ``scram-sha-256`` exists from 10 (PostgreSQL 10 release notes: "Add SCRAM-SHA-256
    support for password negotiation and storage"); the other methods pgstream writes
    (``md5``, ``password``, ``trust``, ...) exist on every supported major.
    """
    return method != SCRAM or version.adapter.supports("scram")


def default_auth_method(version: ServerVersion) -> str:
    """The ``pg_hba.conf`` method for replication connections: ``scram-sha-256`` where the
    server has it (10+), else ``md5`` (9.6).

    PostgreSQL's "Password Authentication": scram-sha-256 "is the most secure of the
    currently provided methods", md5 is deprecated (18 warns on md5 passwords).
    """
    return SCRAM if version.adapter.supports("scram") else MD5


def password_encryption(version: ServerVersion) -> str:
    """The ``password_encryption`` value that stores verifiers for
    :func:`default_auth_method`: ``scram-sha-256`` from 10 (the default only from 14), the
    boolean ``on`` (md5) on 9.6, which knows no other value.
    """
    return SCRAM if version.adapter.supports("scram") else "on"


def verifier_algorithm(version: ServerVersion) -> str:
    """The algorithm to compute a password verifier with on the client (libpq's
    ``PQencryptPasswordConn``) for a server of ``version``: that of
    :func:`default_auth_method`. A SCRAM verifier would lock a 9.6 role out (9.6 cannot read
    it); an md5 verifier cannot log in with scram-sha-256 in ``pg_hba.conf``.
    """
    return default_auth_method(version)
