"""The config models of the DigitalOcean phases: phase 1 (one droplet) and phase 2 (app and database droplets)."""


from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from infra.config_base import App, ConfigModel, Edge, PhaseStack
from infra.domain import (
    Allowed,
    BackupPlan,
    DigitalOceanRegion,
    DropletResources,
    DropletSize,
    EmailAddress,
    PoolMode,
    RedisPlacement,
    RedisPlacementValue,
    SshAdminCidr,
    SshKeyFingerprint,
    VolumeSizeGib,
    droplet_resources,
    problem,
)


class DropletAccess(ConfigModel):
    """Where droplets run, how they are backed up, who may SSH to them and who gets their alerts.

    Phase 1's ``vps`` and phase 2's ``droplets`` are this model (phase 1 adds the one droplet's size)."""

    region: DigitalOceanRegion
    """DigitalOcean region of the droplets and volumes (``pulumi_digitalocean.Region``)."""

    backups: bool = True
    """DigitalOcean droplet backups of the root disk (not the data volume). The database's own backups go off
    site, to the stack's R2 backups bucket (``phasekit:backups``)."""

    backup_plan: Annotated[BackupPlan, Allowed("daily or weekly", noun="a backup plan")] = BackupPlan.WEEKLY
    """How often droplets are backed up; setting it while ``backups: false`` is refused."""

    ssh_admin_cidrs: Annotated[
        tuple[SshAdminCidr, ...],
        Field(min_length=1),
        Allowed("one or more networks you administer from, e.g. [203.0.113.0/24]"),
    ]
    """Networks the firewalls open SSH to: IPv4 or IPv6 networks with no host bits set, stored in canonical
    form. ``0.0.0.0/0`` and ``::/0`` are refused."""

    ssh_key_fingerprints: Annotated[
        tuple[SshKeyFingerprint, ...],
        Field(min_length=1),
        Allowed("one or more MD5 fingerprints of SSH keys in your DigitalOcean account"),
    ]
    """DigitalOcean SSH keys installed for root, which the rollouts log in as: MD5 fingerprints as
    DigitalOcean lists them, 16 lower-case hex pairs separated by ``:``."""

    alert_emails: Annotated[
        tuple[EmailAddress, ...], Field(min_length=1), Allowed("one or more e-mail addresses, e.g. [ops@example.com]")
    ]
    """Who receives the droplets' monitoring alerts."""

    @model_validator(mode="after")
    def _backup_plan_needs_backups(self) -> DropletAccess:
        if not self.backups and "backup_plan" in self.model_fields_set:
            raise problem(
                f"{self.backup_plan.value!r} has no effect while backups is false; "
                "allowed: remove backupPlan, or set backups: true",
                at=("backupPlan",),
            )
        return self


class _Sized(ConfigModel):
    size: DropletSize
    """Droplet size (``pulumi_digitalocean.DropletSlug``) with at least 1 GiB of memory. phasekit reads the
    vCPUs and memory from the slug, so legacy sizes (``1gb``, ...) and GPU sizes are refused."""

    @property
    def vcpus(self) -> int:
        """vCPUs of ``size``."""
        return self._resources().vcpus

    @property
    def memory_mib(self) -> int:
        """Memory of ``size`` in MiB."""
        return self._resources().memory_mib

    def _resources(self) -> DropletResources:
        resources = droplet_resources(self.size.value)
        assert resources is not None, "DropletSize admits only sizes droplet_resources can read"
        return resources


class Vps(DropletAccess, _Sized):
    """Phase 1's droplet: where, how big, its data volume, its backups, who may SSH and who gets alerts."""

    volume_size_gib: VolumeSizeGib = 10
    """Block-storage volume for PostgreSQL and Redis data, in GiB."""


