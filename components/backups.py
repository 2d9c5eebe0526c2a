"""Off-site backups for the droplet phases (1 and 2): pure renderers, no Pulumi resources.

What it renders, and where each file lands on the database host (``STACK_DIR`` = /opt/phasekit):

- ``postgres/Dockerfile``: the pinned ``postgres`` image plus pgBackRest (from apt.postgresql.org, which the
  official image already lists), built on the host by the rollout;
- ``postgres/pgbackrest.conf`` (public, mounted at /etc/pgbackrest/pgbackrest.conf): the S3 repository in the
  stack's private backups bucket, retention, encryption type, asynchronous WAL archiving with a spool on the data
  volume;
- ``secrets/pgbackrest.conf`` (0400, uid 999, mounted at /etc/pgbackrest/conf.d/secrets.conf, which pgBackRest
  reads by default): the bucket's S3 key pair and the encryption passphrase;
- ``secrets/r2-curl.conf`` (0400 root): the same key pair as a curl config, for the host-side Redis upload
  (``curl --aws-sigv4``; credentials never on a command line);
- ``backup.sh`` (host): ``init``, ``has-backup``, ``full``, ``diff``, ``redis``, ``status``;
- systemd units ``phasekit-backup-{full,diff,redis,status}.{service,timer}`` under /etc/systemd/system;
- PostgreSQL settings: ``archive_mode``, ``archive_command`` (pgBackRest ``archive-push``), ``archive_timeout``
  (half the recovery point, so a quiet database still ships a segment well inside it), ``wal_level=replica``.

Why pgBackRest rather than WAL-G (both do S3-compatible storage, compression, encryption, PITR): pgBackRest is
packaged in Debian and in PGDG (WAL-G ships only as GitHub release binaries); its repository keeps a checksum for
every file and its ``verify`` command checks them, which the restore drill uses; it speaks S3 natively with
``repo1-s3-region=auto`` (what R2 expects); it encrypts client side (``repo1-cipher-type=aes-256-cbc``); it keeps
full/differential backups by count and expires the WAL they need with them; and ``archive-async`` with a spool keeps
``archive_command`` fast. Option names: https://pgbackrest.org/configuration.html (2.45, Debian bookworm).

Repository layout in the bucket: ``pgbackrest/`` (pgBackRest, stanza ``app``), ``redis/<UTC stamp>.rdb.enc``
(``openssl enc -aes-256-cbc -pbkdf2 -iter 200000`` with the same passphrase), ``logical/`` (phase 3's CronJob).

Stateful warning: the bucket is the only copy that outlives the droplet; the encryption passphrase is the user's
``secrets.BACKUP_PASSPHRASE``: lose it and every backup is unreadable.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from components.cloud_init import systemd_unit
from components.compose_stack import DATA_MOUNT, DB_NAME, DB_USER, STACK_DIR

BACKUP_STATUS_DIR = "status"
"""Folder under STACK_DIR where ``backup.sh status`` keeps ``backup.txt`` while everything is in order."""
BACKUP_STATUS_PATH = "/.well-known/phasekit/backup"
"""URL path where Caddy serves the status file. While it is missing Caddy answers nothing: it drops the connection
(``proxy_config.backup_status_error_route``, ``data_host.status_server_config``), and Cloudflare's proxy answers the
uptime check with a 5xx instead. Whether DigitalOcean's check counts that as down is verified only on a real deploy
(docs/backups.md, "Check that the alert reaches you")."""
BACKUP_STATUS_FILE = "backup.txt"
REDIS_STAMP_FILE = "redis-last-success"
"""In BACKUP_STATUS_DIR: the UTC epoch of the last Redis snapshot whose upload was read back and matched
(written only then; ``status`` needs it younger than ``max_backup_age_hours`` when Redis is backed up)."""

PGBACKREST_CONF_PATH = "/etc/pgbackrest/pgbackrest.conf"
PGBACKREST_SECRETS_PATH = "/etc/pgbackrest/conf.d/secrets.conf"
"""pgBackRest reads every ``*.conf`` in /etc/pgbackrest/conf.d (its default ``config-include-path``)."""

REDIS_PREFIX = "redis"
"""Objects ``redis/<UTC stamp>.rdb.enc`` in the backups bucket."""
OPENSSL_ENC_ARGS = ("-aes-256-cbc", "-pbkdf2", "-iter", "200000")
"""How Redis snapshots and logical copies are encrypted (``openssl enc``; decrypt with ``-d`` and the same flags)."""

UNIT_PREFIX = "phasekit-backup"
BACKUP_KINDS = ("full", "diff", "redis", "status")

_SINGLE_LINE = re.compile(r"[^\n\r]*")


@dataclass(frozen=True)
class BackupSpec:
    """Everything the renderers need to know about one stack's backups (built by ``infra.backups.backup_spec``)."""

    bucket: str
    """The private backups bucket (R2, S3 API)."""
    endpoint: str
    """S3 endpoint host without scheme, e.g. ``<account_id>.r2.cloudflarestorage.com``."""
    stanza: str = "app"
    """pgBackRest stanza (one per database cluster)."""
    repo_path: str = "/pgbackrest"
    """Prefix of the pgBackRest repository inside the bucket."""
    region: str = "auto"
    """S3 region; R2 takes ``auto``."""
    retention_full: int = 4
    """Full backups kept (weekly by default: four weeks)."""
    retention_diff: int = 7
    """Differential backups kept (daily by default: a week)."""
    recovery_point_seconds: int = 300
    """The most committed work a restore may lose (RPO); ``archive_timeout`` is half of it."""
    full_schedule: str = "Sun *-*-* 03:30:00"
    """systemd OnCalendar of the full backup."""
    diff_schedule: str = "Mon..Sat *-*-* 03:30:00"
    """systemd OnCalendar of the differential backup."""
    redis_schedule: str | None = "*-*-* 04:00:00"
    """systemd OnCalendar of the Redis snapshot; None: no Redis backup (no Redis units)."""
    storage_port: int = 443
    """HTTPS port of the endpoint (tests and local restores only)."""
    ca_file: str | None = None
    """CA bundle that signs the endpoint's certificate (tests and local restores only; None: system CAs)."""
    max_backup_age_hours: int = 30
    """``status`` fails when the newest PostgreSQL backup, or the last verified Redis snapshot, is older: the
    longest gap the default schedules leave between two backups (a day) plus time for one to finish. Fixed, not
    derived from the schedules (OnCalendar expressions are not parsed here): a ``full_schedule``/``diff_schedule``
    or ``redis_schedule`` that produces fewer than one backup a day makes ``status`` fail and alert."""

    def __post_init__(self) -> None:
        for name in ("bucket", "endpoint", "stanza", "repo_path", "region", "full_schedule", "diff_schedule"):
            value = getattr(self, name)
            if not value or not _SINGLE_LINE.fullmatch(value):
                raise ValueError(f"BackupSpec.{name} must be a non-empty single line, got {value!r}")
        if self.recovery_point_seconds < 2:
            raise ValueError(f"BackupSpec.recovery_point_seconds must be at least 2, got {self.recovery_point_seconds}")

    @property
    def archive_timeout_seconds(self) -> int:
        """Half the recovery point: a segment is switched and shipped well before the bound is reached."""
        return self.recovery_point_seconds // 2

    @property
    def endpoint_url(self) -> str:
        """``https://host[:port]`` as curl needs it (the port only when it is not 443)."""
        return f"https://{self.endpoint}" + ("" if self.storage_port == 443 else f":{self.storage_port}")


