"""``migrate_database``: copy a live PostgreSQL database to another server and prove the copy whole.

Order: both URLs checked (no passwords), the target's major version checked against the source's, the target
checked empty (and, with ``target_role``, adoptable: ``adopt.py``), the source frozen (``freeze.py``), the data
copied by ``pg_dump --format=custom`` streamed straight into ``pg_restore``, Redis copied when asked
(``redis_copy.py``), then both sides verified (``verify.py``).

Why streamed rather than ``--format=directory --jobs N``: dump and restore then run at the same time, and nothing
is written to local disk. On 2 cores with a 300 MB pgbench database (one big table, like most apps' largest),
the stream copied in 3.8-6.1 s against 7.7-11.5 s for a directory dump with 2 jobs (measured 2026-12-03 on this
project's shared test machine); a directory dump restores tables in parallel, but on 2 cores the overlap of
dump and restore wins. The archive is uncompressed: it only crosses a pipe, and compression would cost the CPU
the freeze is waiting for. ``jobs`` sets the parallel checksum queries of the verification.

With ``target_role`` (phase 3: the target URL names the RDS master user, the app connects as its own role),
``pg_restore`` runs with ``--no-owner --no-acl`` (the source's roles do not exist on RDS), the verification
compares ``public`` with ``public`` leaving the role's own schema out, and only a verified copy is then adopted
(``adopt.py``: ``public`` renamed to the role's schema and given to the role, metadata only).

After a successful run the source stays read-only: the app moves to the target, and a write that reached the
source now would be left behind. The report prints how to lift the freeze for the way back.

On failure:
- before or during the copy (a tool failed, the target refused something): the source is unfrozen at once,
  since nothing can have moved to the target yet, and the error is raised;
- verification found differences: the source stays FROZEN. A difference means one side changed in a way this
  tool did not do (a writer that overrode the read-only default, an app already pointed at the target) or the
  copy is wrong. Neither side can then be called the authority, and letting writes resume on the source would
  widen a split that a person has to settle; the report lists the differences and prints the unfreeze command.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from phasekit.db.adopt import adopt_schema, check_adoptable, check_role
from phasekit.db.connection import DatabaseError, Endpoint, Session, endpoint, session, tool
from phasekit.db.freeze import Freeze, freeze_writes, unfreeze, unfreeze_statement
from phasekit.db.verify import KIND_NAMES, verification_text, verify_databases

if TYPE_CHECKING:
    from phasekit.db.redis_copy import RedisEndpoint

NON_EMPTY_SQL = f"""
SELECT item FROM (
  SELECT CASE c.relkind {' '.join(f"WHEN '{kind}' THEN '{name}'" for kind, name in KIND_NAMES.items())}
         ELSE 'relation' END || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS item
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
    AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
  UNION ALL SELECT 'large object ' || oid FROM pg_largeobject_metadata
  UNION ALL SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
) found ORDER BY item
"""
NON_EMPTY_SHOWN = 3


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did. ``ok`` only when the copy is verified equal on every count and checksum."""

    ok: bool
    differences: tuple[str, ...]
    freeze_seconds: float | None
    """From the ``ALTER DATABASE`` that froze the source to the end of verification; None without a freeze."""

    freeze_started_at: datetime | None
    freeze_ended_at: datetime | None
    quiet_lsn: str | None
    """The source's WAL position once its last writer had gone."""

    source_frozen: bool
    """The source is still read-only when the run returns."""

    copy_seconds: float
    verify_seconds: float


def major_version(version_num: int) -> int:
    """``server_version_num`` to the major version: 150018 -> 15 (before 10 the major had two parts: 90624 is
    9.6, shown here as 9, which still orders correctly against 10 and later)."""
    return version_num // 10000


def check_versions(source_version_num: int, target_version_num: int) -> None:
    """A dump restores into the same or a newer major version, never an older one."""
    source_major, target_major = major_version(source_version_num), major_version(target_version_num)
    if target_major < source_major:
        raise DatabaseError(f"the target runs PostgreSQL {target_major}, older than the source's PostgreSQL "
                            f"{source_major}; a dump restores only into the same or a newer major version: use a "
                            f"target running PostgreSQL {source_major} or newer")


