"""The backup renderers' output, exactly (pure; tests/test_backups_real.py runs these files with the real tools)."""

from __future__ import annotations

import re

import pytest

from components.backups import (
    BackupSpec,
    backup_units,
    postgres_archive_settings,
    render_backup_script,
    render_pgbackrest_conf,
    render_pgbackrest_secrets,
    render_postgres_dockerfile,
    render_r2_curl_config,
)

SPEC = BackupSpec(bucket="acme-phase1-backups", endpoint="acct.r2.cloudflarestorage.com")


def test_pgbackrest_conf_points_at_the_bucket_with_encryption_retention_and_async_archiving():
    assert render_pgbackrest_conf(SPEC) == (
        "# Rendered by phasekit: the off-site repository in the stack's private backups bucket.\n"
        "# Credentials and the encryption passphrase are in conf.d/secrets.conf.\n"
        "[global]\n"
        "repo1-type=s3\n"
        "repo1-s3-bucket=acme-phase1-backups\n"
        "repo1-s3-endpoint=acct.r2.cloudflarestorage.com\n"
        "repo1-s3-region=auto\n"
        "repo1-s3-uri-style=path\n"
        "repo1-path=/pgbackrest\n"
        "repo1-cipher-type=aes-256-cbc\n"
        "repo1-retention-full-type=count\n"
        "repo1-retention-full=4\n"
        "repo1-retention-diff=7\n"
        "# Small files travel in bundles: fewer objects, fewer (billed) requests.\n"
        "repo1-bundle=y\n"
        "compress-type=zst\n"
        "process-max=2\n"
        "start-fast=y\n"
        "# Asynchronous archive-push: a background process ships ready segments in parallel straight from pg_wal,\n"
        "# but archive_command still reports success only once its segment is stored in the repository.\n"
        "archive-async=y\n"
        "spool-path=/var/spool/pgbackrest\n"
        "log-path=/var/log/pgbackrest\n"
        "lock-path=/tmp/pgbackrest\n"
        "log-level-console=info\n"
        "log-level-file=info\n"
        "\n"
        "[app]\n"
        "pg1-path=/var/lib/postgresql/data\n"
        "pg1-socket-path=/var/run/postgresql\n"
        "pg1-port=5432\n"
        "pg1-user=app\n"
    )


def test_pgbackrest_conf_names_port_and_ca_only_off_the_defaults():
    local = BackupSpec(bucket="b-backups", endpoint="localhost", storage_port=9443, ca_file="/tmp/ca.crt",
                       retention_full=2, retention_diff=3, repo_path="/copy")
    conf = render_pgbackrest_conf(local, pg_path="/d", pg_user="postgres", pg_port=6543)
    assert "repo1-storage-port=9443\nrepo1-storage-ca-file=/tmp/ca.crt\n" in conf
    assert "repo1-retention-full=2\nrepo1-retention-diff=3\n" in conf and "repo1-path=/copy\n" in conf
    assert conf.endswith("[app]\npg1-path=/d\npg1-socket-path=/var/run/postgresql\npg1-port=6543\npg1-user=postgres\n")
    assert "repo1-storage-" not in render_pgbackrest_conf(SPEC)
    assert not re.search(r"repo1-s3-key|cipher-pass", render_pgbackrest_conf(SPEC))


def test_secrets_conf_holds_the_key_pair_and_the_passphrase():
    assert render_pgbackrest_secrets(access_key_id="AKID", secret_access_key="s3cr3t", cipher_pass="horse") == (
        "[global]\nrepo1-s3-key=AKID\nrepo1-s3-key-secret=s3cr3t\nrepo1-cipher-pass=horse\n")


@pytest.mark.parametrize("values, message", [
    ({"access_key_id": "", "secret_access_key": "s", "cipher_pass": "p"},
     "repo1-s3-key must be a non-empty single line without surrounding spaces"),
    ({"access_key_id": "a", "secret_access_key": "s\nrepo1-path=/x", "cipher_pass": "p"},
     "repo1-s3-key-secret must be a non-empty single line without surrounding spaces"),
    ({"access_key_id": "a", "secret_access_key": "s", "cipher_pass": " p"},
     "repo1-cipher-pass must be a non-empty single line without surrounding spaces"),
])
def test_secrets_conf_refuses_values_that_would_break_the_file(values, message):
    with pytest.raises(ValueError) as raised:
        render_pgbackrest_secrets(**values)
    assert str(raised.value) == message


