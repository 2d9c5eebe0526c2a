"""The app role's SQL and the Job's in-pod commands, run for real: Debian's PostgreSQL on loopback
(tests/realtools.py), Perl with JSON::PP and psql as the PostgreSQL image runs them.

The "master" here is what RDS gives: a non-superuser with CREATEROLE and CREATEDB that owns the database, not a
superuser, so statements only a superuser may run would fail here as they would on RDS.

What this cannot prove: the AWS CLI init container (IRSA and Secrets Manager are not reachable offline), RDS's
``rds_superuser`` specifics, or the behaviour of a PostgreSQL major other than the installed one (the role
membership rules for ``CREATE SCHEMA ... AUTHORIZATION`` changed in 16: a CREATEROLE user then needs the explicit
``GRANT role TO CURRENT_USER`` the script makes). A real ``pulumi up`` shows those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.database_role import (
    CREDENTIALS_FILE,
    PASSWORD_ENV,
    SQL_DIR,
    SQL_FILE_NAME,
    app_role_sql,
    check_role_name,
    connection_environment,
    fetch_master_secret_command,
    master_credentials_json,
    master_secret_reader_policy,
    role_job_name,
    run_sql_command,
)
from tests.realtools import PostgresServer, running_postgres

MASTER, MASTER_PASSWORD = "app", 'm@ster:pa"ss\\word/with json escapes'
ROLE, DATABASE = "app_user", "appdb"
SCRAM_HBA = "host all all 127.0.0.1/32 scram-sha-256\n"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-abcdef"


@pytest.fixture(scope="module")
def server():
    with running_postgres("password_encryption = 'scram-sha-256'\n", SCRAM_HBA) as pg:
        pg.admin(f"CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB PASSWORD '{MASTER_PASSWORD}'")
        pg.admin(f"CREATE DATABASE {DATABASE} OWNER {MASTER}")
        yield pg


def run_role_job(pg: PostgresServer, app_password: str | None, *, sql: str | None = None,
                 credentials_json: str | None = None, undeletable: bool = False) -> subprocess.CompletedProcess[str]:
    """The main container's exact command, with the credentials file and the script at temporary paths. The file
    holds what RDS writes into its secret unless ``credentials_json`` (what the Kubernetes Secret holds);
    ``undeletable`` makes it undeletable, as a read-only Secret volume's is (``chattr +i`` as root, a read-only
    folder otherwise)."""
    workdir = pg.tmpdir / "job"
    workdir.mkdir(exist_ok=True)
    credentials, script = workdir / "master.json", workdir / SQL_FILE_NAME
    credentials.write_text(credentials_json if credentials_json is not None
                           else json.dumps({"username": MASTER, "password": MASTER_PASSWORD}))
    script.write_text(sql if sql is not None else app_role_sql(ROLE, DATABASE, connection_limit=20))
    # Root deletes from any folder, so only an immutable file stops it; anyone else, a read-only folder.
    as_root = os.geteuid() == 0
    if undeletable and not as_root:
        workdir.chmod(0o555)
    elif undeletable and (shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(credentials)], capture_output=True, check=False).returncode):
        credentials.unlink()
        pytest.skip("chattr +i is not available here (needs a filesystem with inode flags)")
    argv = [str(credentials) if arg == CREDENTIALS_FILE else str(script) if arg == f"{SQL_DIR}/{SQL_FILE_NAME}"
            else arg for arg in run_sql_command()]
    env = {**connection_environment(pg.port, DATABASE), "PGHOST": pg.host, "HOME": str(workdir),
           # The throwaway server has no certificate; on RDS the Job keeps PGSSLMODE=require.
           "PGSSLMODE": "disable", "PGPASSFILE": str(workdir / "no-pgpass"),
           "PATH": f"{pg.bin_dir}:{os.environ['PATH']}"}
    if app_password is not None:
        env[PASSWORD_ENV] = app_password
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    if undeletable:
        if as_root:
            subprocess.run(["chattr", "-i", str(credentials)], check=True)
        else:
            workdir.chmod(0o755)
        assert credentials.exists()
        credentials.unlink()
    assert not credentials.exists(), "the master credentials file must be deleted once read"
    return proc


def as_app(pg: PostgresServer, sql: str, password: str = "first-Password-1") -> subprocess.CompletedProcess[str]:
    return pg.psql(sql, user=ROLE, password=password, dbname=DATABASE)


def test_script_creates_a_role_that_logs_in_and_owns_its_schema(server):
    first = run_role_job(server, "first-Password-1")
    assert first.returncode == 0, first.stderr
    again = run_role_job(server, "first-Password-1")  # idempotent: a second run changes nothing and succeeds
    assert again.returncode == 0, again.stderr

    who = as_app(server, "SELECT current_user || ' ' || current_schema()")
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == f"{ROLE} {ROLE}"
    made = as_app(server, "CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY); "
                          "INSERT INTO orders VALUES (1) ON CONFLICT DO NOTHING; SELECT count(*) FROM orders")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines()[-1] == "1"
    owner = server.psql("SELECT tableowner || '.' || schemaname FROM pg_tables WHERE tablename = 'orders'",
                        user=MASTER, password=MASTER_PASSWORD, dbname=DATABASE)
    assert owner.stdout.strip() == f"{ROLE}.{ROLE}", owner.stderr
    attributes = server.admin(
        "SELECT concat_ws(',', rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, "
        f"rolconnlimit) FROM pg_roles WHERE rolname = '{ROLE}'")
    assert attributes == "f,f,f,f,f,t,20"


@pytest.mark.parametrize(("sql", "refusal"), [
    ("CREATE ROLE intruder", "permission denied to create role"),
    ("CREATE DATABASE other", "permission denied to create database"),
    ("SELECT rolpassword FROM pg_authid", "permission denied for table pg_authid"),
    ("CREATE TABLE public.sneaky (id int)", "permission denied for schema public"),
    ("ALTER ROLE app_user SUPERUSER", "must be superuser to alter superuser roles"),
])
def test_app_role_is_refused_what_it_must_not_do(server, sql, refusal):
    assert run_role_job(server, "first-Password-1").returncode == 0
    proc = as_app(server, sql)
    assert proc.returncode != 0
    assert refusal in proc.stderr


def test_a_new_password_rotates_it(server):
    assert run_role_job(server, "first-Password-1").returncode == 0
    rotated = run_role_job(server, "second-Password-2")
    assert rotated.returncode == 0, rotated.stderr
    assert as_app(server, "SELECT 1", password="second-Password-2").returncode == 0
    old = as_app(server, "SELECT 1", password="first-Password-1")
    assert "password authentication failed" in old.stderr
    assert run_role_job(server, "first-Password-1").returncode == 0


def test_the_kubernetes_secrets_credentials_create_the_role_as_rds_secrets_do(server):
    """Without Secrets Manager (read replicas) the Job reads ``master_credentials_json`` from a Kubernetes Secret:
    the same command parses it, a password full of JSON escapes included."""
    password = "k8s-Password-2"
    proc = run_role_job(server, password, credentials_json=master_credentials_json(MASTER, MASTER_PASSWORD),
                        undeletable=True)
    # The Secret volume is read-only: the file cannot be deleted, and the Job runs on regardless.
    assert proc.returncode == 0, proc.stderr
    assert as_app(server, "SELECT current_user", password=password).stdout.strip() == ROLE


def test_master_credentials_json_is_the_shape_rds_writes():
    assert json.loads(master_credentials_json(MASTER, MASTER_PASSWORD)) == {
        "username": "app", "password": 'm@ster:pa"ss\\word/with json escapes'}
    assert master_credentials_json("app", "pw") == '{"username": "app", "password": "pw"}'


def test_missing_password_fails_the_job_without_touching_the_role(server):
    proc = run_role_job(server, None)
    assert proc.returncode == 3  # psql's exit status for an error in a script under ON_ERROR_STOP
    assert f"{PASSWORD_ENV} is not set" in proc.stderr


def test_commands_are_fixed_strings_without_a_secret():
    """Both commands take no argument: credentials reach psql only through its environment (set by Perl from
    the file) and the app password only through the pod's env."""
    assert run_sql_command()[:2] == ["perl", "-e"]
    assert run_sql_command()[3:] == ["/run/database-master/master.json", "/etc/database-role/app-role.sql"]
    assert "$ENV{PGPASSWORD} = $secret->{password}" in run_sql_command()[2]
    assert "unlink($file)" in run_sql_command()[2]
    assert fetch_master_secret_command() == [
        "sh", "-ec", "umask 077; aws secretsmanager get-secret-value --secret-id \"$MASTER_SECRET_ARN\" "
        "--query SecretString --output text > /run/database-master/master.json"]


