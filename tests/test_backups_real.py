"""Backups with the real tools: PostgreSQL 15 and pgBackRest 2.45 from Debian, an S3 server (moto behind Caddy's TLS,
tests/s3server.py), redis-server, openssl, curl, shellcheck and systemd-analyze.

One primary archives its WAL into the bucket for the whole module (its archive_command is the rendered one plus
``--config``: the primary runs as the ``postgres`` OS user, which reads a test pgbackrest.conf holding the rendered
conf and the rendered secrets). The host's ``backup.sh`` runs for real, with its documented hooks pointing at
local programs instead of ``docker compose exec``. Restores go through ``phasekit.db.restore`` with the credentials
in pgBackRest's environment variables, as an operator would.

What these tests cannot prove: that R2 itself accepts the same requests (moto does not check signatures), that the
Docker image builds, and that systemd on the droplet runs the timers (only that it accepts the units).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components.backups import (
    BACKUP_STATUS_DIR,
    BACKUP_STATUS_FILE,
    OPENSSL_ENC_ARGS,
    REDIS_STAMP_FILE,
    BackupSpec,
    backup_units,
    postgres_archive_settings,
    render_backup_script,
    render_pgbackrest_conf,
    render_pgbackrest_secrets,
    render_r2_curl_config,
)
from phasekit.db import restore
from phasekit.db.connection import DatabaseError
from tests.realtools import running_postgres, running_redis, shellcheck
from tests.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, running_s3

BUCKET = "phasekit-phase1-backups"  # what infra.backups.backup_spec names for project phasekit, stack phase1
PASSPHRASE = "correct horse battery staple"
RECOVERY_POINT_SECONDS = 8  # archive_timeout 4 s: small enough for a test under a minute
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
REPOSITORY_ENV = {"PGBACKREST_REPO1_S3_KEY": ACCESS_KEY_ID, "PGBACKREST_REPO1_S3_KEY_SECRET": SECRET_ACCESS_KEY,
                  "PGBACKREST_REPO1_CIPHER_PASS": PASSPHRASE}


class Primary:
    """The module's archiving PostgreSQL, its pgBackRest config and the rendered backup.sh with its hooks."""

    def __init__(self, server, spec: BackupSpec, folder: Path) -> None:
        self.server, self.spec, self.folder = server, spec, folder
        self.stack_dir = folder / "stack"
        self.script = self.stack_dir / "backup.sh"
        self.first_rollout: dict[str, subprocess.CompletedProcess[str]] = {}
        """What the module's setup ran, in order, as a first rollout and its asynchronous full backup would."""

    def sql(self, statement: str, database: str = "app") -> str:
        proc = self.server.psql(statement, dbname=database)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def backup_sh(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        hooks = {"PHASEKIT_STACK_DIR": str(self.stack_dir), "PHASEKIT_WORK_DIR": str(self.folder),
                 "PHASEKIT_PGBACKREST": str(self.folder / "pgbackrest-hook"),
                 "PHASEKIT_PSQL": str(self.folder / "psql-hook"), "PATH": os.environ["PATH"], **env}
        return subprocess.run([str(self.script), *args], env=hooks, capture_output=True, text=True, timeout=120,
                              check=False)

    def switch_and_wait_archived(self) -> None:
        """Close the current WAL segment and wait (bounded) until the archiver has shipped it."""
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())", "postgres")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", "postgres") >= segment:
                return
            time.sleep(0.2)
        raise AssertionError(f"WAL segment {segment} was not archived within 30 s\n{self.server.log()}")


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _for_postgres(*paths: Path) -> None:
    if AS_POSTGRES:
        for path in paths:
            shutil.chown(path, "postgres", "postgres")


@pytest.fixture(scope="module")
def s3():
    with running_s3(BUCKET) as server:
        yield server


