"""``phasekit db restore --logical`` for real: copies made by phase 3's own dump script (components/logical_backup.py
``render_dump_script``: real ``pg_dump | openssl enc``) against Debian's PostgreSQL 15, put into a real S3 API server
(moto behind Caddy's TLS, tests/s3server.py) with boto3 under the names the CronJob's upload gives them, then
restored through the command line exactly as an operator runs it (curl, openssl, pg_restore).

What this cannot prove: R2's own signature checks (moto accepts any signature), pg_restore reading the archive
version pg_dump 17 writes in the pod (here pg_dump 15 writes it), or the CronJob's upload script (its own test,
tests/test_logical_backup_real.py, runs it with the AWS CLI).
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.logical_backup import COPY_SUFFIX, LOGICAL_PREFIX, render_dump_script
from infra.backups import backups_bucket_name
from phasekit.db import logical
from phasekit.db.cli import run
from phasekit.project import project_name
from tests.realtools import PostgresServer, _postgres_bin_dir, running_postgres
from tests.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server, running_s3

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACK = "phase3"
PASSPHRASE = "correct horse battery staple 1234"
OLDER, NEWER = (f"{LOGICAL_PREFIX}{stamp}{COPY_SUFFIX}" for stamp in ("20261201T033000Z", "20261202T033000Z"))
CREDENTIALS = {"PGBACKREST_REPO1_S3_KEY": ACCESS_KEY_ID, "PGBACKREST_REPO1_S3_KEY_SECRET": SECRET_ACCESS_KEY,
               "PGBACKREST_REPO1_CIPHER_PASS": PASSPHRASE}
ROWS_QUERY = "SELECT string_agg(id || ':' || note || ':' || encode(payload, 'hex'), ',' ORDER BY id) FROM items"


def _sql(pg: PostgresServer, database: str, sql: str) -> str:
    proc = pg.psql(sql, dbname=database)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _dump_copy(pg: PostgresServer, work: Path) -> bytes:
    """Phase 3's dump container: its script, libpq's variables, the passphrase; one finished copy in WORK_DIR."""
    work.mkdir()
    env = {"PATH": f"{_postgres_bin_dir()}:/usr/bin:/bin", "HOME": str(work), "WORK_DIR": str(work),
           "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": "source",
           "BACKUP_PASSPHRASE": PASSPHRASE}
    proc = subprocess.run(["bash", "-c", render_dump_script()], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    [copy] = work.glob(f"*{COPY_SUFFIX}")
    return copy.read_bytes()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, S3Server, dict[str, str]]]:
    """One server holding the source and the targets; two copies in the stack's bucket: the older with 3 rows,
    the newer with 5. Yields (server, s3, expected rows by copy key)."""
    tmp = tmp_path_factory.mktemp("logical")
    bucket = backups_bucket_name(project_name(PROJECT_DIR), STACK)
    with running_postgres("") as pg, running_s3(bucket) as s3:
        _sql(pg, "postgres", "CREATE DATABASE source")
        _sql(pg, "source", "CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL, payload bytea NOT NULL); "
                           "INSERT INTO items SELECT n, 'row ' || n, decode(md5(n::text), 'hex') "
                           "FROM generate_series(1, 3) n")
        expected = {OLDER: _sql(pg, "source", ROWS_QUERY)}
        s3.client.put_object(Bucket=bucket, Key=OLDER, Body=_dump_copy(pg, tmp / "older"))
        _sql(pg, "source", "INSERT INTO items SELECT n, 'row ' || n, decode(md5(n::text), 'hex') "
                           "FROM generate_series(4, 5) n")
        expected[NEWER] = _sql(pg, "source", ROWS_QUERY)
        s3.client.put_object(Bucket=bucket, Key=NEWER, Body=_dump_copy(pg, tmp / "newer"))
        # Neither a partial upload nor a stray file under logical/ is ever a candidate.
        s3.client.put_object(Bucket=bucket, Key=f"{LOGICAL_PREFIX}20261203T033000Z.partial", Body=b"partial")
        yield pg, s3, expected


@pytest.fixture
def target(setup, request: pytest.FixtureRequest) -> str:
    """A fresh empty database per test, on the same server."""
    pg = setup[0]
    name = "t_" + request.node.name.split("[")[0][-40:].lower()
    _sql(pg, "postgres", f"DROP DATABASE IF EXISTS {name}")
    _sql(pg, "postgres", f"CREATE DATABASE {name}")
    return name


def _restore(setup, database: str, *extra: str, environ: dict[str, str] | None = None,
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    pg, s3, _ = setup
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    for name, value in (CREDENTIALS if environ is None else environ).items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    status = run(["restore", "--stack", STACK, "--project-dir", str(PROJECT_DIR), "--logical",
                  "--to-url", f"postgresql://postgres@127.0.0.1:{pg.port}/{database}",
                  "--repo-endpoint", f"localhost:{s3.port}", "--repo-ca-file", s3.ca_file, *extra], out)
    return status, out.getvalue()


def _table_count(pg: PostgresServer, database: str) -> str:
    return _sql(pg, database, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public'")


def test_the_newest_copy_is_restored_with_every_row(setup, target, monkeypatch) -> None:
    pg, s3, expected = setup
    status, out = _restore(setup, target, monkeypatch=monkeypatch)
    assert status == 0, out
    assert _sql(pg, target, ROWS_QUERY) == expected[NEWER]
    size = s3.client.head_object(Bucket=s3.bucket, Key=NEWER)["ContentLength"]
    assert f"restore: ok; {NEWER} ({size} bytes) restored into target 127.0.0.1:{pg.port}/{target}" in out


def test_object_picks_an_older_copy(setup, target, monkeypatch) -> None:
    pg, _, expected = setup
    status, out = _restore(setup, target, "--object", OLDER, monkeypatch=monkeypatch)
    assert status == 0, out
    assert _sql(pg, target, ROWS_QUERY) == expected[OLDER]
    assert f"restore: logical copy {OLDER} (" in out


def test_a_wrong_passphrase_restores_nothing(setup, target, monkeypatch, capsys) -> None:
    pg = setup[0]
    status, out = _restore(setup, target, environ={**CREDENTIALS, "PGBACKREST_REPO1_CIPHER_PASS": "not it"},
                           monkeypatch=monkeypatch)
    assert status == 1
    message = capsys.readouterr().err
    assert f"error: {NEWER} does not decrypt with PGBACKREST_REPO1_CIPHER_PASS (openssl: " in message
    assert message.rstrip().endswith("the passphrase is wrong or the copy is damaged; nothing was restored")
    assert _table_count(pg, target) == "0"


def test_a_damaged_copy_restores_nothing(setup, target, monkeypatch, capsys) -> None:
    """Half a copy (what a broken transfer stored): openssl's padding check or pg_restore's single transaction
    stops it; either way the target stays empty."""
    pg, s3, _ = setup
    damaged = f"{LOGICAL_PREFIX}20261130T033000Z{COPY_SUFFIX}"
    whole = s3.client.get_object(Bucket=s3.bucket, Key=NEWER)["Body"].read()
    s3.client.put_object(Bucket=s3.bucket, Key=damaged, Body=whole[:len(whole) // 2])
    try:
        status, _ = _restore(setup, target, "--object", damaged, monkeypatch=monkeypatch)
    finally:
        s3.client.delete_object(Bucket=s3.bucket, Key=damaged)
    assert status == 1
    message = capsys.readouterr().err
    assert message.startswith("error: ") and message.rstrip().endswith("nothing was restored"), message
    assert _table_count(pg, target) == "0"


def test_missing_credentials_are_named(setup, target, monkeypatch, capsys) -> None:
    status, _ = _restore(setup, target, environ={"PGBACKREST_REPO1_CIPHER_PASS": PASSPHRASE},
                         monkeypatch=monkeypatch)
    assert status == 1
    assert capsys.readouterr().err == (
        "error: missing PGBACKREST_REPO1_S3_KEY, PGBACKREST_REPO1_S3_KEY_SECRET in the environment: set "
        "PGBACKREST_REPO1_S3_KEY to the accessKeyId of `pulumi stack output --show-secrets backupCredentials`; "
        "PGBACKREST_REPO1_S3_KEY_SECRET to the secretAccessKey of `pulumi stack output --show-secrets "
        "backupCredentials` (in the project folder, with the stack selected)\n")


def test_a_non_empty_target_is_refused_unless_allowed(setup, target, monkeypatch, capsys) -> None:
    pg, _, expected = setup
    _sql(pg, target, "CREATE TABLE keep_me (id int)")
    status, _ = _restore(setup, target, monkeypatch=monkeypatch)
    assert status == 1
    assert capsys.readouterr().err == (
        f"error: target 127.0.0.1:{pg.port}/{target} is not empty (table public.keep_me); migrate into an empty "
        "database, or pass --allow-non-empty to have pg_restore drop and replace the objects the dump holds\n")
    assert _table_count(pg, target) == "1"
    status, out = _restore(setup, target, "--allow-non-empty", monkeypatch=monkeypatch)
    assert status == 0, out
    assert _sql(pg, target, ROWS_QUERY) == expected[NEWER]


def test_an_unknown_object_is_refused(setup, target, monkeypatch, capsys) -> None:
    status, _ = _restore(setup, target, "--object", "20200101T000000Z.dump.enc", monkeypatch=monkeypatch)
    assert status == 1
    assert capsys.readouterr().err == (
        f"error: --object 20200101T000000Z.dump.enc: no such copy in s3://{setup[1].bucket}/logical/ at localhost "
        f"(2 copies, the newest {NEWER})\n")


def test_the_prefix_is_the_cronjobs() -> None:
    """logical.py spells the prefix itself (to keep the Pulumi SDKs out of the CLI's import); it must agree."""
    assert logical.LOGICAL_PREFIX == LOGICAL_PREFIX
    assert logical.COPY_NAME.fullmatch(OLDER) and not logical.COPY_NAME.fullmatch(f"{LOGICAL_PREFIX}x.partial")


def test_the_curl_config_is_private_and_argv_holds_no_secret(tmp_path) -> None:
    spec = logical.BackupSpec(bucket="b", endpoint="e.example", ca_file="/ca.pem")
    client = logical.S3Client(spec, tmp_path, {"PATH": os.environ["PATH"], **CREDENTIALS})
    argv = client._argv("https://e.example/b")
    assert os.stat(client.config).st_mode & 0o777 == 0o600
    assert not any(SECRET_ACCESS_KEY in arg or ACCESS_KEY_ID in arg or PASSPHRASE in arg for arg in argv)
    assert "PGBACKREST_REPO1_CIPHER_PASS" not in client.environment
    assert argv[argv.index("--aws-sigv4") + 1] == "aws:amz:auto:s3" and argv[argv.index("--cacert") + 1] == "/ca.pem"


@pytest.mark.parametrize(("argv", "message"), [
    (["--logical", "--to-dir", "/nonexistent"], "--logical restores into a database: use --to-url URL, not --to-dir"),
    (["--latest", "--to-dir", "/nonexistent", "--object", OLDER], "--object and --allow-non-empty go with --logical "
                                                                  "only"),
    (["--latest", "--to-dir", "/nonexistent", "--allow-non-empty"], "--object and --allow-non-empty go with "
                                                                    "--logical only"),
], ids=["to-dir", "object-without-logical", "allow-non-empty-without-logical"])
def test_logical_only_options_are_refused_elsewhere(argv, message, capsys) -> None:
    assert run(["restore", "--stack", STACK, "--project-dir", str(PROJECT_DIR), *argv], io.StringIO()) == 1
    assert capsys.readouterr().err == f"error: {message}\n"
