"""The pieces every phasekit droplet shares, whichever component owns it.

One Ubuntu image, one way to create a droplet that survives config drift, one egress policy, one set of
monitoring alerts and one SSH rollout, so a fix to any of them lands in every phase that runs droplets.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_digitalocean as digitalocean
import pulumi_random as random

from components.backups import BACKUP_STATUS_PATH, BackupSpec
from components.compose_stack import DATA_LABEL, HostStack, StackSecrets, pack_bundle, render_bundle
from components.stateful import stateful_options

UBUNTU_IMAGE = "ubuntu-24-04-x64"
ALERT_WINDOW = "5m"
ALERT_THRESHOLDS: dict[str, tuple[str, float]] = {
    "cpu": ("v1/insights/droplet/cpu", 70),
    "memory": ("v1/insights/droplet/memory_utilization_percent", 80),
    "disk": ("v1/insights/droplet/disk_utilization_percent", 80),
}
"""Alert name -> (DigitalOcean metric, percent). Also phasekit's triggers for moving to the next phase.
DigitalOcean's disk metric is the root disk's; attached volumes are watched on the host (see data_host)."""

EVERYWHERE = ["0.0.0.0/0", "::/0"]
EGRESS: list[tuple[str, str]] = [("tcp", "53"), ("udp", "53"), ("udp", "123"), ("tcp", "80"), ("tcp", "443")]
"""Outbound (protocol, port): DNS, NTP, and HTTP(S) for packages, images and the app's API calls."""

ROLLOUT_SCRIPT = "\n".join([
    "set -eu",
    "cloud-init status --wait >/dev/null 2>&1 || true",
    "install -d -m 0755 /opt/phasekit",
    "base64 --decode | tar --extract --touch --directory /opt/phasekit",
    "/opt/phasekit/deploy.sh",
])
"""Runs as root over SSH. The bundle (a tar, base64) arrives on stdin, so secrets never appear in argv,
in ``user_data`` or in Pulumi's logs; on the droplet they are written to ``/opt/phasekit/secrets`` and
``/opt/phasekit/tls`` (root only), and the app's environment is, as with any container, visible to root
through ``docker inspect``."""


def droplet(name: str, *, parent: pulumi.Resource, region: str, size: str, vpc_id: pulumi.Input[str],
            ssh_key_fingerprints: Sequence[str], backups: bool, backup_plan: str, user_data: str,
            tags: Sequence[pulumi.Input[str]], volume_ids: Sequence[pulumi.Input[str]] | None = None,
            delete_before_replace: bool = True,
            opts: pulumi.ResourceOptions | None = None) -> digitalocean.Droplet:
    """An Ubuntu droplet with monitoring, IPv6 and (optionally) backups that ``pulumi up`` never replaces
    for a changed ``user_data`` or SSH key list: what changes with the app travels with the rollout."""
    return digitalocean.Droplet(
        name,
        image=UBUNTU_IMAGE,
        region=region,
        size=size,
        vpc_uuid=vpc_id,
        ssh_keys=list(ssh_key_fingerprints),
        backups=backups,
        backup_policy=(digitalocean.DropletBackupPolicyArgs(plan=backup_plan, weekday="SUN", hour=4)
                       if backups else None),
        monitoring=True,
        ipv6=True,
        graceful_shutdown=True,
        resize_disk=False,
        volume_ids=list(volume_ids) if volume_ids is not None else None,
        user_data=user_data,
        tags=list(tags),
        opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(
            parent=parent,
            # DigitalOcean replaces a droplet when either changes; the rollout carries app changes.
            ignore_changes=["user_data", "ssh_keys"],
            # A volume attaches to one droplet at a time, so a droplet holding one must go first.
            delete_before_replace=delete_before_replace,
        ), opts),
    )


def data_volume(name: str, *, parent: pulumi.Resource, region: str, size_gib: int,
                tags: Sequence[str], protect: bool) -> digitalocean.Volume:
    """The block volume holding PostgreSQL's data and Redis' persistence: ext4 labelled ``DATA_LABEL`` (the
    host mounts it by label), protected and retained on delete when ``protect``."""
    return digitalocean.Volume(
        name,
        region=region,
        size=size_gib,
        initial_filesystem_type="ext4",
        initial_filesystem_label=DATA_LABEL,
        description="PostgreSQL data and Redis persistence",
        tags=list(tags),
        opts=stateful_options(parent, protect),
    )