def postgres_archive_settings(spec: BackupSpec, *, config_path: str | None = None) -> dict[str, str]:
    """postgresql.conf settings for continuous archiving. ``config_path``: a non-default pgbackrest.conf (tests)."""
    config = f" --config={config_path}" if config_path else ""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"pgbackrest{config} --stanza={spec.stanza} archive-push %p",
        "archive_timeout": f"{spec.archive_timeout_seconds}s",
    }


def render_pgbackrest_conf(spec: BackupSpec, *, pg_path: str = "/var/lib/postgresql/data",
                           socket_path: str = "/var/run/postgresql", spool_path: str = "/var/spool/pgbackrest",
                           log_path: str = "/var/log/pgbackrest", lock_path: str = "/tmp/pgbackrest",
                           pg_user: str = DB_USER, pg_port: int = 5432) -> str:
    """The public pgbackrest.conf (no credentials: those are in ``render_pgbackrest_secrets``).

    ``pg_user``: the superuser pgBackRest connects as (the official image makes ``POSTGRES_USER``, ``app``, the
    superuser; there is no ``postgres`` role).

    ``archive-async`` does not weaken what ``archive_command``'s success means: pgBackRest's user guide
    (https://pgbackrest.org/user-guide.html#async-archiving, "Asynchronous Archiving") says WAL segments go to the
    repository straight from pg_wal and "success is only returned by the archive_command when the WAL segment has
    been safely stored in the archive"; the spool holds only status files. (The exception,
    ``archive-push-queue-max``, which acknowledges and drops WAL, is left unset here.)"""
    storage = [f"repo1-storage-port={spec.storage_port}"] if spec.storage_port != 443 else []
    if spec.ca_file:
        storage.append(f"repo1-storage-ca-file={spec.ca_file}")
    lines = [
        "# Rendered by phasekit: the off-site repository in the stack's private backups bucket.",
        "# Credentials and the encryption passphrase are in conf.d/secrets.conf.",
        "[global]",
        "repo1-type=s3",
        f"repo1-s3-bucket={spec.bucket}",
        f"repo1-s3-endpoint={spec.endpoint}",
        f"repo1-s3-region={spec.region}",
        "repo1-s3-uri-style=path",
        f"repo1-path={spec.repo_path}",
        *storage,
        "repo1-cipher-type=aes-256-cbc",
        "repo1-retention-full-type=count",
        f"repo1-retention-full={spec.retention_full}",
        f"repo1-retention-diff={spec.retention_diff}",
        "# Small files travel in bundles: fewer objects, fewer (billed) requests.",
        "repo1-bundle=y",
        "compress-type=zst",
        "process-max=2",
        "start-fast=y",
        "# Asynchronous archive-push: a background process ships ready segments in parallel straight from pg_wal,",
        "# but archive_command still reports success only once its segment is stored in the repository.",
        "archive-async=y",
        f"spool-path={spool_path}",
        f"log-path={log_path}",
        f"lock-path={lock_path}",
        "log-level-console=info",
        "log-level-file=info",
        "",
        f"[{spec.stanza}]",
        f"pg1-path={pg_path}",
        f"pg1-socket-path={socket_path}",
        f"pg1-port={pg_port}",
        f"pg1-user={pg_user}",
    ]
    return "\n".join(lines) + "\n"