def check_empty(found: list[str], target: Endpoint) -> None:
    if not found:
        return
    shown = ", ".join(found[:NON_EMPTY_SHOWN]) + (f" and {len(found) - NON_EMPTY_SHOWN} more"
                                                   if len(found) > NON_EMPTY_SHOWN else "")
    raise DatabaseError(f"{target.label} is not empty ({shown}); migrate into an empty database, or pass "
                        "--allow-non-empty to have pg_restore drop and replace the objects the dump holds")


def server_version(db_session: Session, side: Endpoint) -> int:
    return int(db_session.psql(side, "SHOW server_version_num"))


def migrate_database(source: str, target: str, *, freeze: bool = True, allow_non_empty: bool = False,
                     jobs: int = 2, out: TextIO, redis_source: str | None = None,
                     redis_target: str | None = None, target_role: str | None = None) -> MigrationReport:
    """Copy ``source`` to ``target`` and verify both sides. Refusals (a password in a URL, an older target,
    a non-empty target) and tool failures raise ``DatabaseError`` before anything is left frozen."""
    if jobs < 1:
        raise DatabaseError(f"--jobs {jobs}: at least 1")
    source_end, target_end = endpoint("source", source), endpoint("target", target)
    if target_role is not None:
        check_role(target_role)
    redis_pair = _redis_endpoints(redis_source, redis_target)
    with session(source_end, target_end) as db_session:
        source_version, target_version = server_version(db_session, source_end), server_version(db_session, target_end)
        check_versions(source_version, target_version)
        if not allow_non_empty:
            check_empty(db_session.psql(target_end, NON_EMPTY_SQL).splitlines(), target_end)
        if target_role is not None:
            check_adoptable(db_session, target_end, target_role)
        if redis_pair is not None:
            from phasekit.db.redis_copy import check_redis_target

            check_redis_target(*redis_pair, allow_non_empty=allow_non_empty)
        out.write(f"migrate: {source_end.label} (PostgreSQL {major_version(source_version)}) -> "
                  f"{target_end.label} (PostgreSQL {major_version(target_version)})\n")
        return _frozen_copy(db_session, source_end, target_end, freeze=freeze, allow_non_empty=allow_non_empty,
                            jobs=jobs, out=out, redis_pair=redis_pair, target_role=target_role)


def _redis_endpoints(redis_source: str | None, redis_target: str | None) -> tuple[RedisEndpoint, RedisEndpoint] | None:
    if (redis_source is None) != (redis_target is None):
        raise DatabaseError("--redis-source and --redis-target go together")
    if redis_source is None or redis_target is None:
        return None
    from phasekit.db.redis_copy import redis_endpoint

    return redis_endpoint("source", redis_source), redis_endpoint("target", redis_target)


def _frozen_copy(db_session: Session, source: Endpoint, target: Endpoint, *, freeze: bool, allow_non_empty: bool,
                 jobs: int, out: TextIO, redis_pair: tuple[RedisEndpoint, RedisEndpoint] | None,
                 target_role: str | None = None) -> MigrationReport:
    frozen: Freeze | None = None
    if freeze:
        frozen = _freeze(db_session, source, out)
    try:
        copy_started = time.monotonic()
        copy_database(db_session, source, target, allow_non_empty=allow_non_empty, owners=target_role is None)
        copy_seconds = time.monotonic() - copy_started
        out.write(f"copy: pg_dump --format=custom streamed into pg_restore: {copy_seconds:.1f} s\n")
        redis_differences: tuple[str, ...] = ()
        if redis_pair is not None:
            from phasekit.db.redis_copy import copy_redis

            redis_differences = copy_redis(*redis_pair, allow_non_empty=allow_non_empty, out=out)
        verify_started = time.monotonic()
        verification = verify_databases(db_session, source, target, jobs=jobs,
                                        ignore_schemas=() if target_role is None else (target_role,))
        verify_seconds = time.monotonic() - verify_started
        out.write(verification_text(verification))
        if target_role is not None and verification.ok and not redis_differences:
            _adopt_unless_rehearsal(db_session, target, target_role, freeze=freeze, out=out)
    except BaseException:
        if frozen is not None:
            unfreeze(db_session, source)
            out.write(f"freeze: lifted, the copy failed: {source.label} accepts writes again\n")
        raise
    differences = verification.differences + redis_differences
    ended_at = datetime.now(UTC)
    report = MigrationReport(
        ok=not differences, differences=differences,
        freeze_seconds=None if frozen is None else time.monotonic() - frozen.started_monotonic,
        freeze_started_at=None if frozen is None else frozen.started_at,
        freeze_ended_at=None if frozen is None else ended_at,
        quiet_lsn=None if frozen is None else frozen.quiet_lsn, source_frozen=frozen is not None,
        copy_seconds=copy_seconds, verify_seconds=verify_seconds)
    out.write(report_text(report, source))
    return report