def test_curl_config_quotes_the_user():
    assert render_r2_curl_config("AKID", 'se"c\\ret') == 'user = "AKID:se\\"c\\\\ret"\n'
    with pytest.raises(ValueError) as raised:
        render_r2_curl_config("AK:ID", "x")
    assert str(raised.value) == "access_key_id must be a non-empty single line (the key id without ':')"


def test_archive_settings_ship_wal_within_half_the_recovery_point():
    assert postgres_archive_settings(SPEC) == {
        "wal_level": "replica", "archive_mode": "on",
        "archive_command": "pgbackrest --stanza=app archive-push %p", "archive_timeout": "150s"}
    assert postgres_archive_settings(BackupSpec(bucket="b", endpoint="e", recovery_point_seconds=60),
                                     config_path="/t/pgbackrest.conf")["archive_command"] == (
        "pgbackrest --config=/t/pgbackrest.conf --stanza=app archive-push %p")
    assert BackupSpec(bucket="b", endpoint="e", recovery_point_seconds=61).archive_timeout_seconds == 30


@pytest.mark.parametrize("fields, message", [
    ({"bucket": ""}, "BackupSpec.bucket must be a non-empty single line, got ''"),
    ({"endpoint": "a\nb"}, "BackupSpec.endpoint must be a non-empty single line, got 'a\\nb'"),
    ({"recovery_point_seconds": 1}, "BackupSpec.recovery_point_seconds must be at least 2, got 1"),
])
def test_spec_refuses_values_no_renderer_can_use(fields, message):
    with pytest.raises(ValueError) as raised:
        BackupSpec(**{"bucket": "b", "endpoint": "e", **fields})
    assert str(raised.value) == message


def test_dockerfile_adds_pgbackrest_to_the_pinned_image():
    assert render_postgres_dockerfile("postgres:16.6") == (
        "# Rendered by phasekit: the official image plus pgBackRest (from apt.postgresql.org, already listed).\n"
        "FROM postgres:16.6\n"
        "RUN apt-get update \\\n"
        " && apt-get install -y --no-install-recommends pgbackrest ca-certificates \\\n"
        " && rm -rf /var/lib/apt/lists/* \\\n"
        " && install -d -o postgres -g postgres -m 0750 /var/log/pgbackrest /var/spool/pgbackrest /tmp/pgbackrest\n"
    )
    with pytest.raises(ValueError):
        render_postgres_dockerfile("postgres:16.6\nRUN curl evil")


def test_units_are_one_service_and_one_timer_per_backup_kind():
    units = backup_units(SPEC)
    assert sorted(units) == [f"phasekit-backup-{kind}.{suffix}" for kind in ("diff", "full", "redis", "status")
                             for suffix in ("service", "timer")]
    assert units["phasekit-backup-full.service"] == (
        "[Unit]\nDescription=phasekit: full PostgreSQL backup to the off-site bucket\nRequires=docker.service\n"
        "After=docker.service\n\n[Service]\nType=oneshot\nUMask=0077\nExecStart=/opt/phasekit/backup.sh full\n")
    assert units["phasekit-backup-full.timer"] == (
        "[Unit]\nDescription=phasekit: full PostgreSQL backup to the off-site bucket\n\n[Timer]\n"
        "OnCalendar=Sun *-*-* 03:30:00\nPersistent=true\nRandomizedDelaySec=10m\n\n[Install]\nWantedBy=timers.target\n")
    assert units["phasekit-backup-status.timer"] == (
        "[Unit]\nDescription=phasekit: check backups and WAL archiving, publish the status file\n\n[Timer]\n"
        "OnCalendar=*:0/5\n\n[Install]\nWantedBy=timers.target\n")
    assert "OnCalendar=Mon..Sat *-*-* 03:30:00\n" in units["phasekit-backup-diff.timer"]
    assert "OnCalendar=*-*-* 04:00:00\n" in units["phasekit-backup-redis.timer"]


def test_no_redis_units_without_a_redis_schedule():
    units = backup_units(BackupSpec(bucket="b", endpoint="e", redis_schedule=None))
    assert not [name for name in units if "redis" in name] and len(units) == 6