def render_pgbackrest_secrets(*, access_key_id: str, secret_access_key: str, cipher_pass: str) -> str:
    """conf.d/secrets.conf: the repository's S3 key pair and the encryption passphrase (a 0400 file, never argv)."""
    values = {"repo1-s3-key": access_key_id, "repo1-s3-key-secret": secret_access_key,
              "repo1-cipher-pass": cipher_pass}
    for name, value in values.items():
        if not value or not _SINGLE_LINE.fullmatch(value) or value != value.strip():
            raise ValueError(f"{name} must be a non-empty single line without surrounding spaces")
    return "[global]\n" + "".join(f"{name}={value}\n" for name, value in values.items())


def render_r2_curl_config(access_key_id: str, secret_access_key: str) -> str:
    """A curl config file (``--config``) carrying the S3 key pair as ``user``, for ``curl --aws-sigv4``."""
    for name, value in (("access_key_id", access_key_id), ("secret_access_key", secret_access_key)):
        if not value or not _SINGLE_LINE.fullmatch(value) or ":" in value and name == "access_key_id":
            raise ValueError(f"{name} must be a non-empty single line (the key id without ':')")
    user = f"{access_key_id}:{secret_access_key}".replace("\\", "\\\\").replace('"', '\\"')
    return f'user = "{user}"\n'


