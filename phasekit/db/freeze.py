"""The write freeze: the source database turns read-only for every session, so nothing changes while it is copied.

How: ``ALTER DATABASE <db> SET default_transaction_read_only = on`` (new sessions start read-only), a short
grace for transactions that already wrote to finish, then ``pg_terminate_backend`` on every other client session
of the database (their open transactions roll back, the writer gets an error, nothing acknowledged is lost; the
app reconnects and its sessions are read-only from then on). Any write then fails with "cannot execute INSERT in
a read-only transaction". The window starts at the ``ALTER DATABASE``; the WAL position once the last other
session has ended is recorded.

What it does not stop: a client may run ``SET default_transaction_read_only = off`` (or ``BEGIN READ WRITE``)
itself; the setting is a default, not a permission. phasekit does not revoke privileges to close that gap, because
putting every grant back exactly after a rollback is its own risk. Instead, the verification after the copy reads
the live source: a write that slipped through after the snapshot shows there as a difference, and the migration
fails. Prepared transactions are refused up front: they survive the session that made them and could commit later.
Needs the database's owner (or a superuser) and ``pg_signal_backend`` (RDS: ``rds_superuser`` has both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from phasekit.db.connection import DatabaseError, Endpoint, Session, quote_ident

GRACE_SECONDS = 5.0
"""How long transactions that already wrote may take to finish before their sessions are ended."""

TERMINATE_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.1

_OTHER_CLIENTS = ("FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                  "AND backend_type = 'client backend'")


@dataclass(frozen=True)
class Freeze:
    """A freeze in force: when it began, and the WAL position once the last writer had gone."""

    started_at: datetime
    started_monotonic: float
    quiet_lsn: str
    sessions_ended: int


def unfreeze_statement(dbname: str) -> str:
    return f"ALTER DATABASE {quote_ident(dbname)} RESET default_transaction_read_only"


def freeze_statement(dbname: str) -> str:
    return f"ALTER DATABASE {quote_ident(dbname)} SET default_transaction_read_only = on"


def freeze_writes(session: Session, source: Endpoint, *, grace_seconds: float | None = None) -> Freeze:
    """Make ``source`` read-only, end its other sessions and return when no other session is left. A failure
    after the ``ALTER DATABASE`` lifts the freeze again before raising."""
    grace_seconds = GRACE_SECONDS if grace_seconds is None else grace_seconds
    prepared = session.psql(source, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")
    if int(prepared or 0):
        raise DatabaseError(f"{source.label}: {prepared} prepared transaction(s) are pending (pg_prepared_xacts); "
                            "COMMIT PREPARED or ROLLBACK PREPARED them before the freeze")
    started_at, started = datetime.now(UTC), time.monotonic()
    session.psql(source, freeze_statement(source.dbname), read_write=True)
    try:
        pids = _end_other_sessions(session, source, grace_seconds)
        lsn = session.psql(source, "SELECT pg_current_wal_lsn()")
    except BaseException:
        unfreeze(session, source)  # a half-made freeze must not outlive the run that made it
        raise
    return Freeze(started_at=started_at, started_monotonic=started, quiet_lsn=lsn, sessions_ended=len(pids))


def _end_other_sessions(session: Session, source: Endpoint, grace_seconds: float) -> list[str]:
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)  # at least once: a session mid-startup may have read the old setting
        writing = session.psql(source, f"SELECT count(*) {_OTHER_CLIENTS} AND backend_xid IS NOT NULL")
        if not int(writing or 0):
            break
    # MATERIALIZED: the planner may order a WHERE clause's conditions as it likes, and must not get to call
    # pg_terminate_backend on this very session before pid <> pg_backend_pid() has excluded it.
    ended = session.psql(source, f"WITH others AS MATERIALIZED (SELECT pid {_OTHER_CLIENTS}) "
                                 "SELECT string_agg(pid::text, ',') FROM others WHERE pg_terminate_backend(pid)")
    pids = [pid for pid in ended.split(",") if pid]
    if pids:
        _wait_until_gone(session, source, pids)
    return pids


def _wait_until_gone(session: Session, source: Endpoint, pids: list[str]) -> None:
    deadline = time.monotonic() + TERMINATE_TIMEOUT_SECONDS
    listed = ",".join(pids)
    while time.monotonic() < deadline:
        if not int(session.psql(source, f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({listed})") or 0):
            return
        time.sleep(POLL_SECONDS)
    raise DatabaseError(f"{source.label}: sessions {listed} did not end within {TERMINATE_TIMEOUT_SECONDS:g} s "
                        "of pg_terminate_backend")


def unfreeze(session: Session, source: Endpoint) -> None:
    """Writes allowed again: the database-level default is removed (sessions already open stay read-only until
    they reconnect). The session itself starts read-write, or a frozen database would refuse the statement."""
    session.psql(source, unfreeze_statement(source.dbname), read_write=True)


def is_frozen(session: Session, source: Endpoint) -> bool:
    return session.psql(source, (
        "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = current_database() AND s.setrole = 0 "
        "AND 'default_transaction_read_only=on' = ANY (s.setconfig)")) != "0"
