"""``phasekit db``: move a database between phases and prove it whole; restore a stack's backups.

    phasekit db migrate --source URL --target URL [--allow-non-empty] [--no-freeze] [--jobs N]
                        [--redis-source URL --redis-target URL] [--target-role ROLE]
    phasekit db adopt --target URL --role ROLE
    phasekit db verify --source URL --target URL [--jobs N]
    phasekit db unfreeze --source URL
    pulumi stack output --show-secrets database_url | phasekit db pgpass --host H --port P > source.url
    phasekit db restore ...   /   phasekit db drill ...   (from phasekit/db/restore.py)

URLs name no password: postgresql://USER@HOST:PORT/DBNAME. Passwords come from PHASEKIT_SOURCE_PASSWORD,
PHASEKIT_TARGET_PASSWORD (PHASEKIT_REDIS_SOURCE_PASSWORD, PHASEKIT_REDIS_TARGET_PASSWORD) or your PGPASSFILE.
Exit status: 0 ok; 1 a difference, a refusal or a failed tool (one line on stderr); 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import TextIO

from phasekit.db.connection import DatabaseError

EXIT_DIFFERENCES = 1
EXIT_USAGE = 2

PASSWORDS = """\
URLs carry no password (postgresql://USER@HOST:PORT/DBNAME; redis://HOST:PORT/DB). Passwords come from
PHASEKIT_SOURCE_PASSWORD / PHASEKIT_TARGET_PASSWORD (Redis: PHASEKIT_REDIS_SOURCE_PASSWORD /
PHASEKIT_REDIS_TARGET_PASSWORD) or from your PGPASSFILE (~/.pgpass), and reach pg_dump, pg_restore and psql
only through a private temporary password file, never their command lines.

exit status: 0 ok; 1 a difference, a refusal or a failed tool; 2 a usage error"""


def _restore_module() -> ModuleType | None:
    """``phasekit.db.restore`` (the backup engine's restore and drill), or None where it is not installed."""
    try:
        from phasekit.db import restore
    except ImportError:
        return None
    return restore


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """(the ``phasekit db`` parser, each command's parser by name, for usage errors that show its usage)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="phasekit db", formatter_class=raw, epilog=PASSWORDS,
                                     description="Copy a live database to another server and verify it; restore "
                                                 "a stack's backups.")
    commands = parser.add_subparsers(dest="db_command", required=True,
                                     metavar="{migrate,verify,unfreeze,adopt,pgpass,restore,drill}")
    migrate = commands.add_parser(
        "migrate", formatter_class=raw, epilog=PASSWORDS, help="freeze writes, copy, verify both sides",
        description="Freeze writes on the source (read-only), copy it with pg_dump/pg_restore, verify both sides\n"
                    "and print the freeze window. The source stays read-only afterwards: the app moves to the\n"
                    "target (`phasekit db unfreeze --source URL` is the way back).")
    _source_and_target(migrate)
    migrate.add_argument("--allow-non-empty", action="store_true",
                         help="restore over a target that already holds objects (pg_restore --clean --if-exists; "
                              "Redis RESTORE ... REPLACE)")
    migrate.add_argument("--no-freeze", action="store_true",
                         help="copy without freezing the source (a rehearsal: writes during the copy show up as "
                              "differences)")
    migrate.add_argument("--redis-source", metavar="URL", help="also copy this Redis database's keys (with "
                         "--redis-target)")
    migrate.add_argument("--redis-target", metavar="URL", help="the Redis database that receives the keys")
    migrate.add_argument("--target-role", metavar="ROLE",
                         help="phase 3: the target URL names the RDS master user; restore without owners or "
                              "grants, verify, then give the copy to ROLE (see `phasekit db adopt`)")
    adopt = commands.add_parser(
        "adopt", formatter_class=raw, epilog=PASSWORDS, help="give a restored public schema to the app's role",
        description="In one transaction on the target: rename ROLE's schema to ROLE_replaced_<UTC stamp>, rename\n"
                    "public to ROLE and give it and everything in it (and the large objects) to ROLE, create an\n"
                    "empty public again. Metadata only: no row is read or written. Connect as the RDS master user.")
    adopt.add_argument("--target", required=True, metavar="URL", help="postgresql://MASTER@HOST:PORT/DBNAME")
    adopt.add_argument("--role", required=True, help="the app's role (phase 3: app_user)")
    verify = commands.add_parser("verify", formatter_class=raw, epilog=PASSWORDS,
                                 help="compare two databases object by object",
                                 description="Compare two databases: per table rows and content checksums, "
                                             "sequences, extensions,\nlarge objects, views, materialized views, "
                                             "partitions, enums. Exit 1 on any difference.")
    _source_and_target(verify)
    unfreeze = commands.add_parser("unfreeze", formatter_class=raw, epilog=PASSWORDS,
                                   help="let the source accept writes again (the rollback path)",
                                   description="ALTER DATABASE ... RESET default_transaction_read_only on the "
                                               "source.")
    unfreeze.add_argument("--source", required=True, metavar="URL", help="the frozen database")
    pgpass = commands.add_parser(
        "pgpass", formatter_class=raw, help="keep a database URL's password in PGPASSFILE, print the URL without it",
        description="Read a database URL holding a password on stdin (e.g. from `pulumi stack output --show-secrets\n"
                    "database_url`), write its password to $PGPASSFILE (default ~/.pgpass; created 0600) for\n"
                    "--host and --port (a tunnel's local end), and print the same URL without the password.")
    pgpass.add_argument("--host", required=True, help="the host the database is reached at (e.g. 127.0.0.1)")
    pgpass.add_argument("--port", required=True, type=int, help="the port it is reached at")
    restore = _restore_module()
    restore_parser = commands.add_parser("restore", help="restore a stack's database from its backups")
    drill_parser = commands.add_parser("drill", help="restore into a scratch database and verify it")
    if restore is not None:
        restore.add_restore_arguments(restore_parser)
        restore.add_drill_arguments(drill_parser)
    return parser, {"migrate": migrate, "verify": verify, "pgpass": pgpass}


def _source_and_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, metavar="URL", help="postgresql://USER@HOST:PORT/DBNAME")
    parser.add_argument("--target", required=True, metavar="URL", help="postgresql://USER@HOST:PORT/DBNAME")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="parallel checksum queries per side while verifying (default 2)")


def run(argv: list[str], out: TextIO) -> int:
    """``phasekit db ARGV...``: the exit status; results on ``out``, a refusal as one line on stderr."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        commands[args.db_command].error(f"--jobs {args.jobs}: at least 1")
    try:
        if args.db_command == "migrate":
            return _migrate(args, out, commands["migrate"])
        if args.db_command == "verify":
            return _verify(args, out)
        if args.db_command == "unfreeze":
            return _unfreeze(args, out)
        if args.db_command == "adopt":
            return _adopt(args, out)
        if args.db_command == "pgpass":
            from phasekit.db.connection import store_password

            out.write(store_password(sys.stdin.read().strip(), host=args.host, port=args.port) + "\n")
            return 0
        restore = _restore_module()
        if restore is None:
            print(f"error: phasekit db {args.db_command} is not available in this version", file=sys.stderr)
            return EXIT_DIFFERENCES
        runner = restore.run_restore if args.db_command == "restore" else restore.run_drill
        return runner(args, out)
    except DatabaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DIFFERENCES


def _migrate(args: argparse.Namespace, out: TextIO, parser: argparse.ArgumentParser) -> int:
    if (args.redis_source is None) != (args.redis_target is None):
        parser.error("--redis-source and --redis-target go together")
    from phasekit.db.migrate import migrate_database

    report = migrate_database(args.source, args.target, freeze=not args.no_freeze,
                              allow_non_empty=args.allow_non_empty, jobs=args.jobs, out=out,
                              redis_source=args.redis_source, redis_target=args.redis_target,
                              target_role=args.target_role)
    return 0 if report.ok else EXIT_DIFFERENCES


def _adopt(args: argparse.Namespace, out: TextIO) -> int:
    from phasekit.db.adopt import adopt_schema
    from phasekit.db.connection import endpoint, session

    target = endpoint("target", args.target)
    with session(target) as db_session:
        adopt_schema(db_session, target, args.role, out=out, option="--role")
    return 0


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from phasekit.db.connection import endpoint, session
    from phasekit.db.verify import verification_text, verify_databases

    source, target = endpoint("source", args.source), endpoint("target", args.target)
    with session(source, target) as db_session:
        verification = verify_databases(db_session, source, target, jobs=args.jobs)
    out.write(verification_text(verification))
    return 0 if verification.ok else EXIT_DIFFERENCES


def _unfreeze(args: argparse.Namespace, out: TextIO) -> int:
    from phasekit.db.connection import endpoint, session
    from phasekit.db.freeze import is_frozen, unfreeze, unfreeze_statement

    source = endpoint("source", args.source)
    with session(source) as db_session:
        was_frozen = is_frozen(db_session, source)
        unfreeze(db_session, source)
    state = "was read-only" if was_frozen else "was not frozen"
    out.write(f"unfreeze: {source.label} {state}; ran {unfreeze_statement(source.dbname)}: new sessions accept "
              "writes (open sessions stay read-only until they reconnect)\n")
    return 0