def render_postgres_dockerfile(base_image: str) -> str:
    """The database image: ``base_image`` (the pinned official postgres image) plus pgBackRest and the folders it
    writes, owned by the image's postgres user. ca-certificates: pgBackRest checks the endpoint's certificate."""
    if not base_image or not _SINGLE_LINE.fullmatch(base_image) or " " in base_image:
        raise ValueError(f"base_image must be one image reference, got {base_image!r}")
    return (
        "# Rendered by phasekit: the official image plus pgBackRest (from apt.postgresql.org, already listed).\n"
        f"FROM {base_image}\n"
        "RUN apt-get update \\\n"
        " && apt-get install -y --no-install-recommends pgbackrest ca-certificates \\\n"
        " && rm -rf /var/lib/apt/lists/* \\\n"
        " && install -d -o postgres -g postgres -m 0750 /var/log/pgbackrest /var/spool/pgbackrest /tmp/pgbackrest\n"
    )


def backup_units(spec: BackupSpec) -> dict[str, str]:
    """systemd units (file name -> content): one oneshot service and one timer per backup kind.
    Redis units only when ``spec.redis_schedule`` is set. ``status`` runs every five minutes."""
    schedules = {"full": spec.full_schedule, "diff": spec.diff_schedule, "redis": spec.redis_schedule,
                 "status": "*:0/5"}
    descriptions = {
        "full": "full PostgreSQL backup to the off-site bucket",
        "diff": "differential PostgreSQL backup to the off-site bucket",
        "redis": "Redis snapshot to the off-site bucket",
        "status": "check backups and WAL archiving, publish the status file",
    }
    units: dict[str, str] = {}
    for kind in BACKUP_KINDS:
        schedule = schedules[kind]
        if schedule is None:
            continue
        name = f"{UNIT_PREFIX}-{kind}"
        units[f"{name}.service"] = systemd_unit({
            "Unit": {"Description": f"phasekit: {descriptions[kind]}", "Requires": "docker.service",
                     "After": "docker.service"},
            "Service": {"Type": "oneshot", "UMask": "0077", "ExecStart": f"{STACK_DIR}/backup.sh {kind}"},
        })
        # Persistent: a run missed while the droplet was off happens at boot. The random delay spreads the
        # backup load a little; status must keep its five-minute rhythm, so it gets none.
        timer = {"OnCalendar": schedule}
        if kind != "status":
            timer |= {"Persistent": "true", "RandomizedDelaySec": "10m"}
        units[f"{name}.timer"] = systemd_unit({
            "Unit": {"Description": f"phasekit: {descriptions[kind]}"},
            "Timer": timer,
            "Install": {"WantedBy": "timers.target"},
        })
    return units