def test_sql_is_exact():
    assert app_role_sql("app_user", "app", 40) == Path(__file__).with_name("fixtures").joinpath(
        "app_role.sql").read_text()


@pytest.mark.parametrize(("role", "master", "message"), [
    ("App", None, "app role name: 'App'; allowed: 1-63 lowercase letters, digits and underscores, starting with a "
                  "letter, not pg_*, public, postgres, rdsadmin or rds_superuser"),
    ("pg_app", None, "app role name: 'pg_app'; allowed: 1-63 lowercase letters, digits and underscores, starting "
                     "with a letter, not pg_*, public, postgres, rdsadmin or rds_superuser"),
    ("rdsadmin", None, "app role name: 'rdsadmin'; allowed: 1-63 lowercase letters, digits and underscores, "
                       "starting with a letter, not pg_*, public, postgres, rdsadmin or rds_superuser"),
    ("a" * 64, None, f"app role name: {'a' * 64!r}; allowed: 1-63 lowercase letters, digits and underscores, "
                     "starting with a letter, not pg_*, public, postgres, rdsadmin or rds_superuser"),
    ("app", "App", "app role name: 'app' is the master user's name; the app needs a role of its own"),
])
def test_bad_role_names(role, master, message):
    with pytest.raises(ValueError) as raised:
        check_role_name(role, master)
    assert str(raised.value) == message


def test_reader_policy_is_exactly_one_secret_and_kms_only_for_a_customer_key():
    assert json.loads(master_secret_reader_policy(SECRET_ARN)) == {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET_ARN}]}
    key = "arn:aws:kms:eu-west-1:123456789012:key/1111"
    assert json.loads(master_secret_reader_policy(SECRET_ARN, key))["Statement"][1] == {
        "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key,
        "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}}


def test_job_name_changes_with_its_inputs_only():
    payload = {"sql": "x", "password": "h1"}
    assert role_job_name("web", payload) == role_job_name("web", dict(payload))
    assert role_job_name("web", payload) != role_job_name("web", {**payload, "password": "h2"})
    assert len(role_job_name("a" * 40, payload)) <= 63