def test_backup_script_carries_the_spec_and_nothing_left_to_fill():
    script = render_backup_script(BackupSpec(bucket="acme-phase1-backups", endpoint="acct.r2.cloudflarestorage.com",
                                             recovery_point_seconds=120, max_backup_age_hours=26))
    assert not re.search(r"@[A-Z_]+@", script)
    for line in ("STANZA=app", "BUCKET_URL=https://acct.r2.cloudflarestorage.com/acme-phase1-backups",
                 "CA_FILE=''", "RECOVERY_POINT_SECONDS=120", "MAX_BACKUP_AGE_SECONDS=93600"):
        assert f"\n{line}\n" in script
    assert "compose exec -T --user postgres db pgbackrest \"$@\"" in script
    assert "openssl enc -aes-256-cbc -pbkdf2 -iter 200000 -salt -pass \"file:$SECRETS_DIR/backup_passphrase\"" in script
    assert '--aws-sigv4 "aws:amz:auto:s3"' in script
    local = render_backup_script(BackupSpec(bucket="b-backups", endpoint="localhost", storage_port=9443,
                                            ca_file="/tmp/my ca.crt"))
    assert "\nBUCKET_URL=https://localhost:9443/b-backups\nCA_FILE='/tmp/my ca.crt'\n" in local


# ------------------------------------------------------------------------------------------------
# phasekit db restore's pure helpers (the real runs are in tests/test_backups_real.py)

SERVER_LOG = """\
LOG:  starting point-in-time recovery to 2026-12-03 18:18:00.093568+00
LOG:  restored log file "000000010000000000000004" from archive
LOG:  restored log file "000000010000000000000005" from archive
LOG:  recovery stopping before commit of transaction 741, time 2026-12-03 18:18:01.31+00
LOG:  redo done at 0/5000150 system usage: CPU: user: 0.00 s
LOG:  last completed transaction was at log time 2026-12-03 18:17:58.9+00
"""


def test_recovery_is_read_from_the_server_log():
    from phasekit.db.restore import Recovery, recovery_from_log

    recovery = recovery_from_log(SERVER_LOG)
    assert recovery == Recovery(stopped="recovery stopping before commit of transaction 741, time "
                                        "2026-12-03 18:18:01.31+00",
                                last_transaction="2026-12-03 18:17:58.9+00", last_segment="000000010000000000000005")
    assert recovery.describe() == (
        "newest committed transaction 2026-12-03 18:17:58.9+00; recovery stopping before commit of transaction 741, "
        "time 2026-12-03 18:18:01.31+00; last WAL segment 000000010000000000000005")


def test_a_replay_that_ends_before_the_newest_segment_is_refused_naming_the_missing_one():
    from phasekit.db.connection import DatabaseError
    from phasekit.db.restore import check_complete, next_segment, recovery_from_log

    recovery = recovery_from_log(SERVER_LOG)
    check_complete(recovery, "000000010000000000000005")
    check_complete(recovery, "000000010000000000000004")
    with pytest.raises(DatabaseError) as raised:
        check_complete(recovery, "000000010000000000000009")
    assert str(raised.value) == (
        "WAL segment 000000010000000000000006 is missing from the repository: recovery stopped after "
        "000000010000000000000005 although the repository holds WAL up to 000000010000000000000009; the restore "
        "would silently end early")
    assert next_segment("0000000200000003000000FF") == "000000020000000400000000"


@pytest.mark.parametrize("endpoint, message", [
    ("https://x.example", "--repo-endpoint 'https://x.example': expected HOST or HOST:PORT (no scheme, no path)"),
    ("host:port", "--repo-endpoint 'host:port': expected HOST or HOST:PORT (no scheme, no path)"),
    (":9000", "--repo-endpoint ':9000': expected HOST or HOST:PORT (no scheme, no path)"),
])
def test_repo_endpoint_flag_is_host_and_port_only(endpoint, message):
    from phasekit.db.connection import DatabaseError
    from phasekit.db.restore import with_repository_flags

    with pytest.raises(DatabaseError) as raised:
        with_repository_flags(SPEC, endpoint, None)
    assert str(raised.value) == message
    moved = with_repository_flags(SPEC, "localhost:9443", None)
    assert (moved.endpoint, moved.storage_port, moved.bucket) == ("localhost", 9443, SPEC.bucket)


# ------------------------------------------------------------------------------------------------
# review fixes: init takes no backup, has-backup, the Redis success stamp


