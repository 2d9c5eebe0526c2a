"""``phasekit db migrate`` against two real PostgreSQL servers (Debian's, on loopback) and real redis-servers.

The servers require SCRAM passwords over TCP, so every run also proves the passwords travel through the private
PGPASSFILE. Each test migrates its own copy of one mixed dataset (jsonb, bytea, arrays, numeric, floats,
timestamptz, intervals, an enum, sequences, a partitioned table, a materialized view, a view, pgcrypto, citext,
large objects) into its own empty database, so tests do not share freeze state.

What these tests cannot prove: a migration from one major version to another (one PostgreSQL is installed;
the version decision is tested as a function in test_db_cli.py), RDS's permission model, and the freeze window of
a 1 GiB database (bench/data_bench.py measures that).
"""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from phasekit.cli import main
from phasekit.db import freeze as freeze_module
from phasekit.db import migrate as migrate_module
from phasekit.db.connection import DatabaseError, endpoint, session
from phasekit.db.freeze import is_frozen
from phasekit.db.migrate import migrate_database
from tests.realtools import running_postgres, running_redis

PASSWORD = "s3cret-Pass:word\\with-escapes"
SCRAM_HBA = "host all all 127.0.0.1/32 scram-sha-256\n"
POSTGRESQL_CONF = "fsync = off\nshared_buffers = 32MB\nmax_connections = 40\n"
READ_ONLY_INSERT = "cannot execute INSERT in a read-only transaction"

MIXED_DATASET = textwrap.dedent("""\
    CREATE EXTENSION pgcrypto;
    CREATE EXTENSION citext;
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE SEQUENCE invoice_numbers START 1000;
    CREATE TABLE items (
        id serial PRIMARY KEY, doc jsonb, blob bytea, tags text[], price numeric(12, 4), ratio float8,
        seen timestamptz, span interval, feeling mood, email citext UNIQUE, secret bytea, photo oid);
    INSERT INTO items (doc, blob, tags, price, ratio, seen, span, feeling, email, secret)
    SELECT jsonb_build_object('n', i, 'nested', jsonb_build_array(i, 'x', null)), decode(md5(i::text), 'hex'),
           ARRAY['a' || i, 'b'], i / 7.0, i * 0.1 + 0.2, timestamptz '2026-01-01 00:00+02' + i * interval '1 h',
           i * interval '90 s', (ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::mood, 'User' || i || '@Example.com',
           pgp_sym_encrypt('row ' || i, 'key')::bytea
    FROM generate_series(1, 300) i;
    SELECT nextval('invoice_numbers') FROM generate_series(1, 5);
    CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, payload jsonb)
        PARTITION BY RANGE (at);
    CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO events (at, payload) SELECT date '2025-10-01' + i, jsonb_build_object('i', i)
    FROM generate_series(1, 200) i;
    CREATE VIEW happy_items AS SELECT id, email FROM items WHERE feeling = 'happy';
    CREATE MATERIALIZED VIEW items_by_mood AS SELECT feeling, count(*) AS n, sum(price) AS total FROM items
        GROUP BY feeling;
    UPDATE items SET photo = lo_from_bytea(0, decode(repeat(md5(id::text), 2000), 'hex')) WHERE id <= 3;
    SELECT lo_from_bytea(0, convert_to('an orphan large object', 'UTF8'));
""")


@pytest.fixture(scope="module")
def servers():
    with running_postgres(POSTGRESQL_CONF, SCRAM_HBA) as source, running_postgres(POSTGRESQL_CONF, SCRAM_HBA) as target:
        for server in (source, target):
            server.admin(f"ALTER ROLE postgres PASSWORD '{PASSWORD.replace(chr(39), chr(39) * 2)}'")
        source.admin("CREATE DATABASE mixed")
        loaded = source.psql(MIXED_DATASET, password=PASSWORD, dbname="mixed")
        assert loaded.returncode == 0, loaded.stderr
        yield source, target


_names = itertools.count(1)


def sql(server, statement: str, dbname: str) -> str:
    proc = server.psql(statement, password=PASSWORD, dbname=dbname)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""