_BACKUP_SCRIPT = r"""#!/usr/bin/env bash
# Rendered by phasekit: off-site backups of this host's PostgreSQL and Redis.
#   backup.sh init     create the pgBackRest stanza (idempotent; the rollout runs it) and check archiving;
#                      no backup (the rollout starts the first full one asynchronously, see has-backup)
#   backup.sh has-backup  exit 0 when the repository holds at least one backup, 1 when it holds none
#                      (2 when the repository cannot be read)
#   backup.sh full     full PostgreSQL backup            (phasekit-backup-full.timer)
#   backup.sh diff     differential PostgreSQL backup    (phasekit-backup-diff.timer)
#   backup.sh redis    Redis RDB snapshot, encrypted, uploaded to the bucket and read back
#                      (phasekit-backup-redis.timer); only then status/@REDIS_STAMP_FILE@ gets the UTC epoch
#   backup.sh status   publish status/backup.txt while backups (and, with Redis backups, the last verified
#                      snapshot) are fresh and WAL archiving keeps the recovery point; remove it otherwise
#                      (Caddy then drops the connection on the status URL and the uptime check alerts)
#
# Hooks (tests run this script where Docker is not available; production leaves them unset):
#   PHASEKIT_STACK_DIR  stack folder (default @STACK_DIR@)
#   PHASEKIT_WORK_DIR   scratch space for the Redis snapshot (default @DATA_MOUNT@)
#   PHASEKIT_PGBACKREST executable run instead of pgbackrest in the db container (same arguments)
#   PHASEKIT_PSQL       executable run instead of psql in the db container (same arguments)
#   PHASEKIT_REDIS_CLI  executable run instead of redis-cli in the redis container (same arguments)
#   PHASEKIT_NOW        the current time in epoch seconds (status only)
set -euo pipefail
umask 077

STACK_DIR="${PHASEKIT_STACK_DIR:-@STACK_DIR@}"
WORK_DIR="${PHASEKIT_WORK_DIR:-@DATA_MOUNT@}"
SECRETS_DIR="$STACK_DIR/secrets"
STATUS_DIR="$STACK_DIR/@STATUS_DIR@"
STATUS_FILE="$STATUS_DIR/@STATUS_FILE@"
STANZA=@STANZA@
BUCKET_URL=@BUCKET_URL@
CA_FILE=@CA_FILE@
RECOVERY_POINT_SECONDS=@RECOVERY_POINT_SECONDS@
MAX_BACKUP_AGE_SECONDS=@MAX_BACKUP_AGE_SECONDS@
REDIS_STAMP="$STATUS_DIR/@REDIS_STAMP_FILE@"
REDIS_BACKED_UP=@REDIS_BACKED_UP@

compose() {
  docker compose --file "$STACK_DIR/compose.yaml" "$@"
}

run_pgbackrest() {
  if [[ -n "${PHASEKIT_PGBACKREST:-}" ]]; then
    "$PHASEKIT_PGBACKREST" "$@"
  else
    compose exec -T --user postgres db pgbackrest "$@"
  fi
}

run_psql() {
  if [[ -n "${PHASEKIT_PSQL:-}" ]]; then
    "$PHASEKIT_PSQL" "$@"
  else
    compose exec -T db psql --username @DB_USER@ --dbname @DB_NAME@ "$@"
  fi
}

run_redis_cli() {
  if [[ -n "${PHASEKIT_REDIS_CLI:-}" ]]; then
    "$PHASEKIT_REDIS_CLI" "$@"
  else
    # The password travels in the container's environment, never on a command line.
    # shellcheck disable=SC2016
    compose exec -T redis sh -c 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" exec redis-cli "$@"' \
      redis-cli "$@"
  fi
}

sql_value() {
  run_psql -X -A -t -v ON_ERROR_STOP=1 -c "$1"
}

log() {
  echo "backup.sh: $*" >&2
}

init() {
  local attempt
  # stanza-create waits for no one: the asynchronous archive-push may hold the stanza's lock for a moment.
  for attempt in 1 2 3 4 5; do
    if run_pgbackrest --stanza="$STANZA" stanza-create; then
      break
    elif (( attempt == 5 )); then
      return 1
    fi
    sleep 3
  done
  # A fresh cluster whose system-id differs from the stanza's (an empty initdb on a new volume) fails here or in
  # stanza-create: that refusal is what keeps it from archiving over the stack's backups.
  run_pgbackrest --stanza="$STANZA" check
}

# A full backup takes as long as the database is large: the rollout asks this and starts one asynchronously.
has_backup() {
  local info
  if ! info="$(run_pgbackrest --stanza="$STANZA" --output=json info)"; then
    log "cannot read the backup repository (pgbackrest info failed)"
    return 2
  fi
  grep -q '"label"' <<< "$info"
}

postgres_backup() {
  run_pgbackrest --stanza="$STANZA" --type="$1" backup
  run_pgbackrest --stanza="$STANZA" info
}

REDIS_SCRATCH=""
trap 'if [[ -n "$REDIS_SCRATCH" ]]; then rm -rf -- "$REDIS_SCRATCH"; fi' EXIT

redis_backup() {
  local stamp scratch object curl_ca=()
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  object="@REDIS_PREFIX@/$stamp.rdb.enc"
  scratch="$(mktemp -d -p "$WORK_DIR" phasekit-redis-backup.XXXXXX)"
  REDIS_SCRATCH="$scratch"
  run_redis_cli --rdb - > "$scratch/dump.rdb"
  if [[ ! -s "$scratch/dump.rdb" ]]; then
    log "redis-cli returned an empty snapshot"
    return 1
  fi
  openssl enc @OPENSSL_ENC_ARGS@ -salt -pass "file:$SECRETS_DIR/backup_passphrase" \
    -in "$scratch/dump.rdb" -out "$scratch/dump.rdb.enc"
  if [[ -n "$CA_FILE" ]]; then
    curl_ca=(--cacert "$CA_FILE")
  fi
  # S3 and R2 require x-amz-content-sha256; curl >= 7.87 signs with the value given here (curl PR #9804;
  # Ubuntu 24.04 has 8.5), and the real hash lets the server reject a damaged upload.
  curl --fail --silent --show-error --config "$SECRETS_DIR/r2-curl.conf" "${curl_ca[@]}" \
    --aws-sigv4 "aws:amz:@REGION@:s3" \
    --header "x-amz-content-sha256: $(sha256sum "$scratch/dump.rdb.enc" | cut -d ' ' -f 1)" \
    --upload-file "$scratch/dump.rdb.enc" "$BUCKET_URL/$object"
  # Read the object back: only a copy the bucket returns intact counts as a backup.
  curl --fail --silent --show-error --config "$SECRETS_DIR/r2-curl.conf" "${curl_ca[@]}" \
    --aws-sigv4 "aws:amz:@REGION@:s3" --output "$scratch/readback.enc" "$BUCKET_URL/$object"
  if ! cmp --silent "$scratch/dump.rdb.enc" "$scratch/readback.enc"; then
    log "the uploaded $object differs from the snapshot sent"
    return 1
  fi
  mkdir -p "$STATUS_DIR"
  date -u +%s > "$REDIS_STAMP.tmp"
  mv -f "$REDIS_STAMP.tmp" "$REDIS_STAMP"
  log "uploaded and verified $object ($(stat -c %s "$scratch/dump.rdb.enc") bytes)"
}

# Prints the problem and returns 1 when the last verified Redis snapshot is missing or too old.
check_redis() {
  local now="$1" stamp
  if [[ ! -s "$REDIS_STAMP" ]]; then
    echo "no verified Redis backup yet ($REDIS_STAMP missing)"
    return 1
  fi
  stamp="$(< "$REDIS_STAMP")"
  if [[ ! "$stamp" =~ ^[0-9]+$ ]]; then
    echo "unreadable $REDIS_STAMP"
    return 1
  fi
  if (( now - stamp > MAX_BACKUP_AGE_SECONDS )); then
    echo "newest Redis backup is $(( (now - stamp) / 3600 )) h old (limit $(( MAX_BACKUP_AGE_SECONDS / 3600 )) h)"
    return 1
  fi
}

# Prints the problem and returns 1 when backups are not in order.
check_backups() {
  local now="$1" info newest archiver archived failed waiting
  # Inside `if`, errexit is off: every command whose failure matters is checked by hand.
  if ! info="$(run_pgbackrest --stanza="$STANZA" --output=json info)"; then
    echo "cannot read the backup repository (pgbackrest info failed)"
    return 1
  fi
  # Each backup in the JSON carries "timestamp":{"start":N,"stop":N}; the newest stop is the newest backup.
  newest="$(grep -o '"stop":[0-9]*' <<< "$info" | cut -d : -f 2 | sort -n | tail -n 1)"
  if [[ -z "$newest" ]]; then
    echo "no backup in the repository"
    return 1
  fi
  if (( now - newest > MAX_BACKUP_AGE_SECONDS )); then
    echo "newest backup is $(( (now - newest) / 3600 )) h old (limit $(( MAX_BACKUP_AGE_SECONDS / 3600 )) h)"
    return 1
  fi
  if ! archiver="$(sql_value "SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0) || ' ' ||
    coalesce(extract(epoch FROM last_failed_time)::bigint, 0) FROM pg_stat_archiver")"; then
    echo "cannot query PostgreSQL's WAL archiver"
    return 1
  fi
  read -r archived failed <<< "$archiver"
  if (( failed > archived )); then
    echo "WAL archiving is failing (last failure after the last success)"
    return 1
  fi
  # Segments PostgreSQL has finished but not yet seen archived: the oldest bounds the recovery point.
  if ! waiting="$(sql_value "SELECT coalesce(min(extract(epoch FROM
    (pg_stat_file('pg_wal/archive_status/' || f)).modification))::bigint, 0)
    FROM pg_ls_dir('pg_wal/archive_status') AS f WHERE f LIKE '%.ready'")"; then
    echo "cannot list the WAL segments waiting to be archived"
    return 1
  fi
  if (( waiting > 0 && now - waiting > RECOVERY_POINT_SECONDS )); then
    echo "a WAL segment has waited $(( now - waiting )) s to be archived (recovery point ${RECOVERY_POINT_SECONDS} s)"
    return 1
  fi
  if [[ "$REDIS_BACKED_UP" == yes ]] && ! check_redis "$now"; then
    return 1
  fi
  echo "ok newest-backup=$(date -u -d "@$newest" +%Y-%m-%dT%H:%M:%SZ)" \
    "last-archived=$(date -u -d "@$archived" +%Y-%m-%dT%H:%M:%SZ)"
}

status() {
  local now report
  now="${PHASEKIT_NOW:-$(date +%s)}"
  mkdir -p "$STATUS_DIR"
  chmod 0755 "$STATUS_DIR"
  if report="$(check_backups "$now")"; then
    printf '%s\n' "$report" > "$STATUS_FILE.tmp"
    chmod 0644 "$STATUS_FILE.tmp"
    mv -f "$STATUS_FILE.tmp" "$STATUS_FILE"
    echo "$report"
  else
    rm -f "$STATUS_FILE"
    log "NOT OK: $report"
    return 1
  fi
}

case "${1:-}" in
  init) init ;;
  has-backup) has_backup ;;
  full|diff) postgres_backup "$1" ;;
  redis) redis_backup ;;
  status) status ;;
  *)
    echo "usage: backup.sh init|has-backup|full|diff|redis|status" >&2
    exit 2
    ;;
esac
"""