def test_init_only_creates_the_stanza_and_checks_and_has_backup_answers_for_the_rollout():
    script = render_backup_script(SPEC)
    init = script[script.index("\ninit() {"):script.index("\n}\n", script.index("\ninit() {"))]
    assert "stanza-create" in init and '--stanza="$STANZA" check' in init
    commands = [line for line in init.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if "postgres_backup" in line or " backup" in line], init
    assert "\n  has-backup) has_backup ;;\n" in script
    assert "usage: backup.sh init|has-backup|full|diff|redis|status" in script


def test_status_requires_the_redis_stamp_only_when_redis_is_backed_up():
    assert "\nREDIS_STAMP=\"$STATUS_DIR/redis-last-success\"\nREDIS_BACKED_UP=yes\n" in render_backup_script(SPEC)
    without_redis = render_backup_script(BackupSpec(bucket="b", endpoint="e", redis_schedule=None))
    assert "\nREDIS_BACKED_UP=no\n" in without_redis
    script = render_backup_script(SPEC)
    redis = script[script.index("\nredis_backup() {"):script.index("\ncheck_redis() {")]
    # The stamp is written last: after the upload and after the read-back matched.
    assert redis.index("--upload-file") < redis.index("cmp --silent") < redis.index('date -u +%s > "$REDIS_STAMP.tmp"')


# ------------------------------------------------------------------------------------------------
# restore: the reader/writer version check and no SQL on a command line


def _backup_info(label: str, version: str, stop: int) -> dict:
    return {"label": label, "backrest": {"format": 5, "version": version}, "timestamp": {"start": stop - 5,
                                                                                         "stop": stop}}


def test_a_backup_written_by_a_newer_pgbackrest_is_refused_with_the_versions_named():
    from phasekit.db.connection import DatabaseError
    from phasekit.db.restore import check_reader_version

    check_reader_version("2.45", _backup_info("20261203-180000F", "2.45", 1))
    check_reader_version("2.54.1", _backup_info("20261203-180000F", "2.45", 1))
    check_reader_version("2.55dev", _backup_info("20261203-180000F", "2.55", 1))
    with pytest.raises(DatabaseError) as raised:
        check_reader_version("2.45", _backup_info("20261203-180000F", "2.54.1", 1))
    assert str(raised.value) == (
        "backup 20261203-180000F was written by pgBackRest 2.54.1, newer than this machine's pgBackRest 2.45: an "
        "older pgBackRest may not read a newer repository; install pgBackRest 2.54.1 or newer (apt.postgresql.org) "
        "and run the restore again; nothing was restored")
    with pytest.raises(DatabaseError) as raised:
        check_reader_version("2.9", _backup_info("20261203-180000F", "2.10", 1))
    assert "written by pgBackRest 2.10, newer than this machine's pgBackRest 2.9" in str(raised.value)


def test_the_version_checked_is_that_of_the_backup_the_restore_picks():
    from phasekit.db.restore import backup_to_restore

    # 2026-12-03 18:00:00 UTC = 1796320800
    backups = [_backup_info("old", "2.45", 1796320800 - 7200), _backup_info("new", "2.54", 1796320800 + 60)]
    assert backup_to_restore(backups, None)["label"] == "new"
    assert backup_to_restore(backups, "2026-12-03 18:00:00+00")["label"] == "old"
    assert backup_to_restore(backups, "2026-12-03 19:00:00+01")["label"] == "old"
    assert backup_to_restore(backups, "2026-12-03 15:00:00+00")["label"] == "new"  # none before: pgBackRest's pick


def test_restored_server_sends_sql_on_stdin_never_on_the_command_line(monkeypatch):
    import subprocess
    from pathlib import Path

    from phasekit.db import restore

    seen: list[tuple[list[str], str | None]] = []

    def fake_run(argv, **kwargs):
        seen.append((argv, kwargs.get("input")))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(restore.subprocess, "run", fake_run)
    server = restore.RestoredServer(bin_dir=Path("/usr/lib/postgresql/15/bin"), socket_dir=Path("/tmp/s"), port=5,
                                    user="app", recovery=restore.Recovery(None, None, None))
    statement = "ALTER ROLE \"app\" PASSWORD 'very-secret-password'"
    server.psql(statement)
    (argv, stdin), = seen
    assert stdin == statement
    assert not [arg for arg in argv if "very-secret-password" in arg], argv