@pytest.fixture(scope="module")
def primary(s3):
    spec = BackupSpec(bucket=BUCKET, endpoint=s3.endpoint_host, storage_port=s3.port, ca_file=s3.ca_file,
                      recovery_point_seconds=RECOVERY_POINT_SECONDS, max_backup_age_hours=1)
    folder = Path(tempfile.mkdtemp(prefix="backups-real-"))
    folder.chmod(0o755)
    conf = folder / "pgbackrest.conf"
    settings = postgres_archive_settings(spec, config_path=str(conf))
    postgresql_conf = "".join(f"{name} = '{value}'\n" for name, value in settings.items())
    try:
        with running_postgres(postgresql_conf) as server:
            for name in ("spool", "log", "lock"):
                (folder / name).mkdir()
            conf.write_text(render_pgbackrest_conf(
                spec, pg_path=str(server.data_dir), socket_path=str(server.socket_dir),
                spool_path=str(folder / "spool"), log_path=str(folder / "log"), lock_path=str(folder / "lock"),
                pg_user="postgres", pg_port=server.port)
                + render_pgbackrest_secrets(access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY,
                                            cipher_pass=PASSPHRASE))
            _for_postgres(conf, *(folder / name for name in ("spool", "log", "lock")))
            primary = Primary(server, spec, folder)
            primary.stack_dir.mkdir()
            _executable(primary.script, render_backup_script(spec))
            runner = " ".join(AS_POSTGRES)
            _executable(folder / "pgbackrest-hook", f'#!/bin/sh\nexec {runner} pgbackrest --config={conf} "$@"\n')
            _executable(folder / "psql-hook", f'#!/bin/sh\nexec {server.bin_dir}/psql -h {server.socket_dir} '
                                              f'-p {server.port} -U postgres -d postgres "$@"\n')
            primary.sql("CREATE DATABASE app", "postgres")
            primary.sql("CREATE TABLE orders (id int PRIMARY KEY, batch int NOT NULL, "
                        "at timestamptz NOT NULL DEFAULT clock_timestamp())")
            # A first rollout: init (stanza + check only), has-backup says none, the full backup runs apart.
            for step in ("init", "has-backup", "full", "has-backup-after"):
                primary.first_rollout[step] = primary.backup_sh(step.removesuffix("-after"))
            full = primary.first_rollout["full"]
            assert full.returncode == 0, full.stdout + full.stderr
            yield primary
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def repository_env(monkeypatch):
    for name, value in REPOSITORY_ENV.items():
        monkeypatch.setenv(name, value)


