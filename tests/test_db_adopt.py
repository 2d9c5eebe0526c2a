"""``phasekit db migrate --target-role`` and ``phasekit db adopt`` against real PostgreSQL servers (Debian's).

The target is set up exactly as phase 3 sets up RDS: a master user that is not a superuser (CREATEROLE,
CREATEDB, owner of the database) runs the real ``components.database_role.app_role_sql`` through psql, and the
app role then creates an empty table in its schema, as the release Job would. The source keeps the droplets'
layout: the mixed dataset in schema public, owned by a role ``app`` that does not exist on the target.

What this cannot prove: RDS's own ``rds_superuser`` quirks (a non-superuser master with the same privileges
stands in for it).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from components.database_role import PASSWORD_ENV, app_role_sql
from phasekit.cli import main
from phasekit.db import adopt as adopt_module
from phasekit.db import freeze as freeze_module
from phasekit.db.adopt import replaced_name
from phasekit.db.verify import content_sql
from tests.realtools import PostgresServer, running_postgres
from tests.test_db_migrate import MIXED_DATASET, POSTGRESQL_CONF, SCRAM_HBA

PASSWORD = "s3cret-Pass:word\\with-escapes"
MASTER, MASTER_PASSWORD = "master", "m@ster:pa\"ss\\word"
APP, APP_PASSWORD = "app", "droplet-app-Password-1"
ROLE, ROLE_PASSWORD = "app_user", "first-Password-1"
MIGRATED_TABLES = ("items", "events", "events_2025", "events_2026", "items_by_mood", "happy_items")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def servers():
    with running_postgres(POSTGRESQL_CONF, SCRAM_HBA) as source, running_postgres(POSTGRESQL_CONF, SCRAM_HBA) as target:
        source.admin(f"ALTER ROLE postgres PASSWORD {_quoted(PASSWORD)}")
        source.admin(f"CREATE ROLE {APP} LOGIN PASSWORD {_quoted(APP_PASSWORD)}")
        source.admin(f"CREATE DATABASE mixed OWNER {APP}")
        loaded = source.psql(MIXED_DATASET, user=APP, password=APP_PASSWORD, dbname="mixed")
        assert loaded.returncode == 0, loaded.stderr
        target.admin(f"CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB PASSWORD {_quoted(MASTER_PASSWORD)}")
        yield source, target


_numbers = itertools.count(1)


def phase3_database(target: PostgresServer, dbname: str) -> None:
    """A database owned by the master, the app role made by the real ``app_role_sql`` run through psql as the
    master (as the database-role Job does), and the release Job's empty table in the role's schema."""
    target.admin(f"CREATE DATABASE {dbname} OWNER {MASTER}")
    proc = run_role_sql(target, dbname)
    assert proc.returncode == 0, proc.stderr
    release = as_role(target, dbname, "CREATE TABLE orders (id int PRIMARY KEY)")
    assert release.returncode == 0, release.stderr


def run_role_sql(target: PostgresServer, dbname: str) -> subprocess.CompletedProcess[str]:
    """The database-role Job's script, as the master, through psql."""
    script = target.tmpdir / f"{dbname}-role.sql"
    script.write_text(app_role_sql(ROLE, dbname, connection_limit=20))
    env = {"PATH": os.environ["PATH"], "HOME": str(target.tmpdir), "PGHOST": target.host, "PGPORT": str(target.port),
           "PGDATABASE": dbname, "PGUSER": MASTER, "PGPASSWORD": MASTER_PASSWORD, PASSWORD_ENV: ROLE_PASSWORD,
           "PGPASSFILE": str(target.tmpdir / "no-pgpass")}
    return subprocess.run([str(target.bin_dir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def as_role(target: PostgresServer, dbname: str, sql: str) -> subprocess.CompletedProcess[str]:
    return target.psql(sql, user=ROLE, password=ROLE_PASSWORD, dbname=dbname)


def as_master(target: PostgresServer, dbname: str, sql: str) -> str:
    proc = target.psql(sql, user=MASTER, password=MASTER_PASSWORD, dbname=dbname)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture
def pair(servers, monkeypatch):
    """(source URL, target URL as the master, source server, target server, source db, target db)."""
    source, target = servers
    number = next(_numbers)
    source_db, target_db = f"source{number}", f"app{number}"
    source.admin(f"CREATE DATABASE {source_db} TEMPLATE mixed OWNER {APP}")
    phase3_database(target, target_db)
    monkeypatch.setenv("PHASEKIT_SOURCE_PASSWORD", PASSWORD)
    monkeypatch.setenv("PHASEKIT_TARGET_PASSWORD", MASTER_PASSWORD)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setattr(freeze_module, "GRACE_SECONDS", 0.5)
    return (f"postgresql://postgres@127.0.0.1:{source.port}/{source_db}",
            f"postgresql://{MASTER}@127.0.0.1:{target.port}/{target_db}", source, target, source_db, target_db)


def checksums(server: PostgresServer, dbname: str, schema: str, user: str, password: str) -> list[str]:
    """Every migrated table's rows and content checksum (verify.py's), the sequences and the large objects."""
    queries = [content_sql(f"{schema}.{table}") for table in MIGRATED_TABLES if table != "happy_items"]
    queries += [f"SELECT last_value || ' ' || is_called FROM {schema}.invoice_numbers",
                f"SELECT last_value || ' ' || is_called FROM {schema}.items_id_seq",
                "SELECT string_agg(oid || ':' || md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata"]
    results = []
    for query in queries:
        proc = server.psql(query, user=user, password=password, dbname=dbname)
        assert proc.returncode == 0, proc.stderr
        results.append(proc.stdout.strip())
    return results


def test_migrate_with_target_role_gives_the_app_role_every_row(pair, capsys):
    """The runbook's order: a rehearsal (no freeze, no adopt), then the real run over it."""
    source_url, target_url, source, target, source_db, target_db = pair
    migrate = ["db", "migrate", "--source", source_url, "--target", target_url, "--target-role", ROLE,
               "--allow-non-empty"]
    assert main([*migrate, "--no-freeze"]) == 0
    assert (f"adopt: not in a rehearsal (--no-freeze): the copy stays in public for the real run to replace; "
            f"{ROLE}'s schema is unchanged\n") in capsys.readouterr().out
    assert main(migrate) == 0
    out = capsys.readouterr().out
    assert "verify: compared 1 table, 1 partitioned table, 2 partitions, 1 materialized view, 1 view, 3 sequences, " \
           "3 extensions, 4 large objects, 1 enum; 503 rows on the source\nverify: no differences\n" in out
    stamp = re.search(r'its earlier schema is kept as "(app_user_replaced_\d{8}_\d{6})"', out)
    assert stamp, out
    assert (f'adopt: schema public is now "{ROLE}", owned by {ROLE} (9 relations, 1 types, 0 routines, '
            f'4 large objects); its earlier schema is kept as "{stamp[1]}"; a new empty public was created\n') in out
    assert "migrate: ok, the target equals the source\n" in out
    # The adopted copy equals the source, read by the app role itself (public -> app_user).
    assert checksums(target, target_db, ROLE, ROLE, ROLE_PASSWORD) == checksums(
        source, source_db, "public", "postgres", PASSWORD)
    # The app, logged in with its password and its own search_path, reads every table and uses everything.
    for table in MIGRATED_TABLES:
        read = as_role(target, target_db, f"SELECT count(*) FROM {table}")
        assert read.returncode == 0, (table, read.stderr)
    used = as_role(target, target_db, textwrap_sql())
    assert used.returncode == 0, used.stderr
    assert used.stdout.split() == ["301", "INSERT", "0", "1", "row|7", "1", "happy", "1005", str(len("an orphan large object"))]
    # The release Job's schema was renamed, not dropped; public is empty and the app still cannot create there.
    assert as_master(target, target_db, f"SELECT count(*) FROM {stamp[1]}.orders") == "0"
    assert as_master(target, target_db, "SELECT nspowner::regrole || ' ' || count(c.oid) FROM pg_namespace n "
                     "LEFT JOIN pg_class c ON c.relnamespace = n.oid WHERE n.nspname = 'public' "
                     "GROUP BY nspowner") == "pg_database_owner 0"
    assert as_master(target, target_db, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                     f"n.oid = c.relnamespace WHERE n.nspname = '{ROLE}' AND c.relowner <> '{ROLE}'::regrole "
                     "AND c.relkind IN ('r', 'p', 'v', 'm', 'S')") == "0"
    for sql, refusal in (("CREATE ROLE intruder", "permission denied to create role"),
                         ("CREATE TABLE public.sneaky (id int)", "permission denied for schema public")):
        refused = as_role(target, target_db, sql)
        assert refused.returncode != 0 and refusal in refused.stderr, refused.stderr


def textwrap_sql() -> str:
    """A write through the serial sequence, pgcrypto, citext's case-blind compare, the enum, the standalone
    sequence and a large object, each as the app role."""
    return ("INSERT INTO items (doc, feeling) VALUES ('{}', 'ok') RETURNING id; "
            "SELECT 'row|' || split_part(pgp_sym_decrypt(secret, 'key'), ' ', 2) FROM items WHERE id = 7; "
            "SELECT count(*) FROM items WHERE email = 'USER7@example.COM'; "
            "SELECT 'happy'::mood; SELECT nextval('invoice_numbers'); "
            "SELECT length(lo_get(max(oid))) FROM pg_largeobject_metadata")


def test_a_role_that_does_not_exist_is_refused_before_anything_moves(pair, capsys):
    source_url, target_url, source, target, source_db, target_db = pair
    assert main(["db", "migrate", "--source", source_url, "--target", target_url, "--target-role", "nobody",
                 "--allow-non-empty"]) == 1
    assert capsys.readouterr().err == (
        f'error: target 127.0.0.1:{target.port}/{target_db}: role "nobody" does not exist; --target-role names '
        "the app's role, which phase 3's database-role Job creates (deploy the phase-3 stack first)\n")
    assert as_master(target, target_db, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                     ) == "0"


def test_a_target_user_that_cannot_create_in_public_is_refused(pair, capsys, monkeypatch):
    source_url, _, source, target, source_db, target_db = pair
    monkeypatch.setenv("PHASEKIT_TARGET_PASSWORD", ROLE_PASSWORD)
    target_url = f"postgresql://{ROLE}@127.0.0.1:{target.port}/{target_db}"
    assert main(["db", "migrate", "--source", source_url, "--target", target_url, "--target-role", ROLE,
                 "--allow-non-empty"]) == 1
    assert capsys.readouterr().err == (
        f'error: target 127.0.0.1:{target.port}/{target_db}: user "{ROLE}" cannot create in schema public; with '
        "--target-role the target URL names the RDS master user (the database's owner), not the app's role\n")


def test_adopt_alone_changes_no_row_and_hands_over_every_kind_of_object(servers, monkeypatch, capsys):
    """A copy made another way (as the master, in public), then ``phasekit db adopt``: the same checksums
    before and after, read as the master before and as the app role after."""
    _, target = servers
    dbname = f"app{next(_numbers)}"
    phase3_database(target, dbname)
    as_master(target, dbname, "CREATE EXTENSION citext; CREATE TYPE mood AS ENUM ('sad', 'ok'); "
                              "CREATE DOMAIN positive AS int CHECK (VALUE > 0); CREATE TYPE pair AS (a int, b int); "
                              "CREATE SEQUENCE invoice_numbers; CREATE TABLE items (id serial PRIMARY KEY, "
                              "name citext, feeling mood, n positive, p pair); "
                              "INSERT INTO items (name, feeling, n, p) SELECT 'N' || i, 'ok', i, ROW(i, i)::pair "
                              "FROM generate_series(1, 50) i; CREATE VIEW oks AS SELECT * FROM items; "
                              "CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2'; "
                              "CREATE PROCEDURE noop() LANGUAGE sql AS 'SELECT 1'; "
                              "SELECT lo_from_bytea(0, 'abc'); SELECT nextval('invoice_numbers')")
    before = [as_master(target, dbname, content_sql("public.items")),
              as_master(target, dbname, "SELECT last_value FROM public.invoice_numbers")]
    monkeypatch.setenv("PHASEKIT_TARGET_PASSWORD", MASTER_PASSWORD)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    assert main(["db", "adopt", "--target", f"postgresql://{MASTER}@127.0.0.1:{target.port}/{dbname}",
                 "--role", ROLE]) == 0
    assert re.fullmatch(rf'adopt: schema public is now "{ROLE}", owned by {ROLE} \(4 relations, 3 types, '
                        rf'2 routines, 1 large objects\); its earlier schema is kept as "{ROLE}_replaced_\d{{8}}_'
                        r'\d{6}"; a new empty public was created\n', capsys.readouterr().out)
    after = as_role(target, dbname, f"{content_sql('items')}; SELECT last_value FROM invoice_numbers; "
                                    "SELECT twice(21); CALL noop(); SELECT count(*) FROM oks WHERE name = 'n7'")
    assert after.returncode == 0, after.stderr
    assert after.stdout.split("\n")[:2] == before
    assert after.stdout.split()[-3:] == ["42", "CALL", "1"]


def test_a_failure_inside_the_adopt_step_leaves_the_target_as_it_was(servers, monkeypatch, capsys):
    """One transaction: an error after every rename and ownership change (forced here) undoes them all."""
    _, target = servers
    dbname = f"app{next(_numbers)}"
    phase3_database(target, dbname)
    as_master(target, dbname, "CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
    original = adopt_module.adopt_sql
    monkeypatch.setattr(adopt_module, "adopt_sql", lambda *args, **kwargs: original(*args, **kwargs).replace(
        "\nEND\n$adopt$", "\n  RAISE EXCEPTION 'forced failure';\nEND\n$adopt$"))
    monkeypatch.setenv("PHASEKIT_TARGET_PASSWORD", MASTER_PASSWORD)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    assert main(["db", "adopt", "--target", f"postgresql://{MASTER}@127.0.0.1:{target.port}/{dbname}",
                 "--role", ROLE]) == 1
    assert "forced failure" in capsys.readouterr().err
    assert as_master(target, dbname, "SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relowner::regrole, "
                     "',' ORDER BY n.nspname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE c.relname IN ('items', 'orders')") == f"{ROLE}.orders:{ROLE},public.items:{MASTER}"


def test_the_replaced_schema_name_is_lowercase_utc_and_fits_63_bytes():
    moment = datetime(2026, 12, 3, 21, 5, 9, tzinfo=timezone(timedelta(hours=2)))
    assert replaced_name("app_user", moment) == "app_user_replaced_20261203_190509"
    long_name = replaced_name("a" * 63, moment)
    assert long_name == "a" * 38 + "_replaced_20261203_190509" and len(long_name) == 63


def test_the_role_job_refuses_to_strand_the_data_of_an_app_that_ran_as_the_master(servers, monkeypatch, capsys):
    """A stack whose app connected as the master user keeps its tables in public. Its first database-role Job
    creates the role and then fails, so the release Job and the rollout (which wait for it) never start the app on
    an empty schema; adopt moves public to the role and the next run passes with every row in the app's sight."""
    _, target = servers
    dbname = f"legacy{next(_numbers)}"
    target.admin(f"CREATE DATABASE {dbname} OWNER {MASTER}")
    as_master(target, dbname, "CREATE EXTENSION citext; CREATE TABLE orders (id int PRIMARY KEY, note citext); "
                              "INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 7) i; "
                              "CREATE TABLE customers (id int)")
    refused = run_role_sql(target, dbname)
    assert refused.returncode == 3, refused.stderr
    assert (f"ERROR:  schema public holds 2 table(s) and schema {ROLE} none: the app connects as {ROLE} and would "
            f"start on empty tables while its data stays in public. Move the data first: phasekit db adopt --target "
            f"<master URL> --role {ROLE} (docs/phase3-operations.md, data tier), then pulumi up again; if public "
            f"holds a phasekit db migrate --no-freeze rehearsal, finish with the real phasekit db migrate "
            f"--target-role {ROLE} instead, which adopts") in refused.stderr
    assert as_role(target, dbname, "SELECT current_user").stdout.strip() == ROLE  # the role is there for adopt
    monkeypatch.setenv("PHASEKIT_TARGET_PASSWORD", MASTER_PASSWORD)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    assert main(["db", "adopt", "--target", f"postgresql://{MASTER}@127.0.0.1:{target.port}/{dbname}",
                 "--role", ROLE]) == 0
    capsys.readouterr()
    passed = run_role_sql(target, dbname)
    assert passed.returncode == 0, passed.stderr
    rows = as_role(target, dbname, "SELECT count(*) FROM orders WHERE note = 'N3'")
    assert (rows.returncode, rows.stdout.strip()) == (0, "1")


def test_an_extensions_own_table_in_public_is_not_app_data(servers):
    """PostGIS-style extensions keep tables of their own in public (``spatial_ref_sys``): a new stack whose
    master created one before the first deploy still passes. A table made a member of an extension stands in
    for PostGIS, which Debian's PostgreSQL does not ship."""
    _, target = servers
    dbname = f"fresh{next(_numbers)}"
    target.admin(f"CREATE DATABASE {dbname} OWNER {MASTER}")
    as_master(target, dbname, "CREATE EXTENSION citext; CREATE TABLE spatial_ref_sys (srid int); "
                              "ALTER EXTENSION citext ADD TABLE spatial_ref_sys")
    proc = run_role_sql(target, dbname)
    assert proc.returncode == 0, proc.stderr
    # The same table as the master's own is app data: refused.
    as_master(target, dbname, "ALTER EXTENSION citext DROP TABLE spatial_ref_sys")
    assert run_role_sql(target, dbname).returncode == 3


def test_tables_in_both_public_and_the_roles_schema_pass(servers):
    """The phase-change runbook's rehearsal (``migrate --no-freeze``) leaves its copy in public beside the release
    Job's tables in the role's schema: a role Job rerun in between must not stop the stack."""
    _, target = servers
    dbname = f"rehearsed{next(_numbers)}"
    phase3_database(target, dbname)  # the role, and the release Job's table in its schema
    as_master(target, dbname, "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")  # the rehearsal's copy
    proc = run_role_sql(target, dbname)
    assert proc.returncode == 0, proc.stderr