class AppTier(_Sized):
    """Phase 2's app droplets: each runs the reverse proxy and the app."""

    count: Annotated[int, Field(ge=1, le=10), Allowed("1..10")] = 2
    """App droplets; more than one puts a DigitalOcean load balancer in front of them and needs
    ``edge.proxied: true``."""


class Database(_Sized):
    """Phase 2's database droplet: PostgreSQL (and Redis) on the private network only."""

    volume_size_gib: VolumeSizeGib = 20
    """Block-storage volume for PostgreSQL and Redis data, in GiB."""

    pgbouncer: bool = False
    """Pool the app's connections through PgBouncer (Ubuntu's package, run by systemd) on the database
    droplet; ``DATABASE_URL`` then uses port 6432."""

    pool_mode: Annotated[PoolMode, Allowed("transaction or session", noun="a pool mode")] = PoolMode.TRANSACTION
    """PgBouncer's pool mode; setting it while ``pgbouncer: false`` is refused. Transaction pooling does not
    keep session state (``SET``, advisory locks, server-side prepared statements) between transactions."""

    @model_validator(mode="after")
    def _pool_mode_needs_pgbouncer(self) -> Database:
        if not self.pgbouncer and "pool_mode" in self.model_fields_set:
            raise problem(
                f"{self.pool_mode.value!r} has no effect while pgbouncer is false; "
                "allowed: remove poolMode, or set pgbouncer: true",
                at=("poolMode",),
            )
        return self


class Redis(ConfigModel):
    """Where phase 2's shared Redis runs."""

    placement: RedisPlacementValue = RedisPlacement.DATABASE
    """``database``: on the database droplet, reachable from every app droplet over the VPC. ``app`` is
    refused: each app droplet would get its own Redis, but sessions, caches and queues must be shared."""


class Phase1Stack(PhaseStack):
    """Phase 1: the whole app (web, PostgreSQL, Redis) on one droplet behind Cloudflare, media in R2."""

    phase: Literal[1]
    """Which phase the stack deploys; it decides which of the other keys the stack may set."""

    app: App
    """The web application: its image, port, health check, environment and workers."""

    edge: Edge
    """Cloudflare in front of the app: the zone, the account of the media bucket, the public hostname."""

    vps: Vps
    """Phase 1's one droplet: region, size, data volume, backups, SSH access and alerts."""

    @property
    def worker_count(self) -> int:
        """Web workers to run: ``app.workers``, or one per vCPU of the droplet."""
        return self.app.worker_count(self.vps.vcpus)


class Phase2Stack(PhaseStack):
    """Phase 2: app droplets (behind a load balancer when more than one) and a database droplet on a VPC."""

    phase: Literal[2]
    """Which phase the stack deploys; it decides which of the other keys the stack may set."""

    app: App
    """The web application: its image, port, health check, environment and workers."""

    edge: Edge
    """Cloudflare in front of the app: the zone, the account of the media bucket, the public hostname."""

    droplets: DropletAccess
    """Region, backups, SSH access and alerts of every droplet: phase 1's ``vps`` without ``size`` and
    ``volumeSizeGib``."""

    app_tier: AppTier
    """The app droplets: their size and how many."""

    database: Database
    """The database droplet: its size, data volume and PgBouncer."""

    redis: Redis = Field(default_factory=Redis)
    """Where the shared Redis runs."""

    @model_validator(mode="after")
    def _load_balancer_needs_proxied_edge(self) -> Phase2Stack:
        if self.app_tier.count > 1 and not self.edge.proxied:
            raise problem(
                f"{self.app_tier.count} app droplets need edge.proxied: true (the load balancer passes TLS "
                "through, and each droplet would have to win its own ACME challenge); "
                "allowed: appTier.count: 1, or edge.proxied: true",
                at=("appTier", "count"),
            )
        return self

    @property
    def worker_count(self) -> int:
        """Web workers per app droplet: ``app.workers``, or one per vCPU of an app droplet."""
        return self.app.worker_count(self.app_tier.vcpus)


