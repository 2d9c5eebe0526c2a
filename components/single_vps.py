"""SingleVps: the whole application on one DigitalOcean droplet (phase 1).

Creates
- a VPC for the region, a droplet (Ubuntu 24.04 LTS) with DigitalOcean's monitoring agent and droplet
  backups on, and a reserved IP so the address survives a droplet replacement;
- a block-storage volume holding PostgreSQL's data and Redis' persistence, attached at boot;
- a cloud firewall: 80/443 only from ``web_source_cidrs`` (Cloudflare's ranges when proxied), 22 only
  from the admin CIDRs, nothing else inbound (5432 and 6379 are never exposed); egress limited to DNS,
  NTP, HTTP and HTTPS;
- monitoring alerts to the alert recipients (e-mails and Slack channels): CPU > 70 %, memory > 80 %, disk > 80 %,
  each for 5 minutes; DigitalOcean uptime checks whose ``down`` alerts reach the same recipients, on the public URL
  (``https://<hostname><health_path>``) and on ``/.well-known/phasekit/volume``, which Caddy answers only while the
  data volume is under 80 % full;
- with ``offsite_backups``: continuous WAL archiving plus scheduled full/differential pgBackRest backups and a
  Redis snapshot to the stack's backups bucket (see ``components.backups``), and a DigitalOcean uptime check on
  ``https://<hostname>/.well-known/phasekit/backup`` whose ``down`` alert mails the alert e-mails when a backup is
  late or WAL archiving fails;
- generated database and Redis passwords (pulumi-random; secrets end to end);
- an ED25519 SSH host key for the droplet (pulumi-tls), given to it at first boot, which every SSH connection
  after the first pins; a one-time step installs it on a droplet created before pinning;
- a rollout command (pulumi-command over SSH) that repairs an unfinished first boot, delivers the stack and its
  secrets and rolls it;
- a DigitalOcean project grouping the droplet, volume and reserved IP (the IP's assignment is deleted before the
  project, which cannot move an assigned reserved IP).

Does not create DNS, certificates or buckets (CloudflareEdge does), nor SSH keys (referenced by
fingerprint).

How changes land (docs/changes.md is the user-facing version):
- new image tag, env, secret values, tuning: the rollout command re-runs over SSH; the droplet stays.
- ``user_data`` and ``ssh_keys`` changes are ignored on the existing droplet (DigitalOcean would replace
  it); they apply to a droplet created later.
- size: resized in place with a hard power-off (the provider powers the droplet off, resizes, powers it on:
  ``resource_droplet.go``), so PostgreSQL recovers from its WAL and Redis may lose its last second; the root disk
  is not grown, so a later downsize stays possible; the rollout then re-tunes PostgreSQL and Redis, whose config
  digests change, so they restart once.
- volume size (up): grown in place; the size is in the bundle and the rollout depends on the volume, so the same
  ``pulumi up`` grows the ext4 filesystem online after the resize.
- region: replaces droplet and volume; the protected volume makes ``pulumi up`` stop before any delete.
- a droplet replacement (e.g. a new base image) deletes the old droplet first, then boots the new one
  with the same volume attached: every row survives, with a few minutes of downtime. The delete waits up to
  ``DROPLET_DELETE_TIMEOUT`` for the droplet's graceful shutdown. DigitalOcean
  deletes a destroyed droplet's backups with it; with ``offsite_backups`` the database's copies live in the
  backups bucket, outside DigitalOcean, and survive any droplet or volume replacement.

Cost: the droplet size's monthly price, +20 % (weekly) or +30 % (daily) for backups, $0.10/GiB-month for
the volume; VPC, firewall, reserved IP (while assigned) and monitoring are free.

Stateful: the volume. It is protected and retained on delete when ``protect_data`` is true (default).
Droplet backups do not include attached volumes; the off-site backups (``offsite_backups``) are what a restore
starts from (``phasekit db restore``). Without them this component keeps no copy of the database at all.

The machine running ``pulumi up`` must reach the droplet on port 22: its address has to be inside
``ssh_admin_cidrs``, and it authenticates with ``ssh_private_key`` or, when that is None, its SSH agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_digitalocean as digitalocean

from components.cloud_init import render_cloud_init
from components.compose_stack import (
    AppSpec,
    HostStack,
    ServiceImages,
    TlsMode,
    database_url,
    redis_url,
    render_public_files,
)
from components.droplet_parts import (
    AlertRecipients,
    OffsiteBackupArgs,
    SlackChannel,
    backup_bundle_inputs,
    backup_watch,
    check_access,
    data_volume,
    droplet,
    egress_rules,
    generated_password,
    host_bundle,
    host_key,
    monitor_alerts,
    pinned_rollout,
    schedule_watch,
    site_watch,
    ssh_rule,
    uptime_alerts,
    user_data_with_host_key,
    volume_watch,
)
from components.tags import digitalocean_tags
from components.tuning import Machine


@dataclass
class SingleVpsArgs:
    region: str
    """DigitalOcean region slug, e.g. ``nyc3``."""

    size: str
    """Droplet size slug, e.g. ``s-1vcpu-2gb``."""

    machine: Machine
    """vCPUs and memory of ``size``; PostgreSQL and Redis are tuned from it."""

    app: AppSpec
    """The application: image, port, health path, env, secret env names, release command, workers."""

    hostname: str
    """Public hostname the proxy serves."""

    ssh_admin_cidrs: Sequence[str]
    """Networks allowed to reach port 22. Must not contain a /0. At least one."""

    ssh_key_fingerprints: Sequence[str]
    """DigitalOcean SSH key fingerprints installed for root (the rollout logs in as root). At least one."""

    alert_emails: Sequence[str]
    """Recipients of every alert (CPU, memory, disk, site down, data volume full, backups late). At least one.
    DigitalOcean mails only the account's verified address and its team members' (``AlertRecipients``)."""

    web_source_cidrs: pulumi.Input[Sequence[str]]
    """Sources allowed on 80/443: Cloudflare's ranges when the record is proxied, everything otherwise."""

    media_bucket_name: pulumi.Input[str]
    """Handed to the app as ``MEDIA_BUCKET``."""

    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Value of every name in ``app.secret_env_names`` (Pulumi secrets); exactly those names."""

    tls_mode: TlsMode = "origin-certificate"
    """``origin-certificate`` (proxied record, Full (strict)) or ``acme`` (Caddy obtains a public cert)."""

    origin_certificate_pem: pulumi.Input[str] | None = None
    """Required with ``origin-certificate``."""

    origin_private_key_pem: pulumi.Input[str] | None = None
    """Required with ``origin-certificate``; a secret."""

    ssh_private_key: pulumi.Input[str] | None = None
    """Key the rollout logs in with; None uses the SSH agent of whoever runs ``pulumi up``."""

    registry_password: pulumi.Input[str] | None = None
    """Password or token for ``app.registry_server``; required exactly when that is set. A secret."""

    volume_size_gib: int = 10
    """Data volume size. Growing it is in place (the rollout, which depends on the volume, then grows the
    filesystem in the same ``pulumi up``); shrinking is refused by DigitalOcean."""

    alert_slack: Sequence[SlackChannel] = ()
    """Slack channels that receive every alert too (each webhook URL a secret)."""

    images: ServiceImages = field(default_factory=ServiceImages)
    """The Caddy, PostgreSQL and Redis images (tag-pinned official images)."""

    backups: bool = True
    """DigitalOcean droplet backups of the root disk (not the data volume). Default on."""

    backup_plan: Literal["daily", "weekly"] = "weekly"
    """Backup frequency when ``backups`` is on: weekly costs 20 % of the droplet, daily 30 %."""

    protect_data: bool = True
    """Protect and retain the data volume. Default true."""

    offsite_backups: OffsiteBackupArgs | None = None
    """Off-site backups of PostgreSQL and Redis, and the uptime alert that reports late ones; None: no copy of
    the database leaves the droplet (not what ``infra`` ever builds)."""

    project_name: str = "phasekit"
    """Name of the DigitalOcean project grouping the resources."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """DigitalOcean ``key:value`` tags on the droplet and the volume. Not on the firewall or the alerts,
    where DigitalOcean reads tags as "apply to every droplet with this tag"."""


class SingleVps(pulumi.ComponentResource):
    droplet_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    """The reserved IP: what DNS points at; it survives a droplet replacement."""

    private_ip: pulumi.Output[str]
    volume_id: pulumi.Output[str]
    vpc_id: pulumi.Output[str]
    firewall_id: pulumi.Output[str]
    database_url: pulumi.Output[str]
    """The app's ``DATABASE_URL`` (reachable inside the droplet's compose network only); a secret."""

    redis_url: pulumi.Output[str]
    """The app's ``REDIS_URL``; a secret."""

    def __init__(self, name: str, args: SingleVpsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(args)
        super().__init__("phasekit:index:SingleVps", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = digitalocean_tags(args.tags)

        vpc = digitalocean.Vpc(f"{name}-vpc", region=args.region,
                               description="phasekit single-droplet network", opts=child)

        volume = data_volume(f"{name}-data", parent=self, region=args.region, size_gib=args.volume_size_gib,
                             tags=tags, protect=args.protect_data)

        offsite = args.offsite_backups
        stack = HostStack(app=args.app, machine=args.machine, hostname=args.hostname, tls_mode=args.tls_mode,
                          backups=offsite.spec if offsite is not None else None, images=args.images,
                          data_volume_gib=args.volume_size_gib)
        key = host_key(f"{name}-droplet", self)
        public_files = render_public_files(stack)
        server = droplet(
            f"{name}-droplet",
            parent=self,
            region=args.region,
            size=args.size,
            vpc_id=vpc.id,
            ssh_key_fingerprints=args.ssh_key_fingerprints,
            backups=args.backups,
            backup_plan=args.backup_plan,
            user_data=user_data_with_host_key(key, lambda pair: render_cloud_init(public_files, host_key=pair)),
            tags=tags,
            volume_ids=[volume.id],
        )

        reserved_ip = digitalocean.ReservedIp(f"{name}-ip", region=args.region, opts=child)
        project = digitalocean.Project(
            f"{name}-project",
            name=args.project_name,
            description="phasekit: one droplet running the app, PostgreSQL and Redis",
            purpose="Web Application",
            environment="Production",
            resources=[server.droplet_urn, volume.volume_urn, reserved_ip.reserved_ip_urn],
            opts=child,
        )
        ip_assignment = digitalocean.ReservedIpAssignment(
            f"{name}-ip-assignment",
            ip_address=reserved_ip.ip_address,
            droplet_id=server.id.apply(int),
            # DigitalOcean refuses to move a reserved IP between projects while it is assigned ("412 Cannot move
            # a Reserved IP with an associated Droplet", terraform-provider-digitalocean #445), and deleting the
            # Project moves its resources to the default project (project/resource_project.go,
            # resourceDigitalOceanProjectDelete). Depending on the Project orders the assignment's delete first.
            # Nothing ordinary removes the IP from this Project's list (it lives as long as the stack), so, unlike
            # phase 2, it stays in the list: taking it out would itself move the assigned IP on upgrade.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[project]),
        )

        firewall = digitalocean.Firewall(
            f"{name}-firewall",
            droplet_ids=[server.id.apply(int)],
            inbound_rules=[
                ssh_rule(args.ssh_admin_cidrs),
                digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range="80",
                                                     source_addresses=args.web_source_cidrs),
                digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range="443",
                                                     source_addresses=args.web_source_cidrs),
            ],
            outbound_rules=egress_rules(),
            # No `tags`: on a DigitalOcean firewall (and alert policy) tags select droplets to apply it to,
            # so phasekit's shared tags would pull every other stack's droplets under these rules.
            opts=child,
        )

        recipients = AlertRecipients(emails=args.alert_emails, slack=args.alert_slack)
        monitor_alerts(name, parent=self, droplet_ids=[server.id], recipients=recipients, label=args.project_name)
        uptime_alerts(name, parent=self, hostname=args.hostname, recipients=recipients, label=args.project_name,
                      watches=[site_watch(args.app.health_path), volume_watch(),
                               *([backup_watch()] if offsite is not None else []),
                               *([schedule_watch()] if args.app.schedules else [])])

        db_password = generated_password(f"{name}-db-password", self)
        redis_password = generated_password(f"{name}-redis-password", self)
        pinned_rollout(f"{name}-droplet", f"{name}-rollout", parent=self, host=server.ipv4_address, key=key,
                       bundle=host_bundle(stack, media_bucket_name=args.media_bucket_name, secret_env=args.secret_env,
                                          origin_certificate_pem=args.origin_certificate_pem,
                                          origin_private_key_pem=args.origin_private_key_pem,
                                          registry_password=args.registry_password,
                                          trusted_proxies=_trusted_proxies(args),
                                          db_password=db_password.result, redis_password=redis_password.result,
                                          **backup_bundle_inputs(offsite)),
                       # The volume: a grown volume is resized before the rollout grows its filesystem.
                       ssh_private_key=args.ssh_private_key, data_volume=True, firewall=firewall,
                       depends_on=[ip_assignment, volume])

        self.droplet_id = server.id
        self.public_ip = reserved_ip.ip_address
        self.private_ip = server.ipv4_address_private
        self.volume_id = volume.id
        self.vpc_id = vpc.id
        self.firewall_id = firewall.id
        self.database_url = pulumi.Output.secret(db_password.result.apply(database_url))
        self.redis_url = pulumi.Output.secret(redis_password.result.apply(redis_url))
        self.register_outputs({
            "droplet_id": self.droplet_id,
            "public_ip": self.public_ip,
            "private_ip": self.private_ip,
            "volume_id": self.volume_id,
            "vpc_id": self.vpc_id,
            "firewall_id": self.firewall_id,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
        })


