"""Phase 3's logical copy run for real: the CronJob's exact two scripts (components/logical_backup.py) with Debian's
PostgreSQL 15 on loopback (TLS on, ``sslmode=require`` as RDS demands), real ``pg_dump``/``openssl``, and the AWS
CLI uploading to a real S3 API server (moto behind Caddy's TLS, tests/s3server.py). Then the copy is downloaded,
decrypted and restored with ``pg_restore`` into a fresh database, and the rows are read back.

The scripts get exactly the environment the pod gives them: libpq's variables from ``database_environment`` (the
Secret's keys), ``BACKUP_PASSPHRASE``, the AWS keys, ``BACKUP_BUCKET``, ``S3_ENDPOINT_URL``, ``LOGICAL_KEEP``,
``WORK_DIR`` and ``HOME`` (plus ``AWS_CA_BUNDLE``, the test server's own CA). As in the pod, the upload runs only
after the dump succeeded (an init container that fails stops the pod).

What this cannot prove: the images themselves (the pod uses pg_dump 17 from the PostgreSQL image and AWS CLI v2;
here pg_dump 15 and AWS CLI v1 from PyPI run the same command lines; v2 also sends a CRC64NVME checksum header by
default), R2's own behaviour, or that Kubernetes schedules, retries and times the Job out as the spec says.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import pytest

from components.logical_backup import (
    COPY_SUFFIX,
    LOGICAL_PREFIX,
    SCRIPT_FAILURE_MARKER,
    SCRIPT_SUCCESS_MARKER,
    database_environment,
    decrypt_argv,
    render_dump_script,
    render_upload_script,
)
from tests.realtools import PostgresServer, _postgres_bin_dir, running_postgres, self_signed_cert
from tests.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server, running_s3

BUCKET = "phasekit-test-backups"
APP_USER, APP_PASSWORD = "app_user", "s3cret p@ss/word:%"
DATABASE = "appdb"
PASSPHRASE = "correct horse battery staple 1234"
HBA = "local all postgres peer\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
"""The superuser over the private socket (setup, restore); everyone else only over TLS with a password."""
ROWS = 500
CONTENT_QUERY = ("SELECT count(*) || ':' || md5(string_agg(id || '|' || note || '|' || encode(payload, 'hex') || '|' "
                 "|| meta::text, ',' ORDER BY id)) FROM app_user.items")


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: its parent is private to root, and the server runs as the postgres user.
    tls_dir = Path(tempfile.mkdtemp(prefix="logical-backup-tls-"))
    cert, key = self_signed_cert(tls_dir, "localhost")
    if os.geteuid() == 0:
        # The server runs as the postgres OS user and refuses a key others may read.
        for path in (tls_dir, cert, key):
            shutil.chown(path, "postgres", "postgres")
    tls_dir.chmod(0o755)
    key.chmod(0o600)
    conf = (f"password_encryption = 'scram-sha-256'\nssl = on\nssl_cert_file = '{cert}'\n"
            f"ssl_key_file = '{key}'\n")
    with contextlib.ExitStack() as cleanup, running_postgres(conf, HBA) as pg:
        cleanup.callback(shutil.rmtree, tls_dir, ignore_errors=True)
        pg.admin(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
        pg.admin(f"CREATE DATABASE {DATABASE} OWNER {APP_USER}")
        # A database the app role cannot read entirely: a table only its owner may select from.
        pg.admin("CREATE DATABASE locked")
        _sql(pg, "locked", f"GRANT CONNECT ON DATABASE locked TO {APP_USER}; "
                           "CREATE TABLE private_rows (id int); INSERT INTO private_rows VALUES (1);")
        _sql(pg, DATABASE, f"SET ROLE {APP_USER}; CREATE SCHEMA {APP_USER}; "
                           f"CREATE TABLE {APP_USER}.items (id serial PRIMARY KEY, note text NOT NULL, "
                           "payload bytea NOT NULL, meta jsonb NOT NULL); "
                           f"INSERT INTO {APP_USER}.items (note, payload, meta) SELECT 'row ' || n, "
                           "decode(md5(n::text), 'hex'), jsonb_build_object('n', n, 'tags', ARRAY['a', 'b']) "
                           f"FROM generate_series(1, {ROWS}) AS n;")
        yield pg


@pytest.fixture
def s3() -> Iterator[S3Server]:
    if shutil.which("aws", path=str(Path(sys.executable).parent)) is None:
        raise AssertionError("the AWS CLI is not installed in this virtualenv (PyPI awscli, in the test extra); "
                             "run: .venv/bin/pip install -e '.[test]'")
    with running_s3(BUCKET) as server:
        yield server


def _sql(pg: PostgresServer, database: str, sql: str) -> str:
    """Run ``sql`` as the superuser over the server's private socket in ``database``."""
    proc = subprocess.run(
        [*pg._as_postgres, str(pg.bin_dir / "psql"), "-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
         "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", "postgres", "-d", database, "-c", sql],
        capture_output=True, text=True, timeout=60, cwd=pg.tmpdir)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _database_url(pg: PostgresServer, database: str = DATABASE, password: str = APP_PASSWORD) -> str:
    return (f"postgresql://{APP_USER}:{quote(password, safe='')}@127.0.0.1:{pg.port}/{database}"
            "?sslmode=require")