@pytest.fixture
def pair(servers, monkeypatch):
    """(source URL, target URL, source server, target server, source db, target db): a fresh copy of the
    dataset and an empty target database; passwords in the environment variables the tool reads."""
    source, target = servers
    number = next(_names)
    source_db, target_db = f"source{number}", f"target{number}"
    source.admin(f"CREATE DATABASE {source_db} TEMPLATE mixed")
    target.admin(f"CREATE DATABASE {target_db}")
    monkeypatch.setenv("PHASEKIT_SOURCE_PASSWORD", PASSWORD)
    monkeypatch.setenv("PHASEKIT_TARGET_PASSWORD", PASSWORD)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setattr(freeze_module, "GRACE_SECONDS", 0.5)
    return (f"postgresql://postgres@127.0.0.1:{source.port}/{source_db}",
            f"postgresql://postgres@127.0.0.1:{target.port}/{target_db}", source, target, source_db, target_db)


def frozen(url: str) -> bool:
    source = endpoint("source", url)
    with session(source) as db_session:
        return is_frozen(db_session, source)


def test_the_mixed_dataset_migrates_with_zero_differences_through_the_cli(pair, capsys):
    source_url, target_url, source, target, source_db, target_db = pair
    assert main(["db", "migrate", "--source", source_url, "--target", target_url]) == 0
    out = capsys.readouterr().out
    assert "verify: compared 1 table, 1 partitioned table, 2 partitions, 1 materialized view, 1 view, 3 sequences, " \
           "3 extensions, 4 large objects, 1 enum; 503 rows on the source\nverify: no differences\n" in out
    assert re.search(r"^freeze window: \S+Z -> \S+Z \(\d+\.\d s\)$", out, re.MULTILINE), out
    assert f"  phasekit db unfreeze --source {source_url}\n" in out
    # Independent of the tool's own checksums: the rows as psql prints them are the same on both sides.
    for query in ("SELECT * FROM items ORDER BY id", "SELECT * FROM events ORDER BY id",
                  "SELECT * FROM items_by_mood ORDER BY feeling",
                  "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid",
                  "SELECT last_value, is_called FROM invoice_numbers",
                  "SELECT pgp_sym_decrypt(secret, 'key') FROM items WHERE id = 7",
                  "SELECT count(*) FROM items WHERE email = 'USER7@example.COM'"):
        assert sql(source, query, source_db) == sql(target, query, target_db), query
    assert sql(target, "SELECT count(*) FROM items", target_db) == "300"
    # The source stays frozen after success: the app moves to the target.
    assert frozen(source_url)
    refused = source.psql("INSERT INTO items (doc) VALUES ('{}')", password=PASSWORD, dbname=source_db)
    assert refused.returncode != 0 and READ_ONLY_INSERT in refused.stderr
    # The rollback path.
    assert main(["db", "unfreeze", "--source", source_url]) == 0
    assert capsys.readouterr().out == (
        f"unfreeze: source 127.0.0.1:{source.port}/{source_db} was read-only; ran ALTER DATABASE "
        f'"{source_db}" RESET default_transaction_read_only: new sessions accept writes (open sessions stay '
        "read-only until they reconnect)\n")
    assert sql(source, "INSERT INTO items (doc) VALUES ('{}') RETURNING id", source_db) == "301"


def test_writes_during_the_freeze_are_refused_not_lost(pair, monkeypatch):
    source_url, target_url, source, target, source_db, target_db = pair
    # A writer inside an open transaction when the freeze begins: its session is ended, its transaction rolls
    # back, and it is told so. Nothing it was told succeeded goes missing.
    early = subprocess.Popen(
        [str(source.bin_dir / "psql"), "-X", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
         "-p", str(source.port), "-U", "postgres", "-d", source_db, "-c",
         "BEGIN; INSERT INTO items (doc) VALUES ('{\"writer\": \"early\"}'); SELECT pg_sleep(60); COMMIT;"],
        env={"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    wait_for(lambda: sql(source, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND backend_xid IS NOT NULL", source_db) == "1")
    attempts = []
    real_copy = migrate_module.copy_database

    def copy_while_a_new_session_writes(db_session, *args, **kwargs):
        attempts.append(source.psql("INSERT INTO items (doc) VALUES ('{\"writer\": \"during\"}')",
                                    password=PASSWORD, dbname=source_db))
        real_copy(db_session, *args, **kwargs)

    monkeypatch.setattr(migrate_module, "copy_database", copy_while_a_new_session_writes)
    out = io.StringIO()
    report = migrate_database(source_url, target_url, out=out)
    assert report.ok, out.getvalue()
    assert f"freeze: source 127.0.0.1:{source.port}/{source_db} read-only since " in out.getvalue()
    assert "; 1 other session(s) ended; WAL at " in out.getvalue()
    [during] = attempts
    assert during.returncode != 0 and f"ERROR:  {READ_ONLY_INSERT}" in during.stderr
    _, early_error = early.communicate(timeout=30)
    assert early.returncode != 0 and "terminating connection due to administrator command" in early_error
    for server, dbname in ((source, source_db), (target, target_db)):
        assert sql(server, "SELECT count(*) FROM items WHERE doc ? 'writer'", dbname) == "0"
    assert report.freeze_seconds is not None and report.freeze_seconds > 0
    assert report.source_frozen and frozen(source_url)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


