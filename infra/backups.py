"""Where the stack's ``backups`` config becomes a :class:`components.backups.BackupSpec`: the one place it does.

The bucket is the stack's own private R2 backups bucket, named like every other physical name
(``<project>-<stack>-backups``), and the endpoint is the account's R2 S3 endpoint, which Cloudflare documents as
``https://<ACCOUNT_ID>.r2.cloudflarestorage.com`` (developers.cloudflare.com/r2/api/s3/api/), region ``auto``.
"""

from __future__ import annotations

import pulumi

from components.backup_store import BackupStore, BackupStoreArgs, r2_endpoint
from components.backups import BackupSpec
from components.droplet_parts import OffsiteBackupArgs
from infra.config import StackConfig
from infra.naming import physical_name
from infra.stack_secrets import StackSecretInputs

BACKUP_CREDENTIALS_OUTPUT = "backupCredentials"
"""The secret stack output holding what a restore needs to reach the bucket: endpoint, bucket and S3 key pair
(``pulumi stack output --show-secrets backupCredentials``); the encryption passphrase is the user's own."""

BACKUPS_PURPOSE = "backups"
"""The ``purpose`` part of the backups bucket's physical name."""


def backups_bucket_name(project: str, stack: str) -> str:
    """The stack's backups bucket: ``<project>-<stack>-backups``, apart from the media bucket."""
    return physical_name(project, stack, BACKUPS_PURPOSE)


def backup_spec(config: StackConfig, project: str, stack: str) -> BackupSpec:
    """The stack's backups: its bucket and endpoint, retention, recovery point and schedules from
    ``config.backups``. Phase 3 has no host Redis to snapshot (ElastiCache keeps its own), so no Redis schedule."""
    backups = config.backups
    return BackupSpec(
        bucket=backups_bucket_name(project, stack),
        endpoint=r2_endpoint(config.edge.account_id),
        retention_full=backups.retention_full,
        retention_diff=backups.retention_diff,
        recovery_point_seconds=backups.recovery_point_minutes * 60,
        full_schedule=backups.full_schedule,
        diff_schedule=backups.diff_schedule,
        redis_schedule=backups.redis_schedule if config.phase in (1, 2) else None,
    )


def build_backup_store(config: StackConfig, project: str, stack: str) -> BackupStore:
    """The stack's backups bucket and its scoped credentials (every phase), exported as ``backupCredentials``."""
    store = BackupStore("backups", BackupStoreArgs(
        account_id=config.edge.account_id,
        bucket_name=backups_bucket_name(project, stack),
        protect=config.protect,
        redis_keep_days=config.backups.redis_keep_days,
    ))
    pulumi.export(BACKUP_CREDENTIALS_OUTPUT, pulumi.Output.secret(pulumi.Output.all(
        store.endpoint, store.bucket_name, store.access_key_id, store.secret_access_key,
    ).apply(lambda values: dict(zip(("endpoint", "bucket", "accessKeyId", "secretAccessKey"), values, strict=True)))))
    return store


def offsite_backup_args(config: StackConfig, secrets: StackSecretInputs, store: BackupStore, project: str,
                        stack: str) -> OffsiteBackupArgs:
    """What a droplet that runs PostgreSQL needs to back it up off site (phases 1 and 2)."""
    return OffsiteBackupArgs(
        spec=backup_spec(config, project, stack),
        access_key_id=store.access_key_id,
        secret_access_key=store.secret_access_key,
        passphrase=secrets.backup_passphrase,
    )
