"""Shared builders for component tests: valid args that each test varies in one place.

What mocks cannot prove (true for every test file here): that the providers accept these inputs, what
they compute, and how they diff against existing state. A real ``pulumi preview`` shows those.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.backups import BackupSpec
from components.cloudflare_edge import CloudflareEdgeArgs, cloudflare_ip_ranges
from components.compose_stack import AppSpec, HostStack, StackSecrets
from components.droplet_parts import OffsiteBackupArgs
from components.processes import ProcessSpec, ScheduleSpec
from components.single_vps import SingleVpsArgs
from components.split_vps import SplitVpsArgs
from components.testing import CLOUDFLARE_IP_RANGES
from components.tuning import Machine

CLOUDFLARE_CIDRS = [*CLOUDFLARE_IP_RANGES["ipv4Cidrs"], *CLOUDFLARE_IP_RANGES["ipv6Cidrs"]]

APP = AppSpec(
    image="ghcr.io/acme/shop:1.4.2",
    port=8000,
    health_path="/healthz",
    workers=2,
    db_pool_size=5,
    env={"LOG_LEVEL": "info"},
    secret_env_names=("SECRET_KEY_BASE",),
    release_command=("python", "manage.py", "migrate"),
)

WORKER_CONFIG = {"command": ["celery", "-A", "shop", "worker"], "count": 2, "memory": "768Mi",
                 "stopTimeoutSeconds": 60}
SCHEDULES_CONFIG = {
    "refresh-trending": {"cron": "*/15 * * * *", "command": ["python", "manage.py", "refresh_trending"],
                         "timeoutSeconds": 600},
    "expire-sessions": {"cron": "30 4 * * *", "command": ["python", "manage.py", "clearsessions"]},
}
"""A worker and two schedules, as a stack file's ``phasekit:app`` writes them."""

WORKER = ProcessSpec(name="worker", command=("celery", "-A", "shop", "worker"), count=2, memory_mib=768,
                     stop_timeout_seconds=60)
SCHEDULES = (
    ScheduleSpec(name="refresh-trending", cron="*/15 * * * *", command=("python", "manage.py", "refresh_trending"),
                 timeout_seconds=600),
    ScheduleSpec(name="expire-sessions", cron="30 4 * * *", command=("python", "manage.py", "clearsessions")),
)
"""``WORKER_CONFIG`` and ``SCHEDULES_CONFIG`` as the components take them."""


def project_with_processes(folder: Path, root: Path, stacks: Sequence[str], **worker: Any) -> Path:
    """A project folder under ``folder`` holding ``root``'s Pulumi.yaml and, for each of ``stacks``, the committed stack
    file with ``WORKER_CONFIG`` (updated by ``worker``) and ``SCHEDULES_CONFIG`` added, as a user would write them."""
    project = folder / "project"
    project.mkdir()
    shutil.copy(root / "Pulumi.yaml", project / "Pulumi.yaml")
    for stack in stacks:
        document = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
        document["config"]["phasekit:app"]["processes"] = {"worker": {**WORKER_CONFIG, **worker}}
        document["config"]["phasekit:app"]["schedules"] = copy.deepcopy(SCHEDULES_CONFIG)
        (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return project


def with_processes(raw: dict, **worker: Any) -> dict:
    """A stack file's config (``read_stack_file``) with ``WORKER_CONFIG`` (updated by ``worker``) and
    ``SCHEDULES_CONFIG`` added to ``phasekit:app``."""
    raw = copy.deepcopy(raw)
    app = raw["phasekit:app"]
    app["processes"] = {"worker": {**WORKER_CONFIG, **worker}}
    app["schedules"] = copy.deepcopy(SCHEDULES_CONFIG)
    return raw


HOST_STACK = HostStack(app=APP, machine=Machine(vcpus=2, memory_mib=4096), hostname="app.example.com",
                       tls_mode="origin-certificate")
STACK_SECRETS = StackSecrets(db_password="dbpw", redis_password="redispw", secret_env={"SECRET_KEY_BASE": "skb"},
                             media_bucket="phasekit-test-media", origin_certificate_pem="CERT",
                             origin_private_key_pem="KEY")


BACKUP_SPEC = BackupSpec(bucket="phasekit-test-backups", endpoint="01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com")
BACKUP_PASSPHRASE = "correct-horse-battery-staple"
BACKUP_SECRETS = {"backup_access_key_id": "token-id", "backup_secret_access_key": "a" * 64,
                  "backup_passphrase": BACKUP_PASSPHRASE}
"""``StackSecrets``/``DataHostSecrets`` fields for a host with off-site backups."""


def offsite_args(**overrides: Any) -> OffsiteBackupArgs:
    args = OffsiteBackupArgs(spec=BACKUP_SPEC, access_key_id="token-id",
                             secret_access_key=pulumi.Output.secret("a" * 64),
                             passphrase=pulumi.Output.secret(BACKUP_PASSPHRASE))
    return replace(args, **overrides)


def vps_args(**overrides: Any) -> SingleVpsArgs:
    args = SingleVpsArgs(
        region="nyc3",
        size="s-2vcpu-4gb",
        machine=Machine(vcpus=2, memory_mib=4096),
        app=APP,
        hostname="app.example.com",
        ssh_admin_cidrs=["203.0.113.0/24"],
        ssh_key_fingerprints=["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"],
        alert_emails=["ops@example.com"],
        web_source_cidrs=cloudflare_ip_ranges(),
        media_bucket_name="phasekit-test-media",
        secret_env={"SECRET_KEY_BASE": pulumi.Output.secret("s3cr3t-base")},
        origin_certificate_pem="-----BEGIN CERTIFICATE-----\nORIGIN\n-----END CERTIFICATE-----\n",
        origin_private_key_pem=pulumi.Output.secret("-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"),
        project_name="phasekit-test-app",
        tags={"project": "phasekit", "stack": "test", "phase": "1", "managed-by": "phasekit"},
    )
    return replace(args, **overrides)


def split_args(**overrides: Any) -> SplitVpsArgs:
    args = SplitVpsArgs(
        region="nyc3",
        app=APP,
        hostname="app.example.com",
        app_size="s-2vcpu-4gb",
        app_machine=Machine(vcpus=2, memory_mib=4096),
        db_size="s-4vcpu-8gb",
        db_machine=Machine(vcpus=4, memory_mib=8192),
        ssh_admin_cidrs=["203.0.113.0/24"],
        ssh_key_fingerprints=["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"],
        alert_emails=["ops@example.com"],
        web_source_cidrs=cloudflare_ip_ranges(),
        media_bucket_name="phasekit-test-media",
        app_tier_tag="phasekit-test-app-tier",
        app_count=2,
        secret_env={"SECRET_KEY_BASE": pulumi.Output.secret("s3cr3t-base")},
        origin_certificate_pem="-----BEGIN CERTIFICATE-----\nORIGIN\n-----END CERTIFICATE-----\n",
        origin_private_key_pem=pulumi.Output.secret("-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"),
        project_name="phasekit-test-app",
        tags={"project": "phasekit", "stack": "test", "phase": "2", "managed-by": "phasekit"},
    )
    return replace(args, **overrides)


def edge_args(**overrides: Any) -> CloudflareEdgeArgs:
    args = CloudflareEdgeArgs(
        zone_id="023e105f4ecef8ad9ca31a8372d0c353",
        account_id="01a7362d577a6c3019a474fd6f485823",
        hostname="app.example.com",
        origin="198.51.100.7",
        media_bucket_name="phasekit-test-media",
    )
    return replace(args, **overrides)