TAMPERS = {
    "row": ("UPDATE items SET price = price + 1 WHERE id = 42",
            "table public.items: 300 rows on both sides, different content"),
    "row count": ("DELETE FROM events WHERE at = date '2025-10-02'",
                  "partition public.events_2025 of public.events: 91 rows on the source, 90 on the target"),
    "sequence": ("SELECT setval('invoice_numbers', 5000)",
                 "sequence public.invoice_numbers: last_value 1004 is_called true on the source, last_value 5000 "
                 "is_called true on the target"),
    "large object": ("SELECT lo_put(photo, 0, '\\x00') FROM items WHERE id = 2", None),
    "enum": ("ALTER TYPE mood ADD VALUE 'ecstatic'",
             "enum public.mood: (sad, ok, happy) on the source, (sad, ok, happy, ecstatic) on the target"),
    "view": ("CREATE OR REPLACE VIEW happy_items AS SELECT id, email FROM items WHERE feeling = 'ok'",
             "view public.happy_items: definition differs"),
    "materialized view": ("INSERT INTO items (doc) VALUES ('{}'); REFRESH MATERIALIZED VIEW items_by_mood",
                          "table public.items: 300 rows on the source, 301 on the target\n"
                          "  materialized view public.items_by_mood: 3 rows on the source, 4 on the target\n"
                          "  sequence public.items_id_seq: last_value 300 is_called true on the source, last_value 301 "
                          "is_called true on the target"),
}


@pytest.mark.parametrize("tamper", TAMPERS)
def test_a_tampered_target_is_a_difference_and_exit_1(pair, capsys, tamper):
    source_url, target_url, source, target, source_db, target_db = pair
    assert migrate_database(source_url, target_url, freeze=False, out=io.StringIO()).ok
    statement, expected = TAMPERS[tamper]
    sql(target, statement, target_db)
    assert main(["db", "verify", "--source", source_url, "--target", target_url]) == 1
    out = capsys.readouterr().out
    if tamper == "large object":
        oid = sql(target, "SELECT photo FROM items WHERE id = 2", target_db)
        before = sql(source, f"SELECT md5(lo_get({oid}))", source_db)
        after = sql(target, f"SELECT md5(lo_get({oid}))", target_db)
        expected = f"large object {oid}: md5 {before} on the source, md5 {after} on the target"
    count = "3 differences" if tamper == "materialized view" else "1 difference"
    assert out.endswith(f"verify: {count}:\n  {expected}\n"), out


def test_a_non_empty_target_is_refused_unless_allowed(pair, capsys):
    source_url, target_url, source, target, source_db, target_db = pair
    sql(target, "CREATE TABLE items (id int); CREATE EXTENSION citext; SELECT lo_from_bytea(7777, '\\x01'); "
                "CREATE SEQUENCE leftover", target_db)
    assert main(["db", "migrate", "--source", source_url, "--target", target_url]) == 1
    assert capsys.readouterr() == ("", (
        f"error: target 127.0.0.1:{target.port}/{target_db} is not empty (extension citext, large object 7777, "
        "sequence public.leftover and 1 more); migrate into an empty database, or pass --allow-non-empty to have "
        "pg_restore drop and replace the objects the dump holds\n"))
    assert not frozen(source_url)  # refused before the freeze
    sql(target, "DROP SEQUENCE leftover; SELECT lo_unlink(7777)", target_db)
    assert main(["db", "migrate", "--source", source_url, "--target", target_url, "--allow-non-empty"]) == 0
    assert "verify: no differences\n" in capsys.readouterr().out


