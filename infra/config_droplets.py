"""The config models of the DigitalOcean phases: phase 1 (one droplet) and phase 2 (app and database droplets)."""


from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from components.compose_stack import CADDY_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, ServiceImages
from infra.config_base import App, ConfigModel, Edge, PhaseStack
from infra.domain import (
    Allowed,
    BackupPlan,
    DigitalOceanRegion,
    DropletResources,
    DropletSize,
    EmailAddress,
    ImageRef,
    NonEmptyStr,
    PoolMode,
    RedisPlacement,
    RedisPlacementValue,
    SecretName,
    SshAdminCidr,
    SshKeyFingerprint,
    VolumeSizeGib,
    droplet_resources,
    problem,
)


class SlackAlerts(ConfigModel):
    """A Slack channel DigitalOcean posts alerts to."""

    channel: NonEmptyStr
    """The channel's name as Slack shows it, e.g. ``#ops``."""

    webhook: SecretName
    """Name of the ``phasekit:secrets`` entry holding the channel's incoming-webhook URL (``https://...``)."""


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
    """Who receives every alert: CPU, memory and disk above their thresholds, the site down, the data volume 80 %
    full, backups late. DigitalOcean mails only addresses it has verified: the account's own and, on a team, the
    team members' (docs.digitalocean.com/products/monitoring/how-to/set-up-alerts/); a shared mailbox such as
    ``ops@`` that is not a member's address may be refused when the alerts are created. Reach a shared place
    through ``alertSlack``."""

    alert_slack: Annotated[
        tuple[SlackAlerts, ...],
        Allowed("a list of {channel: '#ops', webhook: SLACK_WEBHOOK_URL} entries"),
    ] = ()
    """Slack channels that receive every alert as well, each through an incoming webhook whose URL is a secret:
    ``webhook`` names the ``phasekit:secrets`` entry holding it (``pulumi config set --secret --path
    'secrets.SLACK_WEBHOOK_URL'``). The URL must be ``https://``."""

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


_DEFAULT_POSTGRES_REPOSITORY, _, _DEFAULT_POSTGRES_TAG = POSTGRES_IMAGE.partition(":")
POSTGRES_MAJOR = _DEFAULT_POSTGRES_TAG.split(".")[0]
"""The PostgreSQL major version phasekit's default image runs; ``services.postgres`` must keep it."""

POSTGRES_DEBIAN = _DEFAULT_POSTGRES_TAG.rpartition("-")[2]
"""The Debian release under the default image's data: the C library whose collation orders text indexes."""

CADDY_MINIMUM = (2, 8)
"""The oldest Caddy with everything the rendered config uses: ``client_ip_headers`` and the standard
``proxy_protocol`` listener wrapper came in 2.7.0, the active health checks' ``passes``/``fails`` in 2.8.0
(caddyserver/caddy at those tags: modules/caddyhttp/server.go, proxyprotocol/, reverseproxy/healthchecks.go)."""

REDIS_MAJOR = REDIS_IMAGE.partition(":")[2].split(".")[0]

_OFFICIAL_POSTGRES = frozenset({"postgres", "library/postgres", "docker.io/library/postgres"})


def _repository_and_tag(image: str) -> tuple[str, str]:
    """``("postgres", "16.15-bookworm")`` for ``postgres:16.15-bookworm[@sha256:...]``; the tag is empty when there
    is none (a registry's port, as in ``localhost:5000/redis``, is not a tag)."""
    name = image.partition("@")[0]
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    return repository, tag


def _postgres_major(tag: str) -> str:
    """``16`` for ``16``, ``16.15``, ``16-bookworm`` or ``16.15-bookworm``."""
    return tag.split("-")[0].split(".")[0]