def render_backup_script(spec: BackupSpec) -> str:
    """The host's backup.sh (see its header for the subcommands and the test hooks)."""
    bucket_url = f"{spec.endpoint_url}/{spec.bucket}"
    values = {
        "STACK_DIR": STACK_DIR, "DATA_MOUNT": DATA_MOUNT, "STATUS_DIR": BACKUP_STATUS_DIR,
        "STATUS_FILE": BACKUP_STATUS_FILE, "STANZA": shlex.quote(spec.stanza), "BUCKET_URL": shlex.quote(bucket_url),
        "CA_FILE": shlex.quote(spec.ca_file or ""), "RECOVERY_POINT_SECONDS": str(spec.recovery_point_seconds),
        "MAX_BACKUP_AGE_SECONDS": str(spec.max_backup_age_hours * 3600), "DB_USER": DB_USER, "DB_NAME": DB_NAME,
        "REDIS_PREFIX": REDIS_PREFIX, "OPENSSL_ENC_ARGS": " ".join(OPENSSL_ENC_ARGS), "REGION": spec.region,
        "REDIS_STAMP_FILE": REDIS_STAMP_FILE, "REDIS_BACKED_UP": "yes" if spec.redis_schedule else "no",
    }
    return re.sub(r"@([A-Z_]+)@", lambda match: values[match.group(1)], _BACKUP_SCRIPT)