def test_a_failed_copy_lifts_the_freeze(pair, monkeypatch):
    source_url, target_url, source, target, source_db, target_db = pair

    def failing_copy(*_args, **_kwargs):
        raise DatabaseError("pg_restore (target) failed: simulated")

    monkeypatch.setattr(migrate_module, "copy_database", failing_copy)
    out = io.StringIO()
    with pytest.raises(DatabaseError, match="simulated"):
        migrate_database(source_url, target_url, out=out)
    assert out.getvalue().endswith(f"freeze: lifted, the copy failed: source 127.0.0.1:{source.port}/{source_db} "
                                   "accepts writes again\n")
    assert not frozen(source_url)
    sql(source, "INSERT INTO items (doc) VALUES ('{}')", source_db)


def test_differences_after_the_copy_leave_the_source_frozen(pair, monkeypatch):
    source_url, target_url, source, target, source_db, target_db = pair
    real_copy = migrate_module.copy_database

    def copy_then_someone_writes_the_target(*args, **kwargs):
        real_copy(*args, **kwargs)
        sql(target, "DELETE FROM items WHERE id = 1", target_db)

    monkeypatch.setattr(migrate_module, "copy_database", copy_then_someone_writes_the_target)
    out = io.StringIO()
    report = migrate_database(source_url, target_url, out=out)
    assert not report.ok
    assert report.differences == ("table public.items: 300 rows on the source, 299 on the target",)
    assert report.source_frozen and frozen(source_url)
    assert "migrate: FAILED, 1 difference(s)\nthe source stays read-only (a difference means a side changed " \
           "outside this tool or the copy is wrong; settle it first). To accept writes on the source again:\n" \
           in out.getvalue()


WRAPPER = """#!/bin/sh
{{ printf 'argv:'; printf ' %s' "$0" "$@"; printf '\\n'
  printf 'pgpassword:%s\\n' "${{PGPASSWORD-unset}}"
  printf 'passfile:%s mode %s\\n' "$PGPASSFILE" "$(stat -c %a "$PGPASSFILE")"; }} >> {log}
exec {real} "$@"
"""


def test_no_password_reaches_a_command_line_or_outlives_the_run(pair, tmp_path, monkeypatch):
    source_url, target_url, *_ = pair
    log = tmp_path / "calls.log"
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    for name in ("psql", "pg_dump", "pg_restore"):
        wrapper = wrappers / name
        wrapper.write_text(WRAPPER.format(log=log, real=f"/usr/bin/{name}"))
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrappers}:/usr/bin:/bin")
    monkeypatch.setenv("PGPASSWORD", "a-stray-password-the-children-must-not-see")
    assert migrate_database(source_url, target_url, out=io.StringIO()).ok
    calls = log.read_text()
    for name in ("psql", "pg_dump", "pg_restore"):
        assert f"argv: {wrappers / name} " in calls
    assert PASSWORD not in calls and "s3cret" not in calls
    assert set(re.findall(r"^pgpassword:(.*)$", calls, re.MULTILINE)) == {"unset"}
    passfiles = set(re.findall(r"^passfile:(\S+) mode (\d+)$", calls, re.MULTILINE))
    assert len(passfiles) == 1 and next(iter(passfiles))[1] == "600"
    assert not Path(next(iter(passfiles))[0]).exists()


def test_a_url_with_a_password_is_refused_before_anything_runs(pair, capsys):
    source_url, target_url, source, *_ = pair
    with_password = source_url.replace("postgres@", "postgres:hunter2@")
    assert main(["db", "migrate", "--source", with_password, "--target", target_url]) == 1
    assert capsys.readouterr() == ("", (
        "error: --source: the URL holds a password, which would show in the process list and the shell history; "
        "remove it and put the password in PHASEKIT_SOURCE_PASSWORD or in your PGPASSFILE (~/.pgpass)\n"))


# --- Redis ----------------------------------------------------------------------------------------------------


@pytest.fixture
def redis_pair():
    with running_redis("save \"\"\nappendonly no\n") as source, running_redis("save \"\"\nappendonly no\n") as target:
        yield source, target


def fill_redis(server) -> None:
    server.cli("SET", "session:1", "alice", "EX", "3600")
    server.cli("HSET", "user:1", "name", "alice", "plan", "pro")
    server.cli("RPUSH", "queue", "a", "b", "c")
    server.cli("SADD", "tags", "x", "y")
    server.cli("ZADD", "scores", "1", "a", "2.5", "b")
    server.cli("SET", "counter", "41")