def _adopt_unless_rehearsal(db_session: Session, target: Endpoint, role: str, *, freeze: bool, out: TextIO) -> None:
    """A rehearsal leaves its copy in public, where the real run's ``pg_restore --clean`` replaces it; once
    adopted, the extensions would sit in the role's schema and the real run could not drop or recreate them."""
    if freeze:
        adopt_schema(db_session, target, role, out=out)
    else:
        out.write(f"adopt: not in a rehearsal (--no-freeze): the copy stays in public for the real run to replace; "
                  f"{role}'s schema is unchanged\n")


def _freeze(db_session: Session, source: Endpoint, out: TextIO) -> Freeze:
    frozen = freeze_writes(db_session, source)
    out.write(f"freeze: {source.label} read-only since {_timestamp(frozen.started_at)}; "
              f"{frozen.sessions_ended} other session(s) ended; WAL at {frozen.quiet_lsn}\n")
    return frozen


def copy_database(db_session: Session, source: Endpoint, target: Endpoint, *, allow_non_empty: bool,
                  owners: bool = True) -> None:
    """``pg_dump --format=custom`` streamed straight into ``pg_restore``: both run at once, nothing lands on disk.
    Without ``owners`` the target's user owns everything restored and no GRANT is replayed."""
    clean = ["--clean", "--if-exists"] if allow_non_empty else []
    clean += [] if owners else ["--no-owner", "--no-acl"]
    with tempfile.TemporaryFile("w+") as dump_errors:
        dump = subprocess.Popen([tool("pg_dump"), "--format=custom", "--compress=0", "--dbname", source.url],
                                env=db_session.environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=dump_errors)
        assert dump.stdout is not None
        try:
            restore = subprocess.Popen([tool("pg_restore"), "--exit-on-error", *clean, "--dbname", target.url],
                                       env=db_session.environment, stdin=dump.stdout, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        finally:
            dump.stdout.close()  # pg_restore holds the pipe now; if it stops reading, pg_dump gets SIGPIPE
        _, restore_errors = restore.communicate()
        dump.wait()
        dump_errors.seek(0)
        if dump.returncode != 0 and restore.returncode == 0:
            raise DatabaseError(f"pg_dump ({source.label}) failed: {_one_line(dump_errors.read(), dump.returncode)}")
        if restore.returncode != 0:
            raise DatabaseError(f"pg_restore ({target.label}) failed: {_one_line(restore_errors, restore.returncode)}"
                                + (f"; pg_dump: {_one_line(dump_errors.read(), dump.returncode)}"
                                   if dump.returncode not in (0, -13) else ""))


def _one_line(text: str, status: int) -> str:
    return " ".join(text.split()) or f"exit {status}"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def report_text(report: MigrationReport, source: Endpoint) -> str:
    lines = []
    if report.freeze_seconds is not None and report.freeze_started_at and report.freeze_ended_at:
        lines.append(f"freeze window: {_timestamp(report.freeze_started_at)} -> "
                     f"{_timestamp(report.freeze_ended_at)} ({report.freeze_seconds:.1f} s)")
    if report.ok:
        lines.append("migrate: ok, the target equals the source")
    else:
        lines.append(f"migrate: FAILED, {len(report.differences)} difference(s)")
    if report.source_frozen:
        why = ("the app moves to the target now" if report.ok else
               "a difference means a side changed outside this tool or the copy is wrong; settle it first")
        lines += [f"the source stays read-only ({why}). To accept writes on the source again:",
                  f"  phasekit db unfreeze --source {source.url}",
                  f"  (or in psql on the source: {unfreeze_statement(source.dbname)})"]
    return "".join(f"{line}\n" for line in lines)