def _backup(primary: Primary) -> None:
    """A differential backup (the module's first, full, backup is taken by the fixture after init)."""
    proc = primary.backup_sh("diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"new backup label = \d{8}-\d{6}F_\d{8}-\d{6}D\n", proc.stdout), proc.stdout


def _restored_rows(data_dir: Path, sql: str) -> str:
    """Start a restored (promoted) data directory privately and run ``sql`` in database app."""
    with tempfile.TemporaryDirectory(prefix="restored-run-") as run_dir:
        folder = Path(run_dir)
        folder.chmod(0o755)
        _for_postgres(folder)
        bin_dir = restore.server_bin_dir(data_dir, None)
        with restore.recovered_server(data_dir, bin_dir, folder, run_as=tuple(AS_POSTGRES)) as server:
            return server.psql(sql, "app")


@pytest.fixture
def open_tmp():
    """A temp folder the postgres OS user can reach (pytest's tmp_path sits under a 0700 folder of root's)."""
    folder = Path(tempfile.mkdtemp(prefix="backups-real-restore-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_init_takes_no_backup_and_has_backup_tells_the_rollout_to_start_one(primary):
    """The rollout must not wait for a full backup: init only creates the stanza and checks archiving; has-backup
    answers 1 on an empty repository (deploy.sh then starts the full backup unit without waiting) and 0 after."""
    init, before, full, after = (primary.first_rollout[step] for step in ("init", "has-backup", "full",
                                                                          "has-backup-after"))
    assert init.returncode == 0, init.stdout + init.stderr
    assert "stanza-create command end: completed successfully" in init.stdout + init.stderr
    assert "check command end: completed successfully" in init.stdout + init.stderr
    assert "backup command" not in init.stdout + init.stderr and "new backup label" not in init.stdout
    assert before.returncode == 1, before.stdout + before.stderr
    assert re.search(r"new backup label = \d{8}-\d{6}F\n", full.stdout), full.stdout
    assert after.returncode == 0, after.stdout + after.stderr
    unreadable = primary.backup_sh("has-backup", PHASEKIT_PGBACKREST="/bin/false")
    assert unreadable.returncode == 2
    assert "backup.sh: cannot read the backup repository (pgbackrest info failed)" in unreadable.stderr


def test_init_on_a_fresh_cluster_refuses_the_stacks_stanza(primary, open_tmp):
    """docs/backups.md, "Restore into the same stack": a new volume's empty initdb cluster has another system-id;
    backup.sh init must fail instead of archiving that empty cluster over the stack's backups."""
    conf = open_tmp / "pgbackrest.conf"
    for name in ("spool", "log", "lock"):
        (open_tmp / name).mkdir()
    with running_postgres("") as fresh:
        conf.write_text(render_pgbackrest_conf(
            primary.spec, pg_path=str(fresh.data_dir), socket_path=str(fresh.socket_dir),
            spool_path=str(open_tmp / "spool"), log_path=str(open_tmp / "log"), lock_path=str(open_tmp / "lock"),
            pg_user="postgres", pg_port=fresh.port)
            + render_pgbackrest_secrets(access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY,
                                        cipher_pass=PASSPHRASE))
        _for_postgres(conf, *(open_tmp / name for name in ("spool", "log", "lock")))
        _executable(open_tmp / "pgbackrest-hook",
                    f'#!/bin/sh\nexec {" ".join(AS_POSTGRES)} pgbackrest --config={conf} "$@"\n')
        init = primary.backup_sh("init", PHASEKIT_PGBACKREST=str(open_tmp / "pgbackrest-hook"))
    assert init.returncode != 0
    assert "ERROR: [028]: backup and archive info files exist but do not match the database" in init.stderr, (
        init.stdout + init.stderr)


# ------------------------------------------------------------------------------------------------
# 1. backup -> more writes -> restore to a moment between them -> exactly the rows committed before it


def test_point_in_time_restore_returns_exactly_the_rows_committed_before_the_target(primary, repository_env,
                                                                                   open_tmp):
    primary.sql("INSERT INTO orders (id, batch) SELECT i, 1 FROM generate_series(1, 100) i")
    _backup(primary)
    primary.sql("INSERT INTO orders (id, batch) SELECT i, 2 FROM generate_series(101, 150) i")
    time.sleep(1.2)
    target = primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    expected = primary.sql("SELECT count(*), sum(id) FROM orders")
    assert expected == "150|11325"  # batches 1 and 2: ids 1..150
    time.sleep(1.2)
    primary.sql("INSERT INTO orders (id, batch) SELECT i, 3 FROM generate_series(151, 160) i")
    primary.sql("DELETE FROM orders WHERE id <= 10")
    primary.switch_and_wait_archived()
    assert primary.sql("SELECT count(*), sum(id) FROM orders") == "150|12825"  # + 151..160, - 1..10

    out = io.StringIO()
    data_dir = open_tmp / "restored"
    recovery = restore.restore_to_dir(primary.spec, data_dir, target, out=out)
    # The new timeline's history waits, marked ready, for the server started on it to archive it.
    assert [path.name for path in (data_dir / "pg_wal" / "archive_status").glob("*.history.ready")] == [
        "00000002.history.ready"]

    assert _restored_rows(data_dir, "SELECT count(*), sum(id), count(*) FILTER (WHERE batch = 3) FROM orders") == (
        f"{expected}|0")
    assert recovery.stopped is not None and "recovery stopping before commit" in recovery.stopped
    assert "restore: ok" in out.getvalue() and "recovery reached: newest committed transaction" in out.getvalue()


def test_restore_command_copies_the_point_in_time_into_an_empty_database(primary, repository_env, tmp_path):
    """The CLI end to end: the stack file gives the bucket, --repo-endpoint/--repo-ca-file the test server;
    --to-url restores into scratch and copies with the migration (which verifies both sides)."""
    primary.sql("INSERT INTO orders (id, batch) SELECT i, 4 FROM generate_series(1001, 1020) i")
    primary.switch_and_wait_archived()
    time.sleep(1.2)
    target = primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'")
    time.sleep(1.2)
    primary.sql("INSERT INTO orders (id, batch) SELECT i, 5 FROM generate_series(2001, 2005) i")
    primary.switch_and_wait_archived()
    expected = primary.sql(f"SELECT count(*) FROM orders WHERE at < '{target}'")

    from phasekit.db.cli import run

    with running_postgres("") as target_server:
        assert target_server.psql("CREATE DATABASE copy").returncode == 0
        out = io.StringIO()
        status = run(["restore", "--stack", "phase1", "--project-dir", str(Path(__file__).parent.parent),
                      "--time", target, "--to-url", f"postgresql://postgres@127.0.0.1:{target_server.port}/copy",
                      "--repo-endpoint", f"localhost:{primary.spec.storage_port}",
                      "--repo-ca-file", primary.spec.ca_file], out)
        assert status == 0, out.getvalue()
        copied = target_server.psql("SELECT count(*), count(*) FILTER (WHERE batch = 5) FROM orders", dbname="copy")
    assert copied.stdout.strip() == f"{expected}|0"
    assert f"copied to postgresql://postgres@127.0.0.1:{target_server.port}/copy and verified" in out.getvalue()


# ------------------------------------------------------------------------------------------------
# 2. the recovery point under a steady write load


def test_wal_archiving_keeps_the_recovery_point_under_steady_writes(primary, repository_env, open_tmp):
    """Steady small writes for 12 s: the archiver never falls further behind than the recovery point, and without a
    forced switch (archive_timeout alone) the segment holding the last write reaches the bucket within it."""
    primary.sql("CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    worst_lag = 0.0
    start = time.monotonic()
    while time.monotonic() - start < 12:
        primary.sql("INSERT INTO ticks DEFAULT VALUES")
        lag = float(primary.sql("SELECT extract(epoch FROM clock_timestamp() - last_archived_time) "
                                "FROM pg_stat_archiver", "postgres") or "inf")
        if time.monotonic() - start > RECOVERY_POINT_SECONDS:
            worst_lag = max(worst_lag, lag)
        time.sleep(0.25)
    last_write_segment = primary.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())", "postgres")
    time.sleep(RECOVERY_POINT_SECONDS)

    with restore.repository(primary.spec, open_tmp) as repo:
        newest_archived = restore.archive_max(repo)
    assert worst_lag <= RECOVERY_POINT_SECONDS, f"the archiver fell {worst_lag:.1f} s behind"
    assert newest_archived is not None and newest_archived >= last_write_segment, (
        f"{RECOVERY_POINT_SECONDS} s after the last write its WAL segment {last_write_segment} is not in the bucket "
        f"(newest there: {newest_archived})")


# ------------------------------------------------------------------------------------------------
# 6. status (before the damage tests: they leave the primary's repository alone, but keep it simple)


def test_status_publishes_the_file_while_backups_are_fresh_and_removes_it_when_stale(primary):
    _backup(primary)
    status_file = primary.stack_dir / BACKUP_STATUS_DIR / BACKUP_STATUS_FILE
    redis_stamp = primary.stack_dir / BACKUP_STATUS_DIR / REDIS_STAMP_FILE
    redis_stamp.parent.mkdir(exist_ok=True)
    redis_stamp.write_text(f"{int(time.time())}\n")  # as a verified `backup.sh redis` leaves it

    fresh = primary.backup_sh("status")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert status_file.read_text().startswith("ok newest-backup=")
    assert stat.S_IMODE(status_file.stat().st_mode) == 0o644

    broken = primary.backup_sh("status", PHASEKIT_PSQL="/bin/false")
    assert broken.returncode == 1 and not status_file.exists()
    assert "NOT OK: cannot query PostgreSQL's WAL archiver" in broken.stderr
    assert primary.backup_sh("status").returncode == 0 and status_file.exists()

    two_hours_later = str(int(time.time()) + 2 * 3600)  # the module's spec allows 1 h between backups
    stale = primary.backup_sh("status", PHASEKIT_NOW=two_hours_later)
    assert stale.returncode == 1
    assert not status_file.exists()
    assert "NOT OK: newest backup is 2 h old (limit 1 h)" in stale.stderr


def test_status_fails_while_the_last_verified_redis_backup_is_missing_or_stale(primary):
    """The module's spec backs Redis up: a failing Redis backup must take the status file away too."""
    _backup(primary)
    status_file = primary.stack_dir / BACKUP_STATUS_DIR / BACKUP_STATUS_FILE
    redis_stamp = primary.stack_dir / BACKUP_STATUS_DIR / REDIS_STAMP_FILE
    redis_stamp.parent.mkdir(exist_ok=True)
    redis_stamp.unlink(missing_ok=True)

    missing = primary.backup_sh("status")
    assert missing.returncode == 1 and not status_file.exists(), missing.stdout + missing.stderr
    assert f"NOT OK: no verified Redis backup yet ({redis_stamp} missing)" in missing.stderr

    redis_stamp.write_text(f"{int(time.time()) - 2 * 3600}\n")  # the module's spec allows 1 h
    stale = primary.backup_sh("status")
    assert stale.returncode == 1 and not status_file.exists()
    assert "NOT OK: newest Redis backup is 2 h old (limit 1 h)" in stale.stderr

    redis_stamp.write_text(f"{int(time.time())}\n")
    fresh = primary.backup_sh("status")
    assert fresh.returncode == 0 and status_file.exists(), fresh.stdout + fresh.stderr


# ------------------------------------------------------------------------------------------------
# 3. damage is found and reported, never restored silently


@pytest.fixture
def damaged_copy(primary, s3):
    """A copy of the repository under another prefix, for a test to damage (the primary keeps its own)."""
    for batch in (6, 7):
        primary.sql(f"INSERT INTO orders (id, batch) SELECT (SELECT coalesce(max(id), 0) FROM orders) + i, {batch} "
                    "FROM generate_series(1, 10) i")
        primary.switch_and_wait_archived()
    prefix = f"damaged-{time.monotonic_ns()}"
    for key in s3.keys("pgbackrest/"):
        s3.client.copy_object(Bucket=BUCKET, Key=f"{prefix}/{key.split('/', 1)[1]}",
                              CopySource={"Bucket": BUCKET, "Key": key})
    spec = BackupSpec(bucket=BUCKET, endpoint=s3.endpoint_host, storage_port=s3.port, ca_file=s3.ca_file,
                      repo_path=f"/{prefix}")
    return spec, prefix


def _newest_backup_keys(s3, prefix: str) -> list[str]:
    labels = sorted({key.split("/")[3] for key in s3.keys(f"{prefix}/backup/app/") if key.split("/")[3][:1].isdigit()})
    return s3.keys(f"{prefix}/backup/app/{labels[-1]}/")


def test_drill_passes_on_the_intact_repository(primary, repository_env):
    """Through the command line, as an operator runs it: the stack file names the bucket."""
    from phasekit.db.cli import run

    _backup(primary)
    out = io.StringIO()
    status = run(["drill", "--stack", "phase1", "--project-dir", str(Path(__file__).parent.parent),
                  "--repo-endpoint", f"localhost:{primary.spec.storage_port}", "--repo-ca-file", primary.spec.ca_file],
                 out)
    assert status == 0, out.getvalue()
    report = out.getvalue()
    tables = primary.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").splitlines()
    rows = sum(int(primary.sql(f"SELECT count(*) FROM {table}")) for table in tables)
    assert "verify: ok" in report and f"\ntables: {len(tables)} read, {rows} rows, all readable\n" in report, report
    assert "amcheck: ok" in report and report.endswith("drill: ok\n")


def test_a_corrupted_backup_object_fails_the_drill_and_the_restore(damaged_copy, s3, repository_env, open_tmp):
    spec, prefix = damaged_copy
    bundle = next(key for key in _newest_backup_keys(s3, prefix) if "/bundle/" in key)
    body = bytearray(s3.client.get_object(Bucket=BUCKET, Key=bundle)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.client.put_object(Bucket=BUCKET, Key=bundle, Body=bytes(body))

    out = io.StringIO()
    assert restore.drill(spec, out=out) is False
    assert "FAILED: the repository is damaged, nothing was restored:" in out.getvalue()
    assert "invalid checksum" in out.getvalue()

    data_dir = open_tmp / "refused"
    with pytest.raises(DatabaseError, match="the repository is damaged, nothing was restored: .*invalid checksum"):
        restore.restore_to_dir(spec, data_dir, None, out=io.StringIO())
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_a_missing_wal_segment_fails_the_drill_and_the_restore(damaged_copy, s3, repository_env, open_tmp):
    """pgBackRest 2.45's verify does not notice a hole in the WAL (it says ok); the restore's own check does."""
    spec, prefix = damaged_copy
    segments = [key for key in s3.keys(f"{prefix}/archive/app/") if key.endswith(".zst")]
    s3.client.delete_object(Bucket=BUCKET, Key=segments[-2])  # one the newest backup's replay needs after it
    missing = segments[-2].rsplit("/", 1)[1][:24]

    out = io.StringIO()
    assert restore.drill(spec, out=out) is False
    assert f"FAILED: WAL segment {missing} is missing from the repository: recovery stopped after " in out.getvalue()

    data_dir = open_tmp / "refused"
    with pytest.raises(DatabaseError, match=f"WAL segment {missing} is missing .* was emptied again"):
        restore.restore_to_dir(spec, data_dir, None, out=io.StringIO())
    assert not any(data_dir.iterdir())


def test_a_missing_backup_file_fails_the_drill(damaged_copy, s3, repository_env):
    spec, prefix = damaged_copy
    manifest_listed = next(key for key in _newest_backup_keys(s3, prefix) if "/pg_data/" in key)
    s3.client.delete_object(Bucket=BUCKET, Key=manifest_listed)

    out = io.StringIO()
    assert restore.drill(spec, out=out) is False
    assert "FAILED: the repository is damaged, nothing was restored:" in out.getvalue()
    assert "missing" in out.getvalue()


def test_restore_names_the_missing_credentials_and_where_they_come_from(primary, monkeypatch, tmp_path):
    monkeypatch.setenv("PGBACKREST_REPO1_S3_KEY", ACCESS_KEY_ID)
    monkeypatch.delenv("PGBACKREST_REPO1_S3_KEY_SECRET", raising=False)
    monkeypatch.delenv("PGBACKREST_REPO1_CIPHER_PASS", raising=False)
    with pytest.raises(DatabaseError) as raised:
        restore.restore_to_dir(primary.spec, tmp_path / "nothing", None, out=io.StringIO())
    assert not (tmp_path / "nothing").exists()
    assert str(raised.value) == (
        "missing PGBACKREST_REPO1_S3_KEY_SECRET, PGBACKREST_REPO1_CIPHER_PASS in the environment: set "
        "PGBACKREST_REPO1_S3_KEY_SECRET to the secretAccessKey of `pulumi stack output --show-secrets "
        "backupCredentials`; PGBACKREST_REPO1_CIPHER_PASS to the output of `pulumi config get --path "
        "secrets.BACKUP_PASSPHRASE` (in the project folder, with the stack selected)")


def test_restore_refuses_a_backup_written_by_a_newer_pgbackrest(primary, repository_env, monkeypatch, open_tmp):
    """The decision is tested exactly in tests/test_backups.py; here, that a restore asks the real repository for
    the backup's writer version and stops before touching the folder (this machine's 2.45 made to look older)."""
    monkeypatch.setattr(restore, "installed_pgbackrest_version", lambda: "2.30")
    data_dir = open_tmp / "refused-version"
    with pytest.raises(DatabaseError, match=r"^backup \d{8}-\d{6}F(_\d{8}-\d{6}D)? was written by pgBackRest 2\.45, "
                       r"newer than this machine's pgBackRest 2\.30: .* nothing was restored"):
        restore.restore_to_dir(primary.spec, data_dir, None, out=io.StringIO())
    assert not any(data_dir.iterdir())


def test_restore_refuses_a_folder_that_is_not_empty(primary, repository_env, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DatabaseError) as raised:
        restore.restore_to_dir(primary.spec, tmp_path, None, out=io.StringIO())
    assert str(raised.value) == f"--to-dir {tmp_path}: not empty; restore into an empty folder (nothing is overwritten)"
    assert (tmp_path / "keep.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------
# 4. Redis: backup.sh redis -> bucket -> download, decrypt, load into a fresh redis-server


def test_redis_snapshot_round_trips_through_the_bucket(primary, s3, tmp_path):
    secrets = primary.stack_dir / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "backup_passphrase").write_text(PASSPHRASE)
    (secrets / "r2-curl.conf").write_text(render_r2_curl_config(ACCESS_KEY_ID, SECRET_ACCESS_KEY))
    with running_redis("appendonly no\n") as source:
        source.cli("SET", "session:1", "alice")
        source.cli("HSET", "cart:7", "apples", "3", "pears", "2")
        source.cli("RPUSH", "queue", "a", "b", "c")
        _executable(tmp_path / "redis-cli-hook",
                    f'#!/bin/sh\nexec {source.redis_cli} -h 127.0.0.1 -p {source.port} "$@"\n')
        redis_stamp = primary.stack_dir / BACKUP_STATUS_DIR / REDIS_STAMP_FILE
        redis_stamp.parent.mkdir(exist_ok=True)
        redis_stamp.write_text("1000\n")  # an old success: a failed run must leave it as it is
        failed = primary.backup_sh("redis", PHASEKIT_REDIS_CLI="/bin/false")
        assert failed.returncode != 0 and redis_stamp.read_text() == "1000\n"
        before = int(time.time())
        proc = primary.backup_sh("redis", PHASEKIT_REDIS_CLI=str(tmp_path / "redis-cli-hook"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "uploaded and verified redis/" in proc.stderr
    assert before <= int(redis_stamp.read_text()) <= int(time.time())
    keys = s3.keys("redis/")
    assert len(keys) == 1 and keys[0].endswith(".rdb.enc"), keys
    encrypted = s3.client.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    assert b"alice" not in encrypted and encrypted.startswith(b"Salted__")

    (tmp_path / "snapshot.enc").write_bytes(encrypted)
    (tmp_path / "pass").write_text(PASSPHRASE)
    decrypted = subprocess.run(["openssl", "enc", "-d", *OPENSSL_ENC_ARGS, "-pass", f"file:{tmp_path / 'pass'}",
                                "-in", str(tmp_path / "snapshot.enc")], capture_output=True, check=True).stdout
    assert decrypted.startswith(b"REDIS")
    with running_redis("appendonly no\ndbfilename dump.rdb\n", {"dump.rdb": decrypted}) as fresh:
        assert fresh.cli("GET", "session:1") == "alice"
        assert fresh.cli("HGET", "cart:7", "pears") == "2"
        assert fresh.cli("LRANGE", "queue", "0", "-1") == "a\nb\nc"
        assert fresh.cli("DBSIZE") == "3"


# ------------------------------------------------------------------------------------------------
# 5. the host files pass their own tools


def test_rendered_backup_script_passes_shellcheck():
    shellcheck(render_backup_script(BackupSpec(bucket="b-backups", endpoint="acct.r2.cloudflarestorage.com")),
               shell=None)


def test_rendered_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    units = backup_units(BackupSpec(bucket="b-backups", endpoint="acct.r2.cloudflarestorage.com"))
    for name, content in units.items():
        (tmp_path / name).write_text(content.replace("/opt/phasekit/backup.sh", str(tmp_path / "backup.sh")))
    _executable(tmp_path / "backup.sh", "#!/bin/sh\n")
    # The units need docker.service, which this machine lacks: a stub stands in (found first on the unit path).
    (tmp_path / "docker.service").write_text("[Service]\nExecStart=/bin/true\n")
    proc = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / name) for name in sorted(units))],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"})
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "phasekit-backup" in line or "backup.sh" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_restore_rejects_a_time_without_an_offset():
    with pytest.raises(DatabaseError) as raised:
        restore.restore_time("2026-12-03 18:00:00")
    assert str(raised.value) == ("--time '2026-12-03 18:00:00': expected 'YYYY-MM-DD HH:MM:SS+00' (a moment with its "
                                 "UTC offset)")
    assert restore.restore_time("2026-12-03 18:00:00+00") == "2026-12-03 18:00:00+00"


def test_restore_parser_needs_a_moment_and_a_destination():
    parser = argparse.ArgumentParser()
    restore.add_restore_arguments(parser)
    ns = parser.parse_args(["--stack", "phase1", "--latest", "--to-dir", "/x"])
    assert (ns.stack, ns.latest, ns.to_dir, ns.time, ns.to_url) == ("phase1", True, "/x", None, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["--stack", "phase1", "--to-dir", "/x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--stack", "phase1", "--latest", "--time", "2026-01-01 00:00:00+00", "--to-dir", "/x"])