def test_redis_keys_are_copied_with_their_ttls_and_compared(pair, redis_pair):
    source_url, target_url, *_ = pair
    redis_source, redis_target = redis_pair
    fill_redis(redis_source)
    out = io.StringIO()
    report = migrate_database(source_url, target_url, freeze=False, out=out,
                              redis_source=f"redis://127.0.0.1:{redis_source.port}/0",
                              redis_target=f"redis://127.0.0.1:{redis_target.port}/0")
    assert report.ok, out.getvalue()
    assert "redis: copied 6 keys; no differences\n" in out.getvalue()
    assert redis_target.cli("HGET", "user:1", "plan") == "pro"
    assert redis_target.cli("LRANGE", "queue", "0", "-1") == "a\nb\nc"
    assert 3500 < int(redis_target.cli("TTL", "session:1")) <= 3600
    assert redis_target.cli("TTL", "counter") == "-1"


def test_a_non_empty_redis_target_is_refused_and_a_changed_key_is_a_difference(pair, redis_pair, capsys):
    source_url, target_url, *_ = pair
    redis_source, redis_target = redis_pair
    fill_redis(redis_source)
    redis_target.cli("SET", "stale", "1")
    redis_args = ["--redis-source", f"redis://127.0.0.1:{redis_source.port}/0",
                  "--redis-target", f"redis://127.0.0.1:{redis_target.port}/0"]
    assert main(["db", "migrate", "--source", source_url, "--target", target_url, *redis_args]) == 1
    assert capsys.readouterr().err == (
        f"error: redis target 127.0.0.1:{redis_target.port}/0 is not empty (1 keys); copy into an empty Redis "
        "database, or pass --allow-non-empty to replace keys of the same name\n")
    from phasekit.db.redis_copy import compare_redis, redis_endpoint

    redis_target.cli("DEL", "stale")
    report = migrate_database(source_url, target_url, freeze=False, out=io.StringIO(),
                              redis_source=redis_args[1], redis_target=redis_args[3])
    assert report.ok
    redis_target.cli("SET", "counter", "42")
    redis_target.cli("SET", "extra", "1")
    differences = compare_redis(redis_endpoint("source", redis_args[1]).client(),
                                redis_endpoint("target", redis_args[3]).client())
    assert differences == ("redis: 6 keys on the source, 7 on the target", "redis key 'counter': different value")


def test_a_real_pg_restore_failure_lifts_the_freeze_and_says_why(pair):
    source_url, target_url, source, target, source_db, target_db = pair
    # --clean drops items before recreating it; a view of the target's own that depends on it blocks the drop.
    sql(target, "CREATE TABLE items (id int); CREATE VIEW blocker AS SELECT id FROM items", target_db)
    out = io.StringIO()
    with pytest.raises(DatabaseError) as failed:
        migrate_database(source_url, target_url, allow_non_empty=True, out=out)
    assert str(failed.value).startswith(f"pg_restore (target 127.0.0.1:{target.port}/{target_db}) failed: ")
    assert "cannot drop table public.items because other objects depend on it" in str(failed.value)
    assert out.getvalue().endswith(f"freeze: lifted, the copy failed: source 127.0.0.1:{source.port}/{source_db} "
                                   "accepts writes again\n")
    assert not frozen(source_url)


def test_a_writer_that_overrides_the_freeze_is_caught_by_the_verification(pair, monkeypatch):
    source_url, target_url, source, target, source_db, target_db = pair
    real_copy = migrate_module.copy_database

    def copy_while_a_writer_overrides_the_read_only_default(*args, **kwargs):
        real_copy(*args, **kwargs)
        sql(source, "BEGIN READ WRITE; INSERT INTO items (doc) VALUES ('{\"writer\": \"rogue\"}'); COMMIT", source_db)

    monkeypatch.setattr(migrate_module, "copy_database", copy_while_a_writer_overrides_the_read_only_default)
    report = migrate_database(source_url, target_url, out=io.StringIO())
    assert report.differences == (
        "table public.items: 301 rows on the source, 300 on the target",
        "sequence public.items_id_seq: last_value 301 is_called true on the source, last_value 300 is_called true "
        "on the target")
    assert report.source_frozen and frozen(source_url)