def egress_rules(*extra: digitalocean.FirewallOutboundRuleArgs) -> list[digitalocean.FirewallOutboundRuleArgs]:
    """``EGRESS`` and ICMP to anywhere, then ``extra`` (e.g. the app tier's way to its database)."""
    return [
        *[digitalocean.FirewallOutboundRuleArgs(protocol=protocol, port_range=port, destination_addresses=EVERYWHERE)
          for protocol, port in EGRESS],
        digitalocean.FirewallOutboundRuleArgs(protocol="icmp", destination_addresses=EVERYWHERE),
        *extra,
    ]


def ssh_rule(admin_cidrs: Sequence[str]) -> digitalocean.FirewallInboundRuleArgs:
    return digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range="22", source_addresses=list(admin_cidrs))


def monitor_alerts(name: str, *, parent: pulumi.Resource, droplet_ids: Sequence[pulumi.Input[str]],
                   emails: Sequence[str], label: str) -> list[digitalocean.MonitorAlert]:
    """One alert per ``ALERT_THRESHOLDS`` metric; DigitalOcean evaluates it for each droplet listed.

    No ``tags``: on an alert policy (as on a firewall) tags select droplets to watch, so phasekit's shared
    tags would pull every other stack's droplets in."""
    return [
        digitalocean.MonitorAlert(
            f"{name}-{alert}-alert",
            type=metric,
            compare="GreaterThan",
            value=percent,
            window=ALERT_WINDOW,
            entities=list(droplet_ids),
            alerts=digitalocean.MonitorAlertAlertsArgs(emails=list(emails)),
            description=f"{label}: {alert} above {percent:g}% for {ALERT_WINDOW}",
            enabled=True,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for alert, (metric, percent) in ALERT_THRESHOLDS.items()
    ]


@dataclass
class OffsiteBackupArgs:
    """Off-site backups of a droplet's PostgreSQL (pgBackRest, continuous WAL archiving) and Redis to a bucket."""

    spec: BackupSpec
    """The bucket, endpoint, schedules, retention and recovery point (``infra.backups.backup_spec``)."""

    access_key_id: pulumi.Input[str]
    """S3 access key id of the bucket (``BackupStore.access_key_id``)."""

    secret_access_key: pulumi.Input[str]
    """S3 secret access key (``BackupStore.secret_access_key``); a secret."""

    passphrase: pulumi.Input[str]
    """The key backups are encrypted with (``secrets.BACKUP_PASSPHRASE``); a secret. Delivered only with the
    SSH rollout, never in ``user_data``."""


BACKUP_ALERT_PERIOD = "10m"
"""How long the status URL must fail before the alert mails: two runs of the five-minute status timer."""

UPTIME_REGIONS = ["us_east", "eu_west"]
"""Where DigitalOcean checks the backup status URL from (two regions, so one region's trouble is not an alert)."""


def backup_status_alert(name: str, *, parent: pulumi.Resource, hostname: str, emails: Sequence[str],
                        label: str) -> tuple[digitalocean.UptimeCheck, digitalocean.UptimeAlert]:
    """A DigitalOcean uptime check on ``https://<hostname>BACKUP_STATUS_PATH`` and a ``down`` alert to ``emails``.

    The status file exists only while the newest backup is fresh and WAL archiving keeps the recovery point
    (``backup.sh status``, every 5 minutes); otherwise Caddy drops the connection on that path
    (``compose_stack.backup_status_error_route``), which reaches the check as Cloudflare's 5xx when proxied, or as
    a failed connection. A dead droplet also fails the check, which the CPU/memory alerts would not report.
    Unverified here: how DigitalOcean classifies each failure; a real ``down`` alert is the only proof."""
    check = digitalocean.UptimeCheck(
        f"{name}-backup-check",
        name=f"{label} backups",
        target=f"https://{hostname}{BACKUP_STATUS_PATH}",
        type="https",
        regions=list(UPTIME_REGIONS),
        enabled=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    alert = digitalocean.UptimeAlert(
        f"{name}-backup-alert",
        check_id=check.id,
        name=f"{label}: backups late or WAL archiving failing",
        type="down",
        period=BACKUP_ALERT_PERIOD,
        notifications=[digitalocean.UptimeAlertNotificationArgs(emails=list(emails))],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return check, alert


def backup_bundle_inputs(backups: OffsiteBackupArgs | None) -> dict[str, pulumi.Input[str]]:
    """``host_bundle``'s data-store keywords for the backup credentials (none without off-site backups)."""
    if backups is None:
        return {}
    return {"backup_access_key_id": backups.access_key_id, "backup_secret_access_key": backups.secret_access_key,
            "backup_passphrase": backups.passphrase}


def generated_password(name: str, parent: pulumi.Resource) -> random.RandomPassword:
    # Alphanumeric only: the value lands in URLs and config files where symbols would need escaping.
    return random.RandomPassword(name, length=32, special=False, opts=pulumi.ResourceOptions(parent=parent))


def rollout(name: str, *, parent: pulumi.Resource, host: pulumi.Input[str], bundle: pulumi.Input[str],
            ssh_private_key: pulumi.Input[str] | None,
            depends_on: Sequence[pulumi.Resource]) -> command.remote.Command:
    """Delivers a base64 tar bundle over SSH (stdin) and runs its ``deploy.sh``; re-runs when it changes."""
    return command.remote.Command(
        name,
        connection=command.remote.ConnectionArgs(host=host, user="root", private_key=ssh_private_key,
                                                 dial_error_limit=30),
        create=ROLLOUT_SCRIPT,
        update=ROLLOUT_SCRIPT,
        stdin=bundle,
        # The release command's output is how a failed migration gets diagnosed; deploy.sh prints no secret.
        logging="stdoutAndStderr",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def host_bundle(stack: HostStack, *, media_bucket_name: pulumi.Input[str],
                secret_env: Mapping[str, pulumi.Input[str]],
                origin_certificate_pem: pulumi.Input[str] | None,
                origin_private_key_pem: pulumi.Input[str] | None,
                registry_password: pulumi.Input[str] | None,
                **data_stores: pulumi.Input[str]) -> pulumi.Output[str]:
    """Every file a host running the app needs, secrets included, as a base64 tar in a secret Output (what
    ``rollout`` sends). ``data_stores`` are ``StackSecrets``' data-store fields: the passwords on a host
    that runs PostgreSQL and Redis, the URLs on one that reaches them elsewhere."""
    names, store_fields = list(secret_env), list(data_stores)

    def encode(values: list) -> str:
        bucket, cert, key, registry, *rest = values
        secrets = StackSecrets(
            media_bucket=bucket, origin_certificate_pem=cert, origin_private_key_pem=key, registry_password=registry,
            secret_env=dict(zip(names, rest[len(store_fields):], strict=True)),
            **dict(zip(store_fields, rest[:len(store_fields)], strict=True)),
        )
        return base64.b64encode(pack_bundle(render_bundle(stack, secrets))).decode()

    return pulumi.Output.secret(pulumi.Output.all(
        media_bucket_name, origin_certificate_pem, origin_private_key_pem, registry_password,
        *data_stores.values(), *[secret_env[name] for name in names],
    ).apply(encode))


def check_access(owner: str, *, ssh_admin_cidrs: Sequence[str], ssh_key_fingerprints: Sequence[str],
                 alert_emails: Sequence[str]) -> None:
    """Constructor checks every droplet component makes on who may log in and who hears about trouble."""
    if not ssh_admin_cidrs:
        raise ValueError(f"{owner}.ssh_admin_cidrs: at least one admin network is required")
    open_cidrs = [cidr for cidr in ssh_admin_cidrs if cidr.endswith("/0")]
    if open_cidrs:
        raise ValueError(f"{owner}.ssh_admin_cidrs: {open_cidrs[0]} would open SSH to the internet")
    if not ssh_key_fingerprints:
        raise ValueError(f"{owner}.ssh_key_fingerprints: at least one SSH key is required")
    if not alert_emails:
        raise ValueError(f"{owner}.alert_emails: at least one recipient is required")