def _pod_environment(work: Path, home: Path, s3: S3Server, database_url: str, keep: int) -> dict[str, str]:
    """What the pod's two containers see between them (each gets only its own part in the pod)."""
    tools = os.pathsep.join([str(_postgres_bin_dir()), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    return {
        "PATH": tools, "LANG": "C.UTF-8", "HOME": str(home), "WORK_DIR": str(work),
        **database_environment(database_url), "BACKUP_PASSPHRASE": PASSPHRASE,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": "auto", "AWS_CA_BUNDLE": s3.ca_file,
        "BACKUP_BUCKET": s3.bucket, "S3_ENDPOINT_URL": s3.endpoint_url, "LOGICAL_KEEP": str(keep),
    }


def _run(argv: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120)


def run_job(tmp_path: Path, s3: S3Server, database_url: str, *, keep: int = 35
            ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str] | None, Path]:
    """The pod: the dump script, then (only if it succeeded, as Kubernetes runs init containers) the upload
    script. Returns both results (the upload's None when it did not run) and the work directory."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = _pod_environment(work, home, s3, database_url, keep)
    dump = _run(["bash", "-c", render_dump_script()], env, tmp_path)
    if dump.returncode != 0:
        return dump, None, work
    return dump, _run(["sh", "-c", render_upload_script()], env, tmp_path), work


def _restore(pg: PostgresServer, encrypted: bytes, tmp_path: Path, target: str) -> None:
    """The documented restore: decrypt with the passphrase, pg_restore into a fresh database."""
    (tmp_path / "copy.dump.enc").write_bytes(encrypted)
    env = {"PATH": f"{_postgres_bin_dir()}:/usr/bin:/bin", "BACKUP_PASSPHRASE": PASSPHRASE, "HOME": str(tmp_path)}
    decrypt = _run(decrypt_argv("copy.dump.enc", "copy.dump"), env, tmp_path)
    assert decrypt.returncode == 0, decrypt.stderr
    pg.admin(f"CREATE DATABASE {target}")
    # As the superuser over the private socket; the archive on stdin (pg_restore reads a custom-format stream).
    restore = subprocess.run(
        [*pg._as_postgres, str(pg.bin_dir / "pg_restore"), "--no-owner", "--exit-on-error",
         "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", "postgres", "-d", target],
        input=(tmp_path / "copy.dump").read_bytes(), capture_output=True, timeout=120, cwd=pg.tmpdir)
    assert restore.returncode == 0, restore.stderr.decode()


def test_copy_is_encrypted_uploaded_and_restores_every_row(server: PostgresServer, s3: S3Server,
                                                           tmp_path: Path) -> None:
    dump, upload, _ = run_job(tmp_path, s3, _database_url(server))
    assert dump.returncode == 0, dump.stderr
    assert upload is not None and upload.returncode == 0, upload.stderr + s3.log()
    [key] = s3.keys(LOGICAL_PREFIX)
    assert key.startswith(LOGICAL_PREFIX) and key.endswith(COPY_SUFFIX)
    assert upload.stdout.strip().endswith(f"{SCRIPT_SUCCESS_MARKER} {key}")
    encrypted = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    # Encrypted: openssl's salted header, never pg_dump's custom-format magic "PGDMP".
    assert encrypted.startswith(b"Salted__") and b"PGDMP" not in encrypted[:64]

    _restore(server, encrypted, tmp_path, "restored")
    assert _sql(server, "restored", CONTENT_QUERY) == _sql(server, DATABASE, CONTENT_QUERY)
    assert _sql(server, "restored", "SELECT count(*) FROM app_user.items") == str(ROWS)


def test_the_wrong_passphrase_does_not_decrypt(server: PostgresServer, s3: S3Server, tmp_path: Path) -> None:
    run_job(tmp_path, s3, _database_url(server))
    [key] = s3.keys(LOGICAL_PREFIX)
    (tmp_path / "copy.enc").write_bytes(s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    decrypt = _run(decrypt_argv("copy.enc", "copy.dump"),
                   {"PATH": "/usr/bin:/bin", "BACKUP_PASSPHRASE": "not the passphrase at all"}, tmp_path)
    assert decrypt.returncode != 0
    assert "bad decrypt" in decrypt.stderr


def test_retention_deletes_only_the_oldest_copies(server: PostgresServer, s3: S3Server, tmp_path: Path) -> None:
    older = [f"{LOGICAL_PREFIX}2020010{day}T033000Z{COPY_SUFFIX}" for day in range(1, 6)]
    unrelated = [f"{LOGICAL_PREFIX}notes.txt", f"{LOGICAL_PREFIX}20200101T033000Z.partial", "redis/x.rdb.enc"]
    for key in [*older, *unrelated]:
        s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"old")
    dump, upload, _ = run_job(tmp_path, s3, _database_url(server), keep=3)
    assert upload is not None and upload.returncode == 0, upload.stderr
    [new] = [key for key in s3.keys(LOGICAL_PREFIX) if key not in older + unrelated]
    # The new copy and the two newest old ones stay; the three oldest go; nothing of another shape is touched.
    assert s3.keys() == sorted([new, *older[3:], *unrelated])
    assert sorted(line.split()[-1] for line in upload.stdout.splitlines() if "deleted" in line) == older[:3]


@pytest.mark.parametrize(("database", "password", "cause"), [
    (DATABASE, "not-the-password", "password authentication failed"),
    ("locked", APP_PASSWORD, "permission denied for table private_rows"),
], ids=["wrong-password", "unreadable-table"])
def test_a_failing_dump_fails_the_job_and_uploads_nothing(server: PostgresServer, s3: S3Server, tmp_path: Path,
                                                          database: str, password: str, cause: str) -> None:
    dump, upload, work = run_job(tmp_path, s3, _database_url(server, database, password))
    assert dump.returncode != 0
    assert cause in dump.stderr and SCRIPT_FAILURE_MARKER in dump.stderr
    assert upload is None
    # Only the partial file is left, never a finished name, and the bucket holds nothing.
    assert not list(work.glob(f"*{COPY_SUFFIX}"))
    assert s3.keys() == []
    # Even if an upload ran over that directory, it refuses: there is no finished copy to send.
    env = _pod_environment(work, tmp_path / "home", s3, _database_url(server), keep=1)
    forced = _run(["sh", "-c", render_upload_script()], env, tmp_path)
    assert forced.returncode != 0 and f"{SCRIPT_FAILURE_MARKER} (upload): expected one finished copy" in forced.stderr
    assert s3.keys() == []


def test_a_failed_upload_fails_the_job_and_deletes_nothing(server: PostgresServer, s3: S3Server,
                                                          tmp_path: Path) -> None:
    old = f"{LOGICAL_PREFIX}20200101T033000Z{COPY_SUFFIX}"
    s3.client.put_object(Bucket=BUCKET, Key=old, Body=b"old")
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {**_pod_environment(work, home, s3, _database_url(server), keep=1), "BACKUP_BUCKET": "no-such-bucket"}
    assert _run(["bash", "-c", render_dump_script()], env, tmp_path).returncode == 0
    upload = _run(["sh", "-c", render_upload_script()], env, tmp_path)
    assert upload.returncode != 0
    assert "NoSuchBucket" in upload.stderr
    assert s3.keys() == [old]


def test_a_short_stored_object_fails_the_size_check_and_deletes_nothing(server: PostgresServer, s3: S3Server,
                                                                         tmp_path: Path) -> None:
    """An ``aws`` in front of the real one stores only the first 100 bytes (what a broken transfer that still
    reported success would leave): the script must notice before pruning."""
    old = f"{LOGICAL_PREFIX}20200101T033000Z{COPY_SUFFIX}"
    s3.client.put_object(Bucket=BUCKET, Key=old, Body=b"old")
    shim = tmp_path / "shim"
    shim.mkdir()
    real_aws = Path(sys.executable).parent / "aws"
    (shim / "aws").write_text(
        "#!/bin/sh\n"
        '# --endpoint-url URL s3 cp --only-show-errors FILE DEST: upload a truncated FILE instead.\n'
        'if [ "$3" = s3 ] && [ "$4" = cp ]; then\n'
        '  head -c 100 "$6" > "$HOME/truncated"\n'
        f'  exec {real_aws} "$1" "$2" s3 cp "$5" "$HOME/truncated" "$7"\n'
        "fi\n"
        f'exec {real_aws} "$@"\n')
    (shim / "aws").chmod(0o755)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = _pod_environment(work, home, s3, _database_url(server), keep=1)
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    assert _run(["bash", "-c", render_dump_script()], env, tmp_path).returncode == 0
    [copy] = work.glob(f"*{COPY_SUFFIX}")
    upload = _run(["sh", "-c", render_upload_script()], env, tmp_path)
    assert upload.returncode != 0
    key = f"{LOGICAL_PREFIX}{copy.name}"
    assert f"{SCRIPT_FAILURE_MARKER} (upload): {key} holds 100 bytes, expected {copy.stat().st_size}" in upload.stderr
    # The older copy survives: pruning never ran.
    assert old in s3.keys(LOGICAL_PREFIX)