def _check_args(args: SingleVpsArgs) -> None:
    check_access("SingleVpsArgs", ssh_admin_cidrs=args.ssh_admin_cidrs,
                 ssh_key_fingerprints=args.ssh_key_fingerprints, alert_emails=args.alert_emails,
                 alert_slack=args.alert_slack)
    if set(args.secret_env) != set(args.app.secret_env_names):
        raise ValueError(
            "SingleVpsArgs.secret_env: values must be given for exactly app.secret_env_names "
            f"{sorted(args.app.secret_env_names)}; got {sorted(args.secret_env)}")
    if (args.app.registry_server is None) != (args.registry_password is None):
        raise ValueError("SingleVpsArgs.registry_password: give it exactly when app.registry_server is set")
    if args.tls_mode == "origin-certificate" and (
            args.origin_certificate_pem is None or args.origin_private_key_pem is None):
        raise ValueError("SingleVpsArgs: tls_mode 'origin-certificate' needs origin_certificate_pem "
                         "and origin_private_key_pem")


def _trusted_proxies(args: SingleVpsArgs) -> pulumi.Input[Sequence[str]] | None:
    """Cloudflare's ranges when the record is proxied (``origin-certificate``): only then does ``web_source_cidrs``
    hold the proxies whose ``CF-Connecting-IP`` names the visitor; otherwise it is everyone, and nobody is trusted."""
    return args.web_source_cidrs if args.tls_mode == "origin-certificate" else None
