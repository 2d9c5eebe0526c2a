"""``phasekit db``'s decisions that need no server: URL and version refusals with their exact messages, usage
errors, and the private password file. The servers' side is in test_db_migrate.py."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from phasekit.cli import main
from phasekit.db import cli as db_cli
from phasekit.db import migrate as migrate_module
from phasekit.db.connection import DatabaseError, endpoint, session
from phasekit.db.migrate import check_versions, major_version, migrate_database
from phasekit.db.redis_copy import redis_endpoint


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        status = main(["db", *args])
    except SystemExit as exit_info:
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(("source", "target"), [(150018, 150002), (150018, 160001), (90624, 100000)])
def test_a_target_on_the_same_or_a_newer_major_version_is_accepted(source, target):
    check_versions(source, target)


@pytest.mark.parametrize(("source", "target", "message"), [
    (160002, 150018, "the target runs PostgreSQL 15, older than the source's PostgreSQL 16; a dump restores only "
                     "into the same or a newer major version: use a target running PostgreSQL 16 or newer"),
    (150018, 90624, "the target runs PostgreSQL 9, older than the source's PostgreSQL 15; a dump restores only "
                    "into the same or a newer major version: use a target running PostgreSQL 15 or newer"),
])
def test_a_target_on_an_older_major_version_is_refused(source, target, message):
    with pytest.raises(DatabaseError) as refused:
        check_versions(source, target)
    assert str(refused.value) == message


def test_migrate_asks_both_servers_their_version_before_anything_else(monkeypatch, capsys):
    asked = []

    def fake_version(_session, side):
        asked.append(side.role)
        return {"source": 160004, "target": 150018}[side.role]

    monkeypatch.setattr(migrate_module, "server_version", fake_version)
    assert run(capsys, "migrate", "--source", "postgresql://app@db1.internal:5432/app",
               "--target", "postgresql://app@db2.internal/app") == (
        1, "", "error: the target runs PostgreSQL 15, older than the source's PostgreSQL 16; a dump restores only "
               "into the same or a newer major version: use a target running PostgreSQL 16 or newer\n")
    assert asked == ["source", "target"]


def test_major_version_of_server_version_num():
    assert [major_version(number) for number in (150018, 100000, 90624, 170000)] == [15, 10, 9, 17]


@pytest.mark.parametrize(("role", "url", "message"), [
    ("source", "postgresql://app:hunter2@db/app",
     "--source: the URL holds a password, which would show in the process list and the shell history; remove it "
     "and put the password in PHASEKIT_SOURCE_PASSWORD or in your PGPASSFILE (~/.pgpass)"),
    ("target", "postgres://app:@db/app",
     "--target: the URL holds a password, which would show in the process list and the shell history; remove it "
     "and put the password in PHASEKIT_TARGET_PASSWORD or in your PGPASSFILE (~/.pgpass)"),
    ("source", "mysql://app@db/app", "--source mysql://app@db/app: not a PostgreSQL URL; expected "
                                     "postgresql://USER@HOST:PORT/DBNAME"),
    ("target", "postgresql://db/app", "--target postgresql://db/app: name the user, host and database: "
                                      "postgresql://USER@HOST:PORT/DBNAME"),
    ("target", "postgresql://app@db", "--target postgresql://app@db: name the user, host and database: "
                                      "postgresql://USER@HOST:PORT/DBNAME"),
])
def test_urls_are_refused_with_exact_messages(role, url, message):
    with pytest.raises(DatabaseError) as refused:
        endpoint(role, url)
    assert str(refused.value) == message


def test_a_password_is_never_echoed_back_in_a_refusal():
    with pytest.raises(DatabaseError) as refused:
        endpoint("source", "mysql://app:hunter2@db/app")
    assert "hunter2" not in str(refused.value) and "app:***@db" in str(refused.value)


def test_a_parsed_url_keeps_its_parts():
    parsed = endpoint("target", "postgresql://app%40corp@db.internal:6543/my%20db?sslmode=require")
    assert (parsed.host, parsed.port, parsed.dbname, parsed.user) == ("db.internal", 6543, "my db", "app@corp")
    assert parsed.label == "target db.internal:6543/my db"


def test_a_redis_url_with_a_password_is_refused():
    with pytest.raises(DatabaseError) as refused:
        redis_endpoint("source", "redis://:hunter2@cache:6379/0")
    assert str(refused.value) == (
        "--redis-source: the URL holds a password, which would show in the process list and the shell history; "
        "remove it and put the password in PHASEKIT_REDIS_SOURCE_PASSWORD")
    with pytest.raises(DatabaseError, match=r"^--redis-target http://cache: not a Redis URL; expected "):
        redis_endpoint("target", "http://cache")


def test_the_private_password_file(tmp_path):
    user_file = tmp_path / "pgpass"
    user_file.write_text("other:5432:*:me:from-user-file\n")
    source, target = endpoint("source", "postgresql://app@db1:5432/app"), endpoint("target", "postgresql://a@db2/x")
    environ = {"PHASEKIT_SOURCE_PASSWORD": "p:w\\d", "PGPASSWORD": "stray", "PGPASSFILE": str(user_file),
               "PATH": os.environ["PATH"], "PHASEKIT_REDIS_SOURCE_PASSWORD": "r"}
    with session(source, target, environ=environ) as db_session:
        passfile = Path(db_session.environment["PGPASSFILE"])
        assert passfile.read_text() == "db1:5432:app:app:p\\:w\\\\d\nother:5432:*:me:from-user-file\n"
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert stat.S_IMODE(passfile.parent.stat().st_mode) == 0o700
        assert not {"PGPASSWORD", "PHASEKIT_SOURCE_PASSWORD", "PHASEKIT_REDIS_SOURCE_PASSWORD"} \
            & db_session.environment.keys()
    assert not passfile.exists() and not passfile.parent.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["migrate", "--source", "postgresql://a@h/d"], "the following arguments are required: --target"),
    (["migrate", "--source", "postgresql://a@h/d", "--target", "postgresql://a@h/e", "--jobs", "0"],
     "--jobs 0: at least 1"),
    (["migrate", "--source", "postgresql://a@h/d", "--target", "postgresql://a@h/e", "--redis-source", "redis://r"],
     "--redis-source and --redis-target go together"),
    (["verify", "--target", "postgresql://a@h/e"], "the following arguments are required: --source"),
    (["unfreeze"], "the following arguments are required: --source"),
    (["adopt", "--target", "postgresql://a@h/e"], "the following arguments are required: --role"),
])
def test_usage_errors_exit_2_with_the_message(capsys, args, message):
    status, out, err = run(capsys, *args)
    assert (status, out) == (2, "")
    assert err.endswith(f"error: {message}\n"), err
    assert err.startswith(f"usage: phasekit db {args[0]}")


def test_restore_and_drill_say_so_when_the_restore_module_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(db_cli, "_restore_module", lambda: None)
    assert run(capsys, "drill") == (1, "", "error: phasekit db drill is not available in this version\n")


def test_the_top_level_help_lists_db(capsys):
    status, out, _ = run_top(capsys, "--help")
    assert status == 0 and "{plan,risk,render,db}" in out
    assert "    db                  migrate a database between phases and verify it;\n" in out


def run_top(capsys, *args):
    try:
        status = main(list(args))
    except SystemExit as exit_info:
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_migrate_database_refuses_zero_jobs_before_connecting():
    with pytest.raises(DatabaseError, match=r"^--jobs 0: at least 1$"):
        migrate_database("postgresql://a@h/d", "postgresql://a@h/e", jobs=0, out=io.StringIO())


def test_pgpass_keeps_the_password_in_the_password_file_and_prints_the_url_without_it(tmp_path, monkeypatch, capsys):
    passfile = tmp_path / "migration.pgpass"
    passfile.write_text("127.0.0.1:15432:app:app:old\nother:5432:*:me:kept\n")
    passfile.chmod(0o644)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.setattr("sys.stdin", io.StringIO("postgresql://app:p%3Aw%5Cd@10.0.0.5:5432/app?sslmode=require\n"))
    assert run(capsys, "pgpass", "--host", "127.0.0.1", "--port", "15432") == (
        0, "postgresql://app@127.0.0.1:15432/app?sslmode=require\n", "")
    assert passfile.read_text() == "other:5432:*:me:kept\n127.0.0.1:15432:app:app:p\\:w\\\\d\n"
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600


def test_pgpass_refuses_input_without_a_password(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    monkeypatch.setattr("sys.stdin", io.StringIO("postgresql://app@db/app\n"))
    assert run(capsys, "pgpass", "--host", "127.0.0.1", "--port", "15432") == (
        1, "", "error: pgpass: stdin holds no postgresql://USER:PASSWORD@HOST/DBNAME URL\n")
    assert not (tmp_path / "pgpass").exists()


@pytest.mark.parametrize(("option", "args"), [
    ("--role", ["adopt", "--target", "postgresql://master@h/app", "--role", "App-User"]),
    ("--target-role", ["migrate", "--source", "postgresql://a@h/d", "--target", "postgresql://m@h/e", "--target-role",
                       "App-User"])])
def test_a_target_role_that_is_no_role_name_is_refused_before_connecting(capsys, option, args):
    """Lowercase names only (phase 3's rule, components/database_role.py), so the adopted schema's name needs
    no quoting; refused before any connection (the hosts here do not exist)."""
    assert run(capsys, *args) == (1, "", f"error: {option}: 'App-User'; allowed: 1-63 lowercase letters, digits "
                                         "and underscores, starting with a letter, not pg_*, public, postgres, "
                                         "rdsadmin or rds_superuser\n")