class Services(ConfigModel):
    """The images of the services phasekit runs beside the app on a droplet (phases 1 and 2). Defaults are the
    newest patch releases of the official images when this version of phasekit was made; docs/changes.md says how
    often to check for newer ones and how a change rolls out."""

    caddy: ImageRef = CADDY_IMAGE
    """The reverse proxy's image, e.g. ``caddy:2.11.4``."""

    postgres: ImageRef = POSTGRES_IMAGE
    """PostgreSQL's image: Docker Hub's official ``postgres`` image with a tag of the same major version as the
    default (a major upgrade is a migration to a new stack: ``phasekit db migrate``, docs/migration.md). With
    off-site backups phasekit builds pgBackRest onto it, which assumes the official image's Debian base."""

    redis: ImageRef = REDIS_IMAGE
    """Redis's image, e.g. ``redis:7.4.11-bookworm``."""

    @field_validator("postgres")
    @classmethod
    def _same_major_official_postgres(cls, image: str) -> str:
        repository, tag = _repository_and_tag(image)
        allowed = (f"the official image with a PostgreSQL {POSTGRES_MAJOR} tag, e.g. {POSTGRES_IMAGE}")
        if repository not in _OFFICIAL_POSTGRES:
            raise problem(f"{image!r} is not Docker Hub's official postgres image, which phasekit's backups build "
                          f"on; allowed: {allowed}")
        if not tag:
            raise problem(f"{image!r} does not name its PostgreSQL version in a tag; allowed: {allowed}")
        if "alpine" in tag:
            raise problem(f"{image!r} is the Alpine variant; the backups' Dockerfile installs pgBackRest with apt and "
                          f"the data files belong to the Debian variant's postgres user (uid 999); allowed: {allowed}")
        major = _postgres_major(tag)
        if major != POSTGRES_MAJOR:
            raise problem(f"{image!r} is PostgreSQL {major}, not {POSTGRES_MAJOR}: a major upgrade is a migration "
                          f"to a new stack (phasekit db migrate, docs/migration.md); allowed: {allowed}")
        if not re.fullmatch(rf"{POSTGRES_MAJOR}\.\d+-{POSTGRES_DEBIAN}", tag):
            raise problem(f"{image!r} does not pin both the minor version and the Debian release ({POSTGRES_DEBIAN}): "
                          "a moving tag or another release changes the C library under the data, and with it how "
                          "text sorts, which silently corrupts text indexes until they are rebuilt; "
                          f"allowed: {allowed}")
        return image

    @field_validator("caddy")
    @classmethod
    def _caddy_with_the_settings_phasekit_renders(cls, image: str) -> str:
        version = re.match(r"(\d+)\.(\d+)", _repository_and_tag(image)[1])
        if version is None or (int(version[1]), int(version[2])) < CADDY_MINIMUM:
            raise problem(f"{image!r} is not Caddy {CADDY_MINIMUM[0]}.{CADDY_MINIMUM[1]} or newer by its tag: the "
                          "rendered config uses active health-check tolerances, trusted proxies and the PROXY protocol "
                          f"wrapper; allowed: a tag starting with the version, e.g. {CADDY_IMAGE}")
        return image

    @field_validator("redis")
    @classmethod
    def _same_major_redis(cls, image: str) -> str:
        if _repository_and_tag(image)[1].split(".")[0] != REDIS_MAJOR:
            raise problem(f"{image!r} is not Redis {REDIS_MAJOR}: a new major version rewrites the data files, which "
                          f"the old one then cannot read, so it cannot be rolled back; allowed: a Redis {REDIS_MAJOR} "
                          f"tag, e.g. {REDIS_IMAGE}")
        return image

    def images(self) -> ServiceImages:
        """The components' form of these images."""
        return ServiceImages(caddy=self.caddy, postgres=self.postgres, redis=self.redis)


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

    services: Services = Field(default_factory=Services)
    """The Caddy, PostgreSQL and Redis images on the droplets."""

    @model_validator(mode="after")
    def _fixed_process_counts(self) -> Phase1Stack:
        self.app.refuse_autoscaled_processes(self.phase)
        return self

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

    services: Services = Field(default_factory=Services)
    """The Caddy, PostgreSQL and Redis images on the droplets."""

    @model_validator(mode="after")
    def _fixed_process_counts(self) -> Phase2Stack:
        self.app.refuse_autoscaled_processes(self.phase)
        return self

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


